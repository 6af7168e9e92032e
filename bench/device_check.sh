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
#   6. layers: the GPU layers' forward and input gradient against cuDNN (bench/grad_gpu.py on
#      bench/gpu-layers-suite.txt).
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
if want layers && [ "$(left)" -gt 60 ]; then
  PYTHONPATH=/tmp/cnd PYTHONUNBUFFERED=1 timeout $(($(left) > 250 ? 180 : $(left) - 20)) python3 bench/grad_gpu.py \
    --gpu-bench "$bin/gpu_bench_grad" --reps 10 --out "$OUT/layers-gpu.md" --dirs fwd,bwd_d \
    --suite bench/gpu-layers-suite.txt \
    >"$OUT/layers-gpu.log" 2>&1
  echo "layers bench rc=$?"
  grep -E "geometric" "$OUT/layers-gpu.md" 2>/dev/null
  pack
fi
