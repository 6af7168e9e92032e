# The steps bench/grad_device.sh and bench/device_quick.sh share on the GPU machine, as shell
# functions (sourced, not run). Each writes its log under $OUT and prints a short summary.

# Builds the Python package with CUDA (and the CUTLASS kernels when their headers travel in the
# carried folder $1: the device reaches no network) into /tmp/cnd, in the background, under a
# time limit of $2 seconds; sets build_pid.
start_python_build() {
  local bin=$1 seconds=$2 cutlass=()
  [ -f "$bin/cutlass/include/cutlass/cutlass.h" ] &&
    cutlass=(-C "cmake.define.CONVND_CUTLASS_DIR=$PWD/$bin/cutlass" -C cmake.define.CONVND_CUTLASS=ON)
  (CONVND_CUDA=ON CONVND_MLX=OFF CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) timeout "$seconds" python3 -m pip install -q \
     --no-build-isolation --no-deps --target /tmp/cnd -C build-dir=/tmp/bpy "${cutlass[@]}" . \
     >"$OUT/py-build.log" 2>&1
   echo "python package build rc=$?") &
  build_pid=$!
}

# The C++ CUDA tests of the carried folder $1 with gtest filter $2; prints the first $3 lines
# of the passes, failures and skips.
run_cuda_tests() {
  timeout 150 "$1/convnd_tests" --gtest_filter="$2" >"$OUT/cuda-tests.log" 2>&1
  echo "cuda tests rc=$?"
  grep -E "^\[  (PASSED|FAILED|SKIPPED)|Failure" -A3 "$OUT/cuda-tests.log" | head -"$3"
}

# With the package of start_python_build: its CUDA tests and convnd.torch's host overhead.
run_python_cuda_checks() {
  export PYTHONPATH=/tmp/cnd
  PYTHONUNBUFFERED=1 timeout 150 python3 -m pytest -q -p no:cacheprovider python/tests/test_cuda.py \
    python/tests/test_torch.py python/tests/test_grad.py -k "cuda or Cuda" >"$OUT/py-cuda-tests.log" 2>&1
  echo "python cuda tests rc=$?"
  tail -15 "$OUT/py-cuda-tests.log"
  PYTHONUNBUFFERED=1 timeout 60 python3 bench/torch_overhead.py --out "$OUT/torch-overhead.md" \
    >"$OUT/torch-overhead.log" 2>&1
  echo "torch overhead rc=$?"
  grep -E "^(cpu|cuda) " "$OUT/torch-overhead.log"
}
