#!/usr/bin/env bash
# The CPU gradient benchmark: convnd.grad against PyTorch's own backward (the newest PyTorch
# wheel from PyPI, oneDNN 3.x) on the CPU suite's layers, in one process (bench/grad_cpu.py).
# Uses a venv outside the repository (~/.cache/convnd-torch-venv, made on first use: torch is
# several GB) with this checkout's convnd installed into it. Writes
# bench/results/grad-cpu-<date>.md.   Environment: THREADS (default: every core).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${CONVND_TORCH_VENV:-$HOME/.cache/convnd-torch-venv}
if ! "$venv/bin/python" -c 'import torch, numpy' >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q torch numpy
fi
# This checkout's package (CPU only: the benchmark is the CPU's).
CONVND_CUDA=OFF "$venv/bin/pip" install -q --force-reinstall --no-deps ./
out=${OUT_MD:-bench/results/grad-cpu-$(date +%F).md}
out=$(realpath -m "$out")  # OUT_MD relative to the checkout, or absolute
cd bench && "$venv/bin/python" grad_cpu.py --threads "${THREADS:-$(nproc)}" --out "$out" "$@"
