#!/usr/bin/env bash
# Builds the convnd library and bench/gemm_bench.cpp, and runs it beside OpenBLAS sgemm (when
# Debian's libopenblas-dev is installed: apt-get install libopenblas-dev) in the same run.
# Prints GFLOP/s of both on the conv-shaped problems and 2048^3, on 1 and 2 threads.
#   bench/gemm_bench.sh [gemm_bench arguments, e.g. --threads 2 1568x256x2304]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${CONVND_BENCH_BUILD:-$root/build-bench}
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCONVND_BUILD_TESTS=OFF \
  -DCONVND_BUILD_TOOLS=OFF -DCONVND_CUDA=OFF >/dev/null
ninja -C "$build" -j2 convnd >/dev/null

flags=()
libs=()
blas_inc=/usr/include/x86_64-linux-gnu/openblas-pthread
if [ -f "$blas_inc/cblas.h" ] && [ -e /usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so ]; then
  flags+=(-DCONVND_BENCH_OPENBLAS -I"$blas_inc")
  libs+=(-L/usr/lib/x86_64-linux-gnu/openblas-pthread -Wl,-rpath,/usr/lib/x86_64-linux-gnu/openblas-pthread -lopenblas)
else
  echo "OpenBLAS not found (apt-get install libopenblas-dev): convnd figures only" >&2
fi
g++ -std=c++20 -O2 -I"$root/include" -I"$root/src" "${flags[@]}" "$root/bench/gemm_bench.cpp" \
  "$build/libconvnd.a" "${libs[@]}" -lpthread -o "$build/gemm_bench"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
"$build/gemm_bench" "$@"
