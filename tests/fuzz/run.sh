#!/usr/bin/env bash
# Builds the libFuzzer targets with clang, AddressSanitizer and UBSan, and runs each one for
# SECONDS (default 60) on a copy of its seed corpus (tests/fuzz/corpus/<target>/).
#   usage: tests/fuzz/run.sh [SECONDS] [problem_string|npy ...]
# Needs clang and its runtime (Debian: apt-get install -y clang libclang-rt-14-dev).
# A crash leaves its input in $BUILD/artifacts/ and makes the script exit 1.
# Environment: CONVND_FUZZ_BUILD (default build-fuzz), JOBS (default 2), FUZZ_JOBS (parallel
# fuzzing processes per target, default 1).
set -euo pipefail
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(problem_string npy)

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${CONVND_FUZZ_BUILD:-$top/build-fuzz}

if ! command -v clang++ >/dev/null; then
  echo "run.sh: clang++ not found (apt-get install -y clang libclang-rt-14-dev)" >&2
  exit 2
fi
CC=clang CXX=clang++ cmake -S "$top" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCONVND_FUZZ=ON -DCONVND_SANITIZE=ON -DCONVND_BUILD_TESTS=OFF -DCONVND_BUILD_TOOLS=OFF -DCONVND_CUDA=OFF >/dev/null
ninja -C "$build" -j"${JOBS:-2}" $(printf 'fuzz_%s ' "${targets[@]}")

status=0
for t in "${targets[@]}"; do
  work="$build/corpus/$t"
  mkdir -p "$work" "$build/artifacts"
  extra=()
  [ -f "$here/$t.dict" ] && extra+=(-dict="$here/$t.dict")
  [ "${FUZZ_JOBS:-1}" = 1 ] || extra+=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS")
  echo "== fuzz_$t for ${secs}s"
  if ! "$build/tests/fuzz/fuzz_$t" "${extra[@]}" -max_total_time="$secs" -max_len=4096 -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$build/artifacts/$t-" "$work" "$here/corpus/$t"; then
    echo "== fuzz_$t FAILED: see $build/artifacts/" >&2
    status=1
  fi
done
exit $status
