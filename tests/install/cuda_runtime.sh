#!/usr/bin/env bash
# A convnd installed with the CUDA backend is usable from another CMake project without the
# consumer finding a CUDA toolkit of its own: the static library needs libcudart_static.a at
# link time, which the package config takes from a toolkit found quietly, else from where it
# was at build time, else fails find_package(convnd) with a message saying what to do.
# Usage: cuda_runtime.sh BUILD_DIR SOURCE_DIR. Exits 77 (skipped) for a build without CUDA.
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
config=$(echo "$tmp"/prefix/lib*/cmake/convnd/convndConfig.cmake)
if ! grep -q CONVND_WITH_CUDA "$(dirname "$config")/convndTargets.cmake"; then
  echo "skipped: $build has no CUDA backend"
  exit 77
fi
consumer() {  # name, extra CMake arguments...
  local name=$1
  shift
  cmake -S "$src/tests/install/consumer" -B "$tmp/$name" -G Ninja -DCMAKE_PREFIX_PATH="$tmp/prefix" "$@" >"$tmp/$name.log" 2>&1
}
# 1. The consumer's machine has the toolkit where FindCUDAToolkit looks.
consumer with_toolkit || { cat "$tmp/with_toolkit.log"; exit 1; }
cmake --build "$tmp/with_toolkit" >/dev/null && "$tmp/with_toolkit/consumer"
# 2. It finds no toolkit: the runtime library from the build is used, without a find.
consumer no_toolkit -DCMAKE_DISABLE_FIND_PACKAGE_CUDAToolkit=ON || { cat "$tmp/no_toolkit.log"; exit 1; }
cmake --build "$tmp/no_toolkit" >/dev/null && "$tmp/no_toolkit/consumer"
# 3. Neither: find_package(convnd) fails, naming the library and the ways out.
sed -i 's|set(_convnd_cudart "[^"]*")|set(_convnd_cudart "/nonexistent/libcudart_static.a")|' "$config"
if consumer no_runtime -DCMAKE_DISABLE_FIND_PACKAGE_CUDAToolkit=ON; then
  echo "find_package(convnd) succeeded without any CUDA runtime library" >&2
  exit 1
fi
grep -q 'libcudart_static.a' "$tmp/no_runtime.log" && grep -q 'CONVND_CUDA=OFF' "$tmp/no_runtime.log" ||
  { cat "$tmp/no_runtime.log"; echo "the failure does not say what is missing" >&2; exit 1; }
echo "cuda_runtime: ok (toolkit found; no toolkit; no runtime library: a clear error)"
