#!/usr/bin/env bash
# The C++ program in README.md compiles as shown, against the public headers only
# (include/, not src/), links against the built library and prints what its comments say.
# Usage: readme_snippet.sh SOURCE_DIR LIBRARY   (LIBRARY: the built libconvnd.a)
set -euo pipefail
src=$1 lib=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The first ```cpp block of the README, as it stands.
awk '/^```cpp$/ {on = 1; next} on && /^```$/ {exit} on {print}' "$src/README.md" >"$tmp/snippet.cpp"
[ -s "$tmp/snippet.cpp" ] || { echo "README.md has no \`\`\`cpp block" >&2; exit 1; }
libs=(-pthread)
# A library built with the CUDA backend calls the CUDA runtime (linked statically, as the
# installed CMake package does); cuBLAS is opened at run time.
# (grep reads all of nm's output: with pipefail, grep -q would stop early and nm's SIGPIPE would
# make the test look false.)
if [ "$(nm -A "$lib" 2>/dev/null | grep -c ' U cudaMalloc')" -gt 0 ]; then
  cudart=$(ls /usr/local/cuda/lib64/libcudart_static.a /usr/local/cuda/targets/*/lib/libcudart_static.a 2>/dev/null | head -1)
  [ -n "$cudart" ] || { echo "the library needs libcudart_static.a, not found under /usr/local/cuda" >&2; exit 1; }
  libs+=("$cudart" -ldl -lrt)
fi
${CXX:-c++} -std=c++20 -Wall -Werror -I "$src/include" "$tmp/snippet.cpp" "$lib" "${libs[@]}" -o "$tmp/snippet"
out=$("$tmp/snippet")
echo "$out"
grep -q '^y\[0, 0, 0, 0\] = 9$' <<<"$out" || { echo "the README program printed the wrong value" >&2; exit 1; }
grep -q 'im2col_gemm\|algorithm' <<<"$out" || { echo "the README program printed no plan" >&2; exit 1; }
