#!/usr/bin/env bash
# Every benchmark result under bench/results/ (cpu-<date>*.md, gpu-<date>*.md) has its plot
# beside it (<result>.png, made by bench/plot.sh), links it, and the README links it too; the
# bench scripts make the plot after their markdown. Usage: bench_plots.sh SOURCE_DIR
set -euo pipefail
cd "$1"
fail=0
n=0
for md in bench/results/cpu-[0-9]*.md bench/results/gpu-[0-9]*.md; do
  [ -e "$md" ] || continue
  n=$((n + 1))
  png=${md%.md}.png
  name=$(basename "$png")
  if [ "$(head -c 8 "$png" 2>/dev/null | od -An -tx1 | tr -d ' \n')" != 89504e470d0a1a0a ]; then
    echo "$md: no plot $png (make it with bench/plot.sh $md)"; fail=1
  fi
  grep -qF "($name)" "$md" || { echo "$md does not link $name"; fail=1; }
  grep -qF "($png)" README.md || { echo "README.md does not link $png"; fail=1; }
done
[ "$n" -gt 0 ] || { echo "no results under bench/results/"; fail=1; }
grep -q 'bench/plot.sh "$out"' bench/cpu.sh || { echo "bench/cpu.sh does not call bench/plot.sh"; fail=1; }
grep -q 'bench/plot.sh' bench/gpu.sh || { echo "bench/gpu.sh does not call bench/plot.sh"; fail=1; }
[ "$fail" = 0 ] && echo "bench_plots: $n results, each with its plot, linked"
exit "$fail"
