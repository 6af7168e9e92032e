#!/usr/bin/env bash
# Tests convnd.mlx (the MLX adapter) in a venv outside the clone: creates or reuses
# ~/.cache/convnd-mlx-venv (CONVND_MLX_VENV overrides) with mlx[cpu], numpy, pytest and the build
# requirements, installs this checkout's convnd there with its MLX extension, and runs
# python/tests/test_mlx.py (which also runs examples/train_mlx.py --quick). Arguments go to pytest.
#
# Re-runs are cheap: pip runs only when the requirements or the sources changed (hashes kept in
# the venv), and the CMake build folder (in the venv, not in the clone) is kept between builds.
# The CUDA backend is left out of this build (CONVND_CUDA, default OFF here): convnd.mlx runs on
# MLX's CPU stream. Environment: PYTHON (the interpreter that creates the venv; default
# python3), CMAKE_BUILD_PARALLEL_LEVEL (default 2), CONVND_FORCE_INSTALL=1 (reinstall).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
venv="${CONVND_MLX_VENV:-$HOME/.cache/convnd-mlx-venv}"
py="$venv/bin/python"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
cuda="${CONVND_CUDA:-OFF}"

if ! "$py" -c 'import sys' >/dev/null 2>&1; then
  echo "[mlx] creating $venv"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "${PYTHON:-python3}" -m venv "$venv"
fi

reqs=("scikit-build-core>=0.10" "nanobind>=2.2" "numpy>=1.22" "ml_dtypes>=0.2" "pytest>=7" "mlx[cpu]>=0.32")
reqs_stamp="$venv/.convnd-mlx-reqs"
reqs_hash="$(printf '%s\n' "${reqs[@]}" | sha1sum | cut -d' ' -f1)"
if [ "$(cat "$reqs_stamp" 2>/dev/null)" != "$reqs_hash" ]; then
  echo "[mlx] installing ${reqs[*]}"
  "$py" -m pip install -q "${reqs[@]}"
  echo "$reqs_hash" >"$reqs_stamp"
fi

# Everything the package is built from, and what the extension is built against.
src_hash() {
  {
    find CMakeLists.txt pyproject.toml cmake src include python/src python/convnd \
      -type f -not -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha1sum
    "$py" -c 'import sys, mlx.core, nanobind; print(sys.version, mlx.core.__version__, nanobind.__version__)'
    echo "CONVND_CUDA=$cuda"
  } | sha1sum | cut -d' ' -f1
}
pkg_stamp="$venv/.convnd-package"
pkg_hash="$(src_hash)"
if [ "${CONVND_FORCE_INSTALL:-0}" = 1 ] || [ "$(cat "$pkg_stamp" 2>/dev/null)" != "$pkg_hash" ] ||
   ! "$py" -c 'import convnd.mlx' >/dev/null 2>&1; then
  echo "[mlx] building and installing convnd with its MLX extension (CONVND_CUDA=$cuda)"
  # No build isolation: the build must see this venv's mlx (and the nanobind it matches).
  CONVND_CUDA="$cuda" CONVND_MLX=ON "$py" -m pip install -q --no-build-isolation --no-deps --force-reinstall \
    --config-settings="build-dir=$venv/build/{wheel_tag}" ./
  echo "$pkg_hash" >"$pkg_stamp"
fi
"$py" -c 'import mlx.core as mx, convnd.mlx; print(f"[mlx] mlx {mx.__version__}, convnd {convnd.__version__}")'

set +e
"$py" -m pytest -c "$root/pyproject.toml" --rootdir "$root" "$root/python/tests/test_mlx.py" "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "[mlx] pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
