#!/usr/bin/env bash
# The CPU benchmark: ../shared/bench/cpu-suite.txt with convnd and with the newest PyTorch
# wheel from PyPI (oneDNN 3; measured by ../shared/bench/peers_cpu.py) in one run, on this
# machine. PyTorch comes from the cached venv that python/run_torch_tests.sh makes
# (~/.cache/convnd-torch-venv; TORCH_PYTHON names another interpreter).
# Writes bench/results/cpu-<date>.md with the ratios and the machine it ran on, and its plot
# cpu-<date>.png (bench/plot.sh).
# Run it on a quiet machine: both sides are timed with every core.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build >/dev/null
py=${TORCH_PYTHON:-$HOME/.cache/convnd-torch-venv/bin/python}
if ! "$py" -c 'import torch, numpy' >/dev/null 2>&1; then
  # The venv with the newest torch wheel (several GB with its CUDA libraries; made once).
  python3 -m venv "$HOME/.cache/convnd-torch-venv"
  "$HOME/.cache/convnd-torch-venv/bin/pip" install -q "torch>=2.4" numpy
  py=$HOME/.cache/convnd-torch-venv/bin/python
fi
suite=${SUITE:-../shared/bench/cpu-suite.txt}
out=${OUT_MD:-bench/results/cpu-$(date +%F).md}
mkdir -p "$(dirname "$out")"
"$py" bench/compare_cpu.py --suite "$suite" --convnd build/convnd \
  --peers ../shared/bench/peers_cpu.py --out "$out" "$@"
bench/plot.sh "$out" || echo "[cpu.sh] WARNING: no plot made for $out (bench/plot.sh $out)" >&2
