#!/usr/bin/env bash
# On the GPU machine, from prebuilt binaries in a carried folder (default .gpubin): the CUDA
# gradient tests, then the GPU gradient benchmark against cuDNN (bench/grad_gpu.py), then
# (with --cpu) the CPU gradient benchmark on all of its cores against PyTorch's oneDNN
# (bench/grad_cpu.py --convnd-cli). With --py it first builds the Python package with CUDA
# there (pip, into /tmp/cnd, on all cores, while the C++ tests run; the machine's python3 has
# torch, scikit-build-core and nanobind) and runs its CUDA tests, convnd.torch's host overhead
# (bench/torch_overhead.py) and the training example on the GPU; --gpu then also times the
# gradients through Python. Logs and tables go to $OUT.
#   bench/grad_device.sh [--tests] [--py] [--gpu] [--cpu]     (none: all four)
# Build the folder on the development machine first (nvcc there; the device's time is short):
#   cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DCONVND_CUDA=ON && ninja -C build-cuda
#   mkdir -p .gpubin && cp build-cuda/tests/convnd_tests build-cuda/convnd .gpubin/ &&
#   mv .gpubin/convnd .gpubin/convnd_cli && nvcc -O2 -std=c++20 -arch=sm_90 -Iinclude bench/gpu_bench.cu \
#     build-cuda/libconvnd.a -ldl -o .gpubin/gpu_bench_grad -Xlinker -rpath -Xlinker /usr/local/cuda/lib64
# and carry .gpubin (git-ignored through .git/info/exclude) with the device call; with the
# CUTLASS kernels, also copy their headers there for the Python build:
#   cp -r ~/.cache/convnd-cutlass-4.2.0.0/cutlass_library/source .gpubin/cutlass
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
. "$(dirname "$0")/device_steps.sh"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/device.txt"
want --py && start_python_build "$bin" 400
want --tests && run_cuda_tests "$bin" 'Cuda*' 60
if want --py; then
  wait "$build_pid"
  export PYTHONPATH=/tmp/cnd
  python3 -c "import convnd, torch; print('convnd', convnd.__file__, 'cuda', convnd.has_cuda(), 'torch', torch.__version__)"
  run_python_cuda_checks
  mkdir -p "$OUT/train-torch-cuda"
  (cd "$OUT/train-torch-cuda" && PYTHONUNBUFFERED=1 timeout 60 python3 "$OLDPWD/examples/train_torch.py" \
     --device cuda --steps 150 >train.log 2>&1; echo "train example rc=$?"; tail -4 train.log)
fi
if want --gpu; then
  # GRAD_GPU_ARGS: more arguments for bench/grad_gpu.py (--dirs, --alt, --suite).
  PYTHONUNBUFFERED=1 timeout "${GRAD_GPU_TIMEOUT:-240}" python3 bench/grad_gpu.py --gpu-bench "$bin/gpu_bench_grad" \
    --reps 10 --out "$OUT/grad-gpu.md" ${GRAD_GPU_ARGS:-} >"$OUT/grad-gpu.log" 2>&1
  echo "gpu bench rc=$?"
  tail -8 "$OUT/grad-gpu.md"
fi
if want --cpu; then
  PYTHONUNBUFFERED=1 timeout 420 python3 bench/grad_cpu.py --threads "$(nproc)" --reps 5 \
    --convnd-cli "$bin/convnd_cli" --out "$OUT/grad-cpu-gpu-machine.md" >"$OUT/grad-cpu.log" 2>&1
  echo "cpu bench rc=$?"
  tail -5 "$OUT/grad-cpu-gpu-machine.md"
fi
