#!/usr/bin/env bash
# On the GPU machine, from prebuilt binaries in a carried folder (default .gpubin): the CUDA
# gradient tests, then the GPU gradient benchmark against cuDNN (bench/grad_gpu.py), then
# (with --cpu) the CPU gradient benchmark on all of its cores against PyTorch's oneDNN
# (bench/grad_cpu.py --convnd-cli). Logs and tables go to $OUT.
#   bench/grad_device.sh [--tests] [--gpu] [--cpu]     (none: all three)
# Build the folder on the development machine first (nvcc there; the device's time is short):
#   cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DCONVND_CUDA=ON && ninja -C build-cuda
#   mkdir -p .gpubin && cp build-cuda/tests/convnd_tests build-cuda/convnd .gpubin/ &&
#   mv .gpubin/convnd .gpubin/convnd_cli && nvcc -O2 -std=c++20 -arch=sm_90 -Iinclude bench/gpu_bench.cu \
#     build-cuda/libconvnd.a -ldl -o .gpubin/gpu_bench_grad -Xlinker -rpath -Xlinker /usr/local/cuda/lib64
# and carry .gpubin (git-ignored through .git/info/exclude) with the device call.
set -uo pipefail
bin=${BIN:-.gpubin}
OUT=${OUT:-out}
mkdir -p "$OUT"
ARGS=("$@")
want() {  # whether stage $1 was asked for (no arguments: every stage)
  [ ${#ARGS[@]} -eq 0 ] && return 0
  local a
  for a in "${ARGS[@]}"; do [ "$a" = "$1" ] && return 0; done
  return 1
}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/device.txt"
if want --tests; then
  timeout 360 "$bin/convnd_tests" --gtest_filter='CudaGradients.*:CudaWeightGrad.*:CudaAlgorithms.*:CudaBackend.*' \
    >"$OUT/cuda-tests.log" 2>&1
  echo "cuda tests rc=$?"
  grep -E "^\[  (PASSED|FAILED|SKIPPED)|Failure" -A3 "$OUT/cuda-tests.log" | head -60
fi
if want --gpu; then
  PYTHONUNBUFFERED=1 timeout 300 python3 bench/grad_gpu.py --gpu-bench "$bin/gpu_bench_grad" --reps 10 \
    --out "$OUT/grad-gpu.md" >"$OUT/grad-gpu.log" 2>&1
  echo "gpu bench rc=$?"
  tail -8 "$OUT/grad-gpu.md"
fi
if want --cpu; then
  PYTHONUNBUFFERED=1 timeout 420 python3 bench/grad_cpu.py --threads "$(nproc)" --reps 5 \
    --convnd-cli "$bin/convnd_cli" --out "$OUT/grad-cpu-gpu-machine.md" >"$OUT/grad-cpu.log" 2>&1
  echo "cpu bench rc=$?"
  tail -5 "$OUT/grad-cpu-gpu-machine.md"
fi
