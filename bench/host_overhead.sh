#!/usr/bin/env bash
# Builds bench/host_overhead.cpp against the convnd library (CPU only) and runs it, then times
# the same tiny conv from Python when the package is installed in .venv.
#   bench/host_overhead.sh [calls] [threads]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${CONVND_BENCH_BUILD:-$root/build-bench}
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCONVND_BUILD_TESTS=OFF \
  -DCONVND_BUILD_TOOLS=OFF -DCONVND_CUDA=OFF >/dev/null
ninja -C "$build" -j"$(nproc)" convnd >/dev/null
g++ -O2 -std=c++20 -I"$root/include" "$root/bench/host_overhead.cpp" "$build/libconvnd.a" -lpthread \
  -o "$build/host_overhead"
echo "== C++ (public API)"
"$build/host_overhead" "$@"
if [ -x "$root/.venv/bin/python" ] && "$root/.venv/bin/python" -c 'import convnd' 2>/dev/null; then
  echo "== Python (convnd.conv2d on NumPy arrays)"
  "$root/.venv/bin/python" "$root/bench/host_overhead.py" "$@"
fi
