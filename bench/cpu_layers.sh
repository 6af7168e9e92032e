#!/usr/bin/env bash
# The CPU forward-layer benchmark (issue #14): bench/cpu-layers-suite.txt in float32 and
# bfloat16, convnd.torch against torch.nn.functional (the newest PyTorch wheel from PyPI, oneDNN
# 3) on the same threads in one process (bench/cpu_layers.py), with `convnd bench` (C++) beside
# them. Uses the venv outside the repository that python/run_torch_tests.sh makes
# (~/.cache/convnd-torch-venv; torch is several GB) with this checkout's package installed into it.
# Writes bench/results/cpu-vs-torch-<date>.md.   Environment: THREADS (default: every core),
# OUT_MD, CONVND_CLI (a built `convnd`; default: build it); arguments go to cpu_layers.py (e.g. --only 'g=32' --dtypes f32).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${CONVND_TORCH_VENV:-$HOME/.cache/convnd-torch-venv}
if ! "$venv/bin/python" -c 'import torch, numpy' >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q "torch>=2.4" numpy scikit-build-core nanobind
fi
cli=${CONVND_CLI:-}  # a built `convnd` program; default: scripts/build's
if [ -z "$cli" ]; then scripts/build >/dev/null; cli=build/convnd; fi
CONVND_CUDA=OFF "$venv/bin/pip" install -q --no-build-isolation --force-reinstall --no-deps ./
out=${OUT_MD:-bench/results/cpu-vs-torch-$(date +%F).md}
out=$(realpath -m "$out")
cli=$(realpath "$cli")
cd bench && "$venv/bin/python" cpu_layers.py --threads "${THREADS:-$(nproc)}" --cli "$cli" --out "$out" "$@"
