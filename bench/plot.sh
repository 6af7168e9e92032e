#!/usr/bin/env bash
# Plots benchmark results: for each RESULT.md given (bench/results/cpu-<date>.md or
# gpu-<date>.md), writes RESULT.png beside it (speed-up over PyTorch per problem, and a
# roofline against the machine's limits) and links it from RESULT.md. bench/cpu.sh and
# bench/gpu.sh call it after writing their markdown.
#
# matplotlib comes from a venv outside the repository, made on first use:
# CONVND_BENCH_VENV (default ~/.cache/convnd-bench-venv). Where it cannot be made (no network,
# e.g. on the GPU machines), this says so and exits 0: the markdown result stands alone, and
# `bench/plot.sh RESULT.md` on another machine adds the plot later.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: bench/plot.sh RESULT.md [RESULT.md ...]" >&2; exit 2; }
venv=${CONVND_BENCH_VENV:-$HOME/.cache/convnd-bench-venv}
if ! "$venv/bin/python" -c 'import matplotlib' >/dev/null 2>&1; then
  echo "[plot] making $venv (matplotlib)"
  if ! { python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check --retries 1 --timeout 15 matplotlib; } >&2; then
    echo "[plot] WARNING: could not install matplotlib into $venv; no plots made (run bench/plot.sh $* later)" >&2
    exit 0
  fi
fi
exec "$venv/bin/python" bench/plot_results.py "$@"
