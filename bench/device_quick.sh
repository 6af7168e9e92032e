#!/usr/bin/env bash
# A short GPU-machine run from prebuilt binaries (bench/grad_device.sh says how to build the
# carried folder): CUDA host overhead per call (f32, bf16, bf16 on the CUTLASS
# kernel), the CUDA unit tests while the Python package builds with CUDA (and CUTLASS when its
# headers are carried), convnd's device-resident times on bench/gpu-layers-suite.txt for every
# direction with the planner's choice and with QUICK_ALGORITHM (default cutlass_sm90__cuda)
# named (same run), the Python CUDA tests, convnd.torch's host overhead. For a session with little device
# time; bench/grad_device.sh --gpu adds cuDNN in the same run. Logs go to $OUT.
# QUICK_NO_PY=1 leaves the Python package out (its build is the longest part).
set -uo pipefail
bin=${BIN:-.gpubin}
OUT=${OUT:-out}
mkdir -p "$OUT"
. "$(dirname "$0")/device_steps.sh"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/device.txt"
for a in "f32" "bf16" "bf16 cutlass_sm90__cuda"; do
  timeout 30 "$bin/cuda_host_overhead" 1000 $a 2>&1 | grep -E "problem|execute|conv2d|make_plan"
done | tee "$OUT/cuda-host-overhead.txt"
build_pid=
[ -n "${QUICK_NO_PY:-}" ] || start_python_build "$bin" 330
run_cuda_tests "$bin" "${QUICK_TESTS:-Cuda*}" 40
# Device-resident times while the package builds on the CPU (the GPU is otherwise idle).
while read -r prob; do
  case "$prob" in '#'*|'') continue ;; esac
  for d in fwd bwd_d bwd_w; do
    planner=$(timeout 60 "$bin/gpu_bench_grad" --reps 10 "$prob dir=$d" 2>&1 | grep '^{"problem"')
    named=$(timeout 60 "$bin/gpu_bench_grad" --reps 10 --algorithm "${QUICK_ALGORITHM:-cutlass_sm90__cuda}" \
      "$prob dir=$d" 2>&1 | grep '^{"problem"')
    echo "{\"dir\": \"$d\", \"planner\": ${planner:-null}, \"named\": ${named:-null}}"
  done
done < bench/gpu-layers-suite.txt | tee "$OUT/layers-resident.jsonl" | cut -c1-400
[ -n "${QUICK_NO_PY:-}" ] && exit 0
wait "$build_pid"
run_python_cuda_checks
