#!/usr/bin/env bash
# Builds, on the development machine, the folder the device scripts run from (the device's
# time is short and its starts are scarce: nothing is compiled there but the Python package):
# build-cuda/ (CMake, CUDA for sm_90), then in .gpubin/bundle.tar.xz the test program
# (convnd_tests), the CLI (convnd_cli), bench/gpu_bench.cu (gpu_bench_grad) and
# bench/cuda_host_overhead.cu, stripped, and CUTLASS's headers (cutlass/, for the package build
# there). .gpubin must be ignored by git (echo .gpubin/ >> .git/info/exclude). Carry it with
#   run(command="bash bench/device_all.sh", carry=[".gpubin"])
# (device_all.sh unpacks the bundle first).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x /usr/local/cuda/bin/nvcc ] && ! command -v nvcc >/dev/null; then export PATH=/usr/local/cuda/bin:$PATH; fi
[ -f build-cuda/build.ninja ] || cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build-cuda >/dev/null
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp build-cuda/tests/convnd_tests "$stage/"
cp build-cuda/convnd "$stage/convnd_cli"
for tool in gpu_bench:gpu_bench_grad cuda_host_overhead:cuda_host_overhead; do
  nvcc -O2 -std=c++20 -arch=sm_90 -Iinclude "bench/${tool%%:*}.cu" build-cuda/libconvnd.a -ldl \
    -o "$stage/${tool##*:}" -Xlinker -rpath -Xlinker /usr/local/cuda/lib64 &
done
wait
strip "$stage"/*
cutlass=${CONVND_CUTLASS_DIR:-$HOME/.cache/convnd-cutlass-4.2.0.0/cutlass_library/source}
[ -d "$cutlass/include/cutlass" ] && cp -r "$cutlass" "$stage/cutlass"
mkdir -p .gpubin
rm -f .gpubin/bundle.tar.xz
tar cJf .gpubin/bundle.tar.xz -C "$stage" .
ls -la .gpubin/bundle.tar.xz
