#!/usr/bin/env bash
# Tests convnd.torch (the PyTorch adapter) in a venv outside the clone: creates or reuses
# ~/.cache/convnd-torch-venv (CONVND_TORCH_VENV overrides) with torch >= 2.4, numpy, ml_dtypes,
# pytest and the build requirements, installs this checkout's convnd there, and runs
# python/tests/test_torch.py (which also runs examples/train_torch.py briefly). Arguments go to
# pytest (e.g. `python/run_torch_tests.sh -k ddp -x`). The common steps, caching and
# environment variables: python/framework_tests.sh.
# A new venv gets torch from PyPI (the project installs from Debian and PyPI only; PyPI's Linux
# wheel brings its CUDA libraries, several GB, once); a venv that already has torch >= 2.4
# keeps its own. The CUDA backend is left out of convnd's build here (CONVND_CUDA, default OFF;
# CUDA tests skip without a GPU anyway).
name=torch
venv="${CONVND_TORCH_VENV:-$HOME/.cache/convnd-torch-venv}"
reqs=("scikit-build-core>=0.10" "nanobind>=2.2" "numpy>=1.22" "ml_dtypes>=0.2" "pytest>=7")
versions='import sys, nanobind; print(sys.version, nanobind.__version__)'
mlx_ext=OFF
banner='import torch, convnd, convnd.torch; print(f"[torch] torch {torch.__version__}, convnd {convnd.__version__}")'
# torch >= 2.4 (what convnd.torch needs): kept if there, else PyPI's.
before_reqs() {
  if ! "$py" -c 'import re, sys, torch; m = re.match(r"(\d+)\.(\d+)", torch.__version__); sys.exit(tuple(map(int, m.groups())) < (2, 4))' \
       >/dev/null 2>&1; then
    echo "[torch] installing torch>=2.4 from PyPI"
    "$py" -m pip install -q "torch>=2.4"
  fi
}
source "$(dirname "$0")/framework_tests.sh"
