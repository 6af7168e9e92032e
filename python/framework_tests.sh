# Sourced by python/run_torch_tests.sh and python/run_mlx_tests.sh: the framework adapter's tests
# in a venv outside the clone. The caller sets
#   name       torch | mlx (log prefix, the module convnd.<name>, the test python/tests/test_<name>.py)
#   venv       the venv's folder
#   reqs       pip requirements (an array), installed when they change (a hash kept in the venv)
#   versions   Python code printing what the extension is built against (part of the build hash)
#   mlx_ext    CONVND_MLX for the build (ON: with the MLX extension; OFF: without)
#   banner     Python code printing the versions in use
# and may define before_reqs() (run first, e.g. to install torch). Arguments go to pytest.
# Re-runs are cheap: pip runs only when the requirements or the sources changed, and the CMake
# build folder (in the venv, not in the clone) is kept between builds. CONVND_CUDA defaults to
# OFF here. Environment: PYTHON (the interpreter that creates the venv; default python3),
# CMAKE_BUILD_PARALLEL_LEVEL (default 2), CONVND_FORCE_INSTALL=1 (reinstall).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="$venv/bin/python"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
cuda="${CONVND_CUDA:-OFF}"

if ! "$py" -c 'import sys' >/dev/null 2>&1; then
  echo "[$name] creating $venv"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "${PYTHON:-python3}" -m venv "$venv"
fi

if declare -F before_reqs >/dev/null; then before_reqs; fi

reqs_stamp="$venv/.convnd-$name-reqs"
reqs_hash="$(printf '%s\n' "${reqs[@]}" | sha1sum | cut -d' ' -f1)"
if [ "$(cat "$reqs_stamp" 2>/dev/null)" != "$reqs_hash" ]; then
  echo "[$name] installing ${reqs[*]}"
  "$py" -m pip install -q "${reqs[@]}"
  echo "$reqs_hash" >"$reqs_stamp"
fi

# Everything the package is built from, and what it is built against.
src_hash() {
  {
    find CMakeLists.txt pyproject.toml cmake src include python/src python/convnd \
      -type f -not -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha1sum
    "$py" -c "$versions"
    echo "CONVND_CUDA=$cuda"
  } | sha1sum | cut -d' ' -f1
}
pkg_stamp="$venv/.convnd-package"
pkg_hash="$(src_hash)"
if [ "${CONVND_FORCE_INSTALL:-0}" = 1 ] || [ "$(cat "$pkg_stamp" 2>/dev/null)" != "$pkg_hash" ] ||
   ! "$py" -c "import convnd.$name" >/dev/null 2>&1; then
  echo "[$name] building and installing convnd (CONVND_CUDA=$cuda, CONVND_MLX=$mlx_ext, CMAKE_BUILD_PARALLEL_LEVEL=$CMAKE_BUILD_PARALLEL_LEVEL)"
  # No build isolation (the build requirements, and for the MLX extension the mlx it is built
  # against, are in the venv), and a build folder of this venv's own, so a rebuild is
  # incremental and never shares a CMake cache with .venv's build.
  CONVND_CUDA="$cuda" CONVND_MLX="$mlx_ext" "$py" -m pip install -q --no-build-isolation --no-deps --force-reinstall \
    --config-settings="build-dir=$venv/build/{wheel_tag}" ./
  echo "$pkg_hash" >"$pkg_stamp"
fi
"$py" -c "$banner"

set +e
"$py" -m pytest -c "$root/pyproject.toml" --rootdir "$root" "$root/python/tests/test_$name.py" "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "[$name] pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
