#!/usr/bin/env bash
# A second call on the GPU machine, after bench/device_all.sh, for what that call's figures
# asked next (each stage under its own time limit, in order of need; DEVICE_SECONDS bounds
# the whole, default 540; DEVICE_STAGES picks stages by name, default all but "layers"):
#   1. the CUDA tests, while the Python package builds with CUDA (always);
#   2. pychecks: the package's CUDA tests and convnd.torch's host overhead, then profiled;
#   2b. overhead: convnd.torch's host overhead alone (no tests, no profile);
#   3. pyvscli: convnd's CPU calls from Python against its CLI on all cores (bench/py_vs_cli.py);
#   4. tf32: float32 forward convs exact and TF32 against cuDNN (bench/tf32_gpu.py);
#   5. crossover: the planner's choice against CUTLASS's kernels (CROSSOVER_FWD and
#      CROSSOVER_BWD_D name other algorithms) by reduction length (bench/gpu-crossover-suite.txt),
#      cuDNN in the same run;
#   6. layers: the GPU layers' forward and input gradient (LAYER_DIRS: the directions) against
#      cuDNN (bench/grad_gpu.py on bench/gpu-layers-suite.txt);
#   7. trace: the weight gradient's kernels on its slowest layers, cuDNN's and convnd's, its
#      sample chunkings, one chunk under ncu (bench/kernel_trace.py; see the stage).
# Everything is written under $OUT/check and packed into $OUT/check.tgz after every stage (the
# device returns a few files only, and a call cut short keeps what was packed).
# From the bundle of bench/device_bundle.sh, carried in .gpubin:
#   run(command="bash bench/device_check.sh", carry=[".gpubin"])
set -uo pipefail
bin=${BIN:-.gpubin}
top=${OUT:-out}
OUT=$top/check
mkdir -p "$OUT"
deadline=$((SECONDS + ${DEVICE_SECONDS:-540}))
left() { echo $((deadline - SECONDS)); }
pack() { tar czf "$top/check.tgz" -C "$top" check; }
stages=" ${DEVICE_STAGES:-pychecks pyvscli tf32 crossover} "
want() { [[ $stages == *" $1 "* ]]; }
if [ -f "$bin/bundle.tar.xz" ]; then tar xJf "$bin/bundle.tar.xz" -C "$bin" && rm "$bin/bundle.tar.xz"; fi
. "$(dirname "$0")/device_steps.sh"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/device.txt"
# DEVICE_PYTHON=0: no package (no Python columns, no Python stages), when time is short.
if [ "${DEVICE_PYTHON:-1}" = 1 ]; then start_python_build "$bin" 240; else build_pid=; fi
run_cuda_tests "$bin" "${DEVICE_CUDA_TESTS:-Cuda*}" 20
[ -n "$build_pid" ] && wait "$build_pid"
pack
[ -d /tmp/cnd ] && want pychecks && run_python_cuda_checks
if [ -d /tmp/cnd ] && want pychecks; then  # where a tiny conv's extra microseconds go, under torch.profiler
  PYTHONPATH=/tmp/cnd PYTHONUNBUFFERED=1 timeout 60 python3 bench/torch_overhead.py --calls 500 --rounds 3 \
    --profile "$OUT/torch-profile.txt" >"$OUT/torch-profile.log" 2>&1
  echo "torch profile rc=$?"
fi
pack
if [ -d /tmp/cnd ] && want overhead; then  # the host-overhead table alone, without the tests
  PYTHONPATH=/tmp/cnd PYTHONUNBUFFERED=1 timeout 60 python3 bench/torch_overhead.py --out "$OUT/torch-overhead.md" \
    >"$OUT/torch-overhead.log" 2>&1
  echo "torch overhead rc=$?"
  grep -E "^(cpu|cuda) " "$OUT/torch-overhead.log"
  pack
fi
if [ -d /tmp/cnd ] && want pyvscli && [ "$(left)" -gt 200 ]; then
  PYTHONPATH=/tmp/cnd PYTHONUNBUFFERED=1 timeout 150 python3 bench/py_vs_cli.py --threads "$(nproc)" --reps 20 \
    --cli "$PWD/$bin/convnd_cli" --out "$OUT/py-vs-cli.md" >"$OUT/py-vs-cli.log" 2>&1
  echo "py_vs_cli rc=$?"
  tail -8 "$OUT/py-vs-cli.md" 2>/dev/null
  pack
fi
if want tf32 && [ "$(left)" -gt 150 ]; then
  PYTHONPATH=/tmp/cnd PYTHONUNBUFFERED=1 timeout 90 python3 bench/tf32_gpu.py --gpu-bench "$bin/gpu_bench_grad" \
    --reps 10 --out "$OUT/tf32-gpu.md" >"$OUT/tf32-gpu.log" 2>&1
  echo "tf32 bench rc=$?"
  tail -8 "$OUT/tf32-gpu.md" 2>/dev/null
  pack
fi
if want crossover && [ "$(left)" -gt 60 ]; then
  PYTHONPATH=/tmp/cnd PYTHONUNBUFFERED=1 timeout $(($(left) > 165 ? 150 : $(left) - 15)) python3 bench/grad_gpu.py \
    --gpu-bench "$bin/gpu_bench_grad" --reps 10 --out "$OUT/crossover-gpu.md" --dirs fwd,bwd_d \
    --suite bench/gpu-crossover-suite.txt --alt fwd="${CROSSOVER_FWD:-cutlass_sm90__cuda}" \
    --alt bwd_d="${CROSSOVER_BWD_D:-cutlass_sm90__cuda}" \
    >"$OUT/crossover-gpu.log" 2>&1
  echo "crossover bench rc=$?"
  grep -E "^\| \`" "$OUT/crossover-gpu.md" 2>/dev/null | cut -d'|' -f2,3,5,6,7,8,12
  pack
fi
# 7. trace: what the weight gradient's time is made of on its slowest layers (kernels on the
#    timeline, cuDNN's and convnd's: bench/kernel_trace.py), how the planned sample chunking
#    compares with others (gpu_bench --tile splits=S), and one chunk's kernel under Nsight
#    Compute (clocks left alone).
if want trace && [ "$(left)" -gt 60 ]; then
  wl="n=256 in=56x56 c=64 o=64 k=3x3 pad=1 dtype=bf16"
  if [ "${TRACE_KERNELS:-1}" = 1 ]; then  # TRACE_KERNELS=0: the variants and ncu only
    PYTHONPATH=/tmp/cnd PYTHONUNBUFFERED=1 timeout 90 python3 bench/kernel_trace.py --dir bwd_w "$wl" \
      "n=8 in=32x32x32 c=64 o=64 k=3x3x3 pad=1 dtype=bf16" "n=256 in=56x56 c=256 o=64 dtype=bf16" \
      "n=128 in=28x28 c=256 o=256 k=3x3 pad=1 g=32 dtype=bf16" "n=256 in=14x14 c=256 o=256 k=3x3 pad=1 dtype=bf16" \
      >"$OUT/kernel-trace.txt" 2>&1
    echo "kernel trace rc=$?"
  fi
  # The planned configuration, then each variant (TRACE_VARIANTS: gpu_bench --tile settings,
  # space-separated, commas joining several) on the c64 layers, 2-D and 3-D.
  for prob in "$wl" "n=8 in=32x32x32 c=64 o=64 k=3x3x3 pad=1 dtype=bf16"; do
    for v in planned ${TRACE_VARIANTS:-splits=1 splits=2 splits=4 splits=8 splits=16 splits=26 splits=32}; do
      tiles=()
      [ "$v" != planned ] && for t in ${v//,/ }; do tiles+=(--tile "$t"); done
      timeout 30 "$bin/gpu_bench_grad" --reps 10 "${tiles[@]}" "$prob dir=bwd_w" 2>&1 | grep -E '^\{' | tail -1 |
        sed "s/^{/{\"variant\": \"$v\", /"
    done
  done | tee "$OUT/wgrad-variants.jsonl" | cut -c1-260
  if [ "${TRACE_NCU:-1}" = 1 ] && command -v ncu >/dev/null; then
    timeout 120 ncu --clock-control none -k regex:device_kernel --launch-skip 2 --launch-count 2 --section SpeedOfLight \
      --section LaunchStats --section Occupancy --section MemoryWorkloadAnalysis \
      "$bin/gpu_bench_grad" --reps 2 "$wl dir=bwd_w" >"$OUT/wgrad-ncu.txt" 2>&1
    echo "ncu rc=$?"
  fi
  pack
fi
if want layers && [ "$(left)" -gt 60 ]; then
  PYTHONPATH=/tmp/cnd PYTHONUNBUFFERED=1 timeout $(($(left) > 250 ? 180 : $(left) - 20)) python3 bench/grad_gpu.py \
    --gpu-bench "$bin/gpu_bench_grad" --reps 10 --out "$OUT/layers-gpu.md" --dirs "${LAYER_DIRS:-fwd,bwd_d}" \
    --suite bench/gpu-layers-suite.txt \
    >"$OUT/layers-gpu.log" 2>&1
  echo "layers bench rc=$?"
  grep -E "geometric" "$OUT/layers-gpu.md" 2>/dev/null
  pack
fi
