#!/usr/bin/env bash
# Tests convnd.torch (the PyTorch adapter) in a venv outside the clone: creates or reuses
# ~/.cache/convnd-torch-venv (CONVND_TORCH_VENV overrides) with torch >= 2.4, numpy, ml_dtypes,
# pytest and the build requirements, installs this checkout's convnd there, and runs
# python/tests/test_torch.py (which also runs examples/train_torch.py briefly). Arguments go to
# pytest (e.g. `python/run_torch_tests.sh -k ddp -x`).
#
# Re-runs are cheap: pip runs only when the requirements or the sources changed (hashes kept in
# the venv), and the CMake build folder (in the venv, not in the clone) is kept between builds.
# A new venv gets torch from PyPI (the project installs from Debian and PyPI only; PyPI's Linux
# wheel brings its CUDA libraries, several GB, once); a venv that already has torch >= 2.4
# keeps its own.
# The CUDA backend is left out of convnd's build here (CONVND_CUDA, default OFF; CUDA tests skip
# without a GPU anyway). Environment: PYTHON (the interpreter that creates the venv; default
# python3), CMAKE_BUILD_PARALLEL_LEVEL (default 2), CONVND_FORCE_INSTALL=1 (reinstall).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
venv="${CONVND_TORCH_VENV:-$HOME/.cache/convnd-torch-venv}"
py="$venv/bin/python"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
cuda="${CONVND_CUDA:-OFF}"

if ! "$py" -c 'import sys' >/dev/null 2>&1; then
  echo "[torch] creating $venv"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "${PYTHON:-python3}" -m venv "$venv"
fi

# torch >= 2.4 (what convnd.torch needs): kept if there, else PyPI's.
if ! "$py" -c 'import re, sys, torch; m = re.match(r"(\d+)\.(\d+)", torch.__version__); sys.exit(tuple(map(int, m.groups())) < (2, 4))' \
     >/dev/null 2>&1; then
  echo "[torch] installing torch>=2.4 from PyPI"
  "$py" -m pip install -q "torch>=2.4"
fi

reqs=("scikit-build-core>=0.10" "nanobind>=2.2" "numpy>=1.22" "ml_dtypes>=0.2" "pytest>=7")
reqs_stamp="$venv/.convnd-torch-reqs"
reqs_hash="$(printf '%s\n' "${reqs[@]}" | sha1sum | cut -d' ' -f1)"
if [ "$(cat "$reqs_stamp" 2>/dev/null)" != "$reqs_hash" ]; then
  echo "[torch] installing ${reqs[*]}"
  "$py" -m pip install -q "${reqs[@]}"
  echo "$reqs_hash" >"$reqs_stamp"
fi

# Everything the package is built from, and the Python and nanobind it is built with.
src_hash() {
  {
    find CMakeLists.txt pyproject.toml cmake src include python/src python/convnd \
      -type f -not -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha1sum
    "$py" -c 'import sys, nanobind; print(sys.version, nanobind.__version__)'
    echo "CONVND_CUDA=$cuda"
  } | sha1sum | cut -d' ' -f1
}
pkg_stamp="$venv/.convnd-package"
pkg_hash="$(src_hash)"
if [ "${CONVND_FORCE_INSTALL:-0}" = 1 ] || [ "$(cat "$pkg_stamp" 2>/dev/null)" != "$pkg_hash" ] ||
   ! "$py" -c 'import convnd.torch' >/dev/null 2>&1; then
  echo "[torch] building and installing convnd (CONVND_CUDA=$cuda, CMAKE_BUILD_PARALLEL_LEVEL=$CMAKE_BUILD_PARALLEL_LEVEL)"
  # No build isolation (the build requirements are in the venv), and a build folder of this venv's
  # own, so a rebuild is incremental and never shares a CMake cache with .venv's build.
  CONVND_CUDA="$cuda" CONVND_MLX=OFF "$py" -m pip install -q --no-build-isolation --no-deps --force-reinstall \
    --config-settings="build-dir=$venv/build/{wheel_tag}" ./
  echo "$pkg_hash" >"$pkg_stamp"
fi
"$py" -c 'import torch, convnd, convnd.torch; print(f"[torch] torch {torch.__version__}, convnd {convnd.__version__}")'

set +e
"$py" -m pytest -c "$root/pyproject.toml" --rootdir "$root" "$root/python/tests/test_torch.py" "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "[torch] pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
