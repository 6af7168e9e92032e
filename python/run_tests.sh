#!/usr/bin/env bash
# Builds and installs the `convnd` Python package into .venv (created on first use) and runs
# its pytest suite. Arguments are passed to pytest (e.g. `python/run_tests.sh -k parity -x`).
#
# Re-runs are cheap: pip is called only when the sources or the requirements changed (a hash
# kept in .venv), and the CMake build folder build-py/<wheel tag> is kept between builds
# (no build isolation, so its paths stay the same and the rebuild is incremental).
#
# Environment: PYTHON (the interpreter that creates the venv; default python3),
# CMAKE_BUILD_PARALLEL_LEVEL (build jobs; default 2), CONVND_FORCE_INSTALL=1 (reinstall),
# CONVND_CUTLASS (default OFF here: the CUTLASS kernels; AUTO or ON builds them in).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
venv="$root/.venv"
py="$venv/bin/python"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
# The CUTLASS Hopper kernels cost about ten minutes of compiling on 2 cores and nothing here
# runs them (no GPU in CI; scripts/build's C++ build compiles them): left out unless asked for.
export CONVND_CUTLASS="${CONVND_CUTLASS:-OFF}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

if ! "$py" -c 'import sys' >/dev/null 2>&1; then
  echo "[python] creating $venv"
  rm -rf "$venv"
  "${PYTHON:-python3}" -m venv "$venv"
fi

# Build requirements (as in pyproject.toml's [build-system]) and test requirements.
build_reqs=("scikit-build-core>=0.10" "nanobind>=2.2")
test_reqs=("pytest>=7" "numpy>=1.22" "ml_dtypes>=0.2")
reqs_stamp="$venv/.convnd-reqs"
reqs_hash="$(printf '%s\n' "${build_reqs[@]}" "${test_reqs[@]}" "mlx[cpu]" | sha1sum | cut -d' ' -f1)"
if [ "$(cat "$reqs_stamp" 2>/dev/null)" != "$reqs_hash" ]; then
  echo "[python] installing build and test requirements"
  "$py" -m pip install -q "${build_reqs[@]}" "${test_reqs[@]}"
  # MLX is the parity reference; without it those tests are skipped (said loudly here).
  if ! "$py" -m pip install -q "mlx[cpu]"; then
    echo "[python] WARNING: could not install mlx[cpu]; the MLX parity tests will be skipped" >&2
  fi
  echo "$reqs_hash" >"$reqs_stamp"
fi

# Everything the wheel is built from.
src_hash() {
  {
    find CMakeLists.txt pyproject.toml cmake src include python/src python/convnd \
      -type f -not -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha1sum
    "$py" --version
    echo "CONVND_CUDA=${CONVND_CUDA:-} CONVND_CUTLASS=$CONVND_CUTLASS"  # switching either rebuilds
  } | sha1sum | cut -d' ' -f1
}
pkg_stamp="$venv/.convnd-package"
pkg_hash="$(src_hash)"
if [ "${CONVND_FORCE_INSTALL:-0}" = 1 ] || [ "$(cat "$pkg_stamp" 2>/dev/null)" != "$pkg_hash" ] ||
   ! "$py" -c 'import convnd' >/dev/null 2>&1; then
  echo "[python] building and installing convnd (CMAKE_BUILD_PARALLEL_LEVEL=$CMAKE_BUILD_PARALLEL_LEVEL)"
  "$py" -m pip install -q --no-build-isolation --no-deps --force-reinstall ./
  echo "$pkg_hash" >"$pkg_stamp"
fi

# Run from a folder without a convnd/ of its own, so the installed package is the one tested.
set +e
"$py" -m pytest -c "$root/pyproject.toml" --rootdir "$root" "$root/python/tests" "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "[python] pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
