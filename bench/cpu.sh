#!/usr/bin/env bash
# The CPU benchmark: ../shared/bench/cpu-suite.txt with convnd and with PyTorch (Debian's
# python3-torch, measured by ../shared/bench/peers_cpu.py) in one run, on this machine.
# Writes bench/results/cpu-<date>.md with the ratios and the machine it ran on, and its plot
# cpu-<date>.png (bench/plot.sh).
# Run it on a quiet machine: both sides are timed with every core.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build >/dev/null
if ! /usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-torch python3-numpy >/dev/null
fi
suite=${SUITE:-../shared/bench/cpu-suite.txt}
out=${OUT_MD:-bench/results/cpu-$(date +%F).md}
mkdir -p "$(dirname "$out")"
/usr/bin/python3 bench/compare_cpu.py --suite "$suite" --convnd build/convnd \
  --peers ../shared/bench/peers_cpu.py --out "$out" "$@"
bench/plot.sh "$out" || echo "[cpu.sh] WARNING: no plot made for $out (bench/plot.sh $out)" >&2
