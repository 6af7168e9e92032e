#!/usr/bin/env bash
# The CPU measurements of issue #14 on the GPU machine's CPU (16 cores with AMX), from the
# carried folder of bench/device_quick.sh (BIN, default .gpubin: convnd_cli) and, when the
# Python package that device_quick.sh built is still in /tmp/cnd (a warm machine), convnd.torch
# against the machine's torch in one process (bench/cpu_layers.py):
#   1. the ISA the machine has;
#   2. `convnd bench` of bench/cpu-layers-suite.txt in bfloat16 at each level up to the best
#      (avx512: f32 math; avx512_bf16: VDPBF16PS; amx: tiles), and float32, on 16 threads;
#   3. float32 on 1, 2, 4, 8 and 16 threads (the scaling the issue asks for; SKIP_THREADS=1
#      leaves it out);
#   4. bench/cpu_layers.py on 16 threads (float32 and bfloat16; CPU_LAYERS_ARGS adds arguments).
# First the CPU unit tests (CPU_TESTS, a gtest filter; default the GEMM and CPU algorithm
# tests); without the package in /tmp/cnd it builds it after the timings of 2 and 3.
# Logs go to $OUT. SECONDS_LEFT bounds the whole run (default 540); the ISA timings of 2 stop
# when fewer than ISA_RESERVE seconds (default 240) are left.
set -uo pipefail
bin=${BIN:-.gpubin}
OUT=${OUT:-out}
mkdir -p "$OUT"
deadline=$((SECONDS + ${SECONDS_LEFT:-540}))
left() { echo $((deadline - SECONDS)); }
cli=$bin/convnd_cli
. "$(dirname "$0")/device_steps.sh"
build_pid=
timeout 120 "$bin/convnd_tests" --gtest_filter="${CPU_TESTS:-Gemm*:CpuAlgorithms*:DTypes*:CpuGradients*}" \
  >"$OUT/cpu-tests.log" 2>&1
echo "cpu tests rc=$?"
grep -E "^\[  (PASSED|FAILED)|Failure" -A4 "$OUT/cpu-tests.log" | head -40
{ lscpu | grep -E "Model name|^CPU\(s\)|Thread|Socket"; grep -o -w -E 'amx_bf16|amx_tile|avx512_bf16|avx512f' /proc/cpuinfo | sort | uniq -c; } \
  | tee "$OUT/cpu-device-machine.txt"
# The bf16 levels the CPU has (the planner picks amx itself for bf16; here each is named).
levels=(avx512)
grep -q -w avx512_bf16 /proc/cpuinfo && levels+=(avx512_bf16)
grep -q -w amx_bf16 /proc/cpuinfo && levels+=(amx)
echo "levels: ${levels[*]}" | tee -a "$OUT/cpu-device-machine.txt"
suite=bench/cpu-layers-suite.txt
# One JSON line per (problem, dtype, isa, threads).
bench_one() {  # problem dtype isa threads
  local p="$1 dtype=$2" json
  json=$(timeout 60 "$cli" bench "$p" --json --reps 5 --threads "$4" --isa "$3" 2>&1 | grep '^{' | head -1)
  echo "{\"dtype\": \"$2\", \"isa\": \"$3\", \"threads\": $4, \"result\": ${json:-null}}"
}
while read -r prob; do
  case "$prob" in '#'*|'') continue ;; esac
  [ "$(left)" -gt "${ISA_RESERVE:-240}" ] || break
  bench_one "$prob" f32 avx512 16
  for isa in "${levels[@]}"; do bench_one "$prob" bf16 "$isa" 16; done
done < "$suite" | tee "$OUT/cpu-device-isa.jsonl" | cut -c1-220
[ -n "${SKIP_THREADS:-}" ] || while read -r prob; do
  case "$prob" in '#'*|'') continue ;; esac
  [ "$(left)" -gt 150 ] || break
  for t in 1 2 4 8 16; do bench_one "$prob" f32 avx512 "$t"; done
done < "$suite" | tee "$OUT/cpu-device-threads.jsonl" | cut -c1-220
# The package builds after the timings, which its compilers on every core would disturb.
if [ ! -d /tmp/cnd ] && [ "$(left)" -gt 200 ]; then
  start_python_build "$bin" $(($(left) - 90))
  wait "$build_pid"
fi
# PY_CUDA_CHECKS=1: the package's CUDA tests and convnd.torch's host overhead first.
[ -z "${PY_CUDA_CHECKS:-}" ] || [ ! -d /tmp/cnd ] || run_python_cuda_checks
if [ -d /tmp/cnd ] && [ "$(left)" -gt 60 ]; then
  # shellcheck disable=SC2086
  PYTHONPATH=/tmp/cnd timeout $(($(left) - 10)) python3 bench/cpu_layers.py --threads 16 --reps 5 --cli "$PWD/$cli" \
    --out "$OUT/cpu-vs-torch-device.md" ${CPU_LAYERS_ARGS:-} >"$OUT/cpu-vs-torch-device.log" 2>&1
  echo "cpu_layers rc=$?"
  tail -25 "$OUT/cpu-vs-torch-device.md" 2>/dev/null
fi
