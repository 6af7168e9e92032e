#!/usr/bin/env bash
# Times two builds of bench/gpu_bench against each other on bench/gpu-suite.txt, device-resident,
# in one run on one GPU: per problem, BEFORE then AFTER then BEFORE then AFTER (interleaved, so
# clock and thermal drift hit both), `--reps 5` each; the better median of each side is kept.
# For changes that should not move speed (a restructuring). Writes a markdown table to $OUT.
#   bench/gpu_before_after.sh OLD/gpu_bench NEW/gpu_bench [suite]
set -uo pipefail
before=$1
after=$2
suite=${3:-bench/gpu-suite.txt}
OUT=${OUT:-out}
mkdir -p "$OUT"
md="$OUT/gpu-before-after.md"
log="$OUT/gpu-before-after.jsonl"
: >"$log"
median() {  # binary problem -> median ms or empty
  timeout 120 "$1" --reps 5 "$2" 2>/dev/null | grep '^{"problem"' | tail -1 | sed -n 's/.*"median_ms": \([0-9.e+-]*\).*/\1/p'
}
{
  echo "# GPU before and after, $(date +%F)"
  echo
  echo "Device: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)."
  echo "Device-resident \`gpu_bench --reps 5\`, interleaved before/after twice; the better median of each side."
  echo
  echo "| problem | before ms | after ms | before/after |"
  echo "| --- | --- | --- | --- |"
} >"$md"
ratios=()
while IFS= read -r p; do
  b=""; a=""
  for round in 1 2; do
    t=$(median "$before" "$p"); [ -n "$t" ] && { [ -z "$b" ] || awk "BEGIN{exit !($t < $b)}"; } && b=$t
    t=$(median "$after" "$p"); [ -n "$t" ] && { [ -z "$a" ] || awk "BEGIN{exit !($t < $a)}"; } && a=$t
  done
  r=""
  [ -n "$b" ] && [ -n "$a" ] && r=$(awk "BEGIN{printf \"%.3f\", $b / $a}") && ratios+=("$r")
  echo "| \`$p\` | ${b:-fail} | ${a:-fail} | ${r:-—} |" >>"$md"
  printf '{"problem": "%s", "before_ms": "%s", "after_ms": "%s"}\n' "$p" "$b" "$a" >>"$log"
  echo "$p: before $b after $a ratio $r"
done < <(sed 's/#.*//' "$suite" | sed 's/[[:space:]]*$//' | grep -v '^$')
if [ ${#ratios[@]} -gt 0 ]; then
  gm=$(printf '%s\n' "${ratios[@]}" | awk '{s += log($1); n++} END {printf "%.3f", exp(s / n)}')
  printf '\nGeometric mean of before/after over %d problems: %s (above 1: the new code is faster).\n' "${#ratios[@]}" "$gm" >>"$md"
fi
cat "$md"
