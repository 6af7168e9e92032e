#!/usr/bin/env bash
# The GPU run, in one go, on a machine with an NVIDIA Hopper GPU (run from anywhere; it works in
# the repository root):
#   build   configure and build for sm_90 with nvcc (build-gpu/, every core), plus bench/gpu_bench
#   tests   the CUDA unit tests (gtest Cuda*), when GoogleTest is there or carried in build-gtest/
#   lists   tests/lists/cuda.txt through `convnd check --backend cuda` (one process a problem),
#           and, without the unit tests, the tiny-budget tiling equality through `convnd run`
#   bench   bench/gpu-suite.txt with convnd, device-resident (bench/gpu_bench.cu), each problem's
#           batch-entry tails checked against the oracle; the device copy bandwidth
#   variants  the tile alternatives of bench/gpu-variants.txt (gpu_bench --tile), to check the
#           planner's rules
#   peers   PyTorch (bench/peers_gpu.py) on the problems of bench/gpu-peers-quick.txt (those
#           whose first call takes seconds, not minutes), plus its copy and GEMM ceilings; the
#           other suite problems' PyTorch figures come from an earlier run's file (below)
#   checks  the suite problems through `convnd check --backend cuda --samples K` (those of
#           tests/lists/gpu_large.txt only with GPU_SH_CHECK_LARGE=1: staging tens of GB through
#           the host takes minutes; the bench stage's tails check them on the device)
# then bench/results/gpu-<date>.md (and $OUT/summary.md) with the ratios, its plot gpu-<date>.png
# (bench/plot.sh), and a short table
# printed last. Logs and results go to $OUT (default out/gpu): gpu.log (everything), build.log,
# tests.log, checks.jsonl, bench.jsonl, variants.jsonl, peers.jsonl, summary.md.
#
# Fail soft: each problem runs in its own process under a time limit, and a stage that fails
# does not stop the next. The run keeps to GPU_SH_SECONDS (default 540) in all: stages past
# the deadline are skipped and say so. GPU_SH_STAGES picks stages (default: all, in the order
# above); a warm machine keeps build-gpu/, so a second call can run the stages the first missed.
# Narrow runs: GPU_SH_TESTS is the unit tests' gtest filter (default 'Cuda*'); GPU_SH_MATCH, an
# extended regex, keeps only the problems of bench/gpu-suite.txt and bench/gpu-variants.txt
# whose line matches it (a run with it set writes its report to $OUT only, not bench/results).
# E.g. the depthwise kernels alone (build, their unit tests, the suite row and the variants):
#   GPU_SH_STAGES="build tests bench variants" GPU_SH_TESTS='CudaAlgorithms.Depthwise*' \
#     GPU_SH_MATCH='g=384' bench/gpu.sh
# PyTorch: GPU_SH_PEERS=quick (default) re-runs bench/gpu-peers-quick.txt, each problem in its
# own process under GPU_SH_PEER_TIMEOUT seconds (default 32: Python and CUDA start-up, a first
# call of up to ~24 s, then ~1 s of timed calls), and takes every suite problem it did not
# re-run, or that failed or timed out here, from GPU_SH_PEERS_FROM (default
# bench/results/device-runs/gpu-run1-h100-peers.jsonl; a path in the repository or from the
# caller's directory), saying so on each row of the report. GPU_SH_PEERS=all runs the whole
# suite (45 s a problem; the file still fills the gaps); GPU_SH_PEERS=none takes every figure
# from the file.
set -uo pipefail
CALLER_DIR=$PWD
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/out/gpu}
mkdir -p "$OUT" bench/results
exec > >(tee -a "$OUT/gpu.log") 2>&1

T0=$(date +%s)
BUDGET=${GPU_SH_SECONDS:-540}
STAGES=" ${GPU_SH_STAGES:-build tests lists bench variants peers checks} "
PEERS_MODE=${GPU_SH_PEERS:-quick}
[ "$PEERS_MODE" = run ] && PEERS_MODE=all
PEERS_FROM_ARG=${GPU_SH_PEERS_FROM-bench/results/device-runs/gpu-run1-h100-peers.jsonl}
PEERS_FROM=""
if [ -n "$PEERS_FROM_ARG" ]; then
  for f in "$PEERS_FROM_ARG" "$CALLER_DIR/$PEERS_FROM_ARG"; do
    [ -f "$f" ] && PEERS_FROM=$f && break
  done
  [ -z "$PEERS_FROM" ] && echo "GPU_SH_PEERS_FROM=$PEERS_FROM_ARG: no such file (no earlier PyTorch figures)"
fi
if [ "$PEERS_MODE" = none ]; then
  if [ -n "$PEERS_FROM" ]; then STAGES=${STAGES/ peers / }; else PEERS_MODE=quick; fi
fi
SAMPLES=${GPU_SH_SAMPLES:-1000}
B=${GPU_SH_BUILD_DIR:-build-gpu}
JOBS=$(nproc)
PY=python3
[ -x /opt/torch/.venv/bin/python3 ] && PY=/opt/torch/.venv/bin/python3
if ! command -v nvcc >/dev/null; then
  for d in /usr/local/cuda/bin /usr/local/cuda-13*/bin /opt/cuda/bin; do [ -x "$d/nvcc" ] && export PATH=$d:$PATH && break; done
fi
CUDA_HOME_GUESS=$(dirname "$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")")
NOTES=()

want() { [[ "$STAGES" == *" $1 "* ]]; }
elapsed() { echo $(($(date +%s) - T0)); }
left() { echo $((BUDGET - $(elapsed))); }
note() { NOTES+=("$*"); echo "-- $* (t=$(elapsed)s)"; }
# min(a, time left - reserve): a time limit that keeps the run inside its budget.
limit() { local l=$(($(left) - ${2:-20})); [ "$l" -lt "$1" ] && echo "$l" || echo "$1"; }
json_str() { "$PY" -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$1"; }
# The problems of a list file, one a line, comments and blanks dropped.
problems() { sed -e 's/#.*//' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' "$1" | grep -v '^$'; }
MATCH=${GPU_SH_MATCH:-}
# problems(), narrowed to the lines matching GPU_SH_MATCH when it is set.
matching() { if [ -n "$MATCH" ]; then problems "$1" | grep -E -- "$MATCH"; else problems "$1"; fi; }

echo "== convnd GPU run $(date -u +%FT%TZ) on $(hostname)"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>&1 | head -4
DEVICE=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
nvcc --version 2>&1 | tail -1
echo "cores: $JOBS; python: $PY; stages:$STAGES; budget ${BUDGET}s${MATCH:+; problems matching /$MATCH/}"

# ---- build ---------------------------------------------------------------------------------
TESTS_BUILT=0
if want build; then
  t=$(date +%s)
  cfg=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DCONVND_CUDA=ON)
  : >"$OUT/build.log"
  if cmake -S . -B $B "${cfg[@]}" -DCONVND_BUILD_TESTS=ON >>"$OUT/build.log" 2>&1; then
    TESTS_BUILT=1
  elif [ -f build-gtest/src/CMakeLists.txt ] &&
       cmake -S build-gtest/src -B build-gtest/build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_GMOCK=OFF \
         -DCMAKE_INSTALL_PREFIX="$ROOT/build-gtest/install" >>"$OUT/build.log" 2>&1 &&
       cmake --build build-gtest/build -j"$JOBS" --target install >>"$OUT/build.log" 2>&1 &&
       cmake -S . -B $B "${cfg[@]}" -DCONVND_BUILD_TESTS=ON -DCMAKE_PREFIX_PATH="$ROOT/build-gtest/install" \
         >>"$OUT/build.log" 2>&1; then
    TESTS_BUILT=1
    echo "GoogleTest built from the carried build-gtest/src"
  else
    echo "no GoogleTest: building without the unit tests (the CLI checks still run)"
    cmake -S . -B $B "${cfg[@]}" -DCONVND_BUILD_TESTS=OFF >>"$OUT/build.log" 2>&1
  fi
  if cmake --build $B -j"$JOBS" >>"$OUT/build.log" 2>&1 &&
     nvcc -O2 -std=c++20 -arch=sm_90 -Iinclude bench/gpu_bench.cu $B/libconvnd.a -ldl -o $B/gpu_bench \
       -Xlinker -rpath -Xlinker "$CUDA_HOME_GUESS/lib64" -Xlinker -rpath -Xlinker "$CUDA_HOME_GUESS/targets/x86_64-linux/lib" \
       >>"$OUT/build.log" 2>&1; then
    note "build: ok in $(($(date +%s) - t)) s (unit tests $([ $TESTS_BUILT = 1 ] && echo built || echo 'not built: no GoogleTest'))"
  else
    note "build: FAILED (see build.log)"
    grep -E "error|Error" "$OUT/build.log" | head -20
    tail -20 "$OUT/build.log"
  fi
fi
[ -x $B/tests/convnd_tests ] && TESTS_BUILT=1
CONVND=$B/convnd
HAVE_BIN=0
[ -x $CONVND ] && [ -x $B/gpu_bench ] && HAVE_BIN=1
[ $HAVE_BIN = 1 ] || note "no convnd/gpu_bench binaries: nothing else can run"

# ---- CUDA unit tests ------------------------------------------------------------------------
if want tests && [ $HAVE_BIN = 1 ]; then
  if [ $TESTS_BUILT = 1 ] && [ "$(left)" -gt 60 ]; then
    t=$(date +%s)
    timeout "$(limit 200)" $B/tests/convnd_tests --gtest_filter="${GPU_SH_TESTS:-Cuda*}" --gtest_color=no >"$OUT/tests.log" 2>&1
    rc=$?
    note "unit tests (gtest ${GPU_SH_TESTS:-Cuda*}): exit $rc in $(($(date +%s) - t)) s$([ $rc = 124 ] && echo ', TIMED OUT')"
    grep -E "^\[  (FAILED|SKIPPED) " "$OUT/tests.log" | sort -u | head -20
  else
    note "unit tests: skipped ($([ $TESTS_BUILT = 1 ] && echo 'out of time' || echo 'not built'))"
  fi
fi

# One `convnd check --backend cuda` in its own process; one JSON record on stdout.
check_one() {  # list problem [check options...]
  local list=$1 p=$2 out rc line
  shift 2
  out=$(timeout "$(limit 90)" $CONVND check "$p" --backend cuda --json "$@" 2>&1)
  rc=$?
  line=$(printf '%s\n' "$out" | grep '^{"result"' | tail -1)
  if [ -n "$line" ]; then
    printf '{"list": "%s", "suite": %s, "rc": %d, "result": %s}\n' "$list" "$(json_str "$p")" "$rc" "$line"
  else
    printf '{"list": "%s", "suite": %s, "rc": %d, "error": %s}\n' "$list" "$(json_str "$p")" "$rc" \
      "$(json_str "$(printf '%s' "$out" | tail -c 300)")"
  fi
}

# ---- problem lists through the CLI ---------------------------------------------------------
: >"$OUT/checks.jsonl"
if want lists && [ $HAVE_BIN = 1 ]; then
  t=$(date +%s)
  n=0
  bad=0
  while IFS= read -r p; do
    if [ "$(left)" -lt 60 ]; then note "lists: out of time after $n problems"; break; fi
    rec=$(check_one cuda "$p" --seed $((RANDOM * 32768 + RANDOM)))
    echo "$rec" >>"$OUT/checks.jsonl"
    n=$((n + 1))
    [[ "$rec" == *'"result": "PASS"'* ]] || { bad=$((bad + 1)); echo "not PASS: $rec"; }
  done < <(problems tests/lists/cuda.txt)
  note "list cuda.txt: $n checked, $bad not PASS, in $(($(date +%s) - t)) s"
  if [ $TESTS_BUILT = 0 ]; then
    # Tiny budget against a large one, bit for bit, through the CLI (the unit test's job otherwise).
    tmp=$(mktemp -d)
    same=0
    diff=0
    while IFS= read -r p; do
      if $CONVND run "$p" --backend cuda --budget 64KiB --seed 7 --output "$tmp/a.npy" >/dev/null 2>&1 &&
         $CONVND run "$p" --backend cuda --budget 4GiB --seed 7 --output "$tmp/b.npy" >/dev/null 2>&1 &&
         cmp -s "$tmp/a.npy" "$tmp/b.npy"; then
        same=$((same + 1))
      else
        diff=$((diff + 1))
        echo "tiling: differs or failed: $p"
      fi
    done < <(problems tests/lists/cuda_tiling.txt)
    rm -rf "$tmp"
    note "tiling (64 KiB vs 4 GiB budget, bitwise, via convnd run): $same same, $diff differ or failed"
  fi
fi

# ---- convnd on the suite, device-resident ---------------------------------------------------
: >"$OUT/bench.jsonl"
if want bench && [ $HAVE_BIN = 1 ]; then
  t=$(date +%s)
  line=$(timeout 60 $B/gpu_bench --copy 2>&1 | grep '^{' | tail -1)
  [ -n "$line" ] && printf '{"copy": %s}\n' "$line" >>"$OUT/bench.jsonl"
  n=0
  while IFS= read -r p; do
    if [ "$(left)" -lt 40 ]; then note "bench: out of time after $n problems"; break; fi
    out=$(timeout "$(limit 90)" $B/gpu_bench --reps 5 --tails 64 "$p" 2>&1)
    rc=$?
    line=$(printf '%s\n' "$out" | grep '^{"problem"' | tail -1)
    if [ -n "$line" ]; then
      printf '{"suite": %s, "rc": %d, "result": %s}\n' "$(json_str "$p")" "$rc" "$line" >>"$OUT/bench.jsonl"
    else
      printf '{"suite": %s, "rc": %d, "error": %s}\n' "$(json_str "$p")" "$rc" \
        "$(json_str "exit $rc: $(printf '%s' "$out" | tail -c 200)")" >>"$OUT/bench.jsonl"
    fi
    echo "$p -> ${line:-exit $rc: $(printf '%s' "$out" | tail -c 200)}"
    n=$((n + 1))
  done < <(matching bench/gpu-suite.txt)
  note "bench: $n problems in $(($(date +%s) - t)) s"
fi

# ---- tile alternatives -------------------------------------------------------------------------
: >"$OUT/variants.jsonl"
if want variants && [ $HAVE_BIN = 1 ] && [ -f bench/gpu-variants.txt ]; then
  t=$(date +%s)
  n=0
  while IFS= read -r v; do
    if [ "$(left)" -lt 120 ]; then note "variants: out of time after $n"; break; fi
    p=$(printf '%s' "${v%%|*}" | sed 's/[[:space:]]*$//')
    tiles=()
    for tv in ${v#*|}; do tiles+=(--tile "$tv"); done
    out=$(timeout "$(limit 60)" $B/gpu_bench --reps 5 "${tiles[@]}" "$p" 2>&1)
    line=$(printf '%s\n' "$out" | grep '^{"problem"' | tail -1)
    printf '{"suite": %s, "variant": %s, "result": %s}\n' "$(json_str "$p")" "$(json_str "${v#*|}")" \
      "${line:-$(json_str "$(printf '%s' "$out" | tail -c 200)")}" >>"$OUT/variants.jsonl"
    echo "variant $p |${v#*|} -> ${line:-$(printf '%s' "$out" | tail -c 200)}"
    n=$((n + 1))
  done < <(matching bench/gpu-variants.txt)
  note "variants: $n in $(($(date +%s) - t)) s"
fi

# ---- PyTorch on the suite ---------------------------------------------------------------------
# The quick problems here; the rest (and any that fail here) from the earlier run's file.
peer_dev=""
if [ -n "$PEERS_FROM" ]; then
  peer_dev=$("$PY" -c 'import json,sys; print(next((json.loads(l).get("device","?") for l in open(sys.argv[1]) if l.startswith("{")), "?"))' "$PEERS_FROM" 2>/dev/null)
fi
: >"$OUT/peers.jsonl"
if [ -n "$PEERS_FROM" ] && ! want peers; then
  cp "$PEERS_FROM" "$OUT/peers.jsonl"
  note "peers (PyTorch): not re-run; taken from ${PEERS_FROM_ARG} (an earlier run on ${peer_dev:-?}; this run's device: ${DEVICE:-?})"
fi
if want peers; then
  if [ "$(left)" -gt 60 ]; then
    t=$(date +%s)
    reserve=0
    want checks && reserve=45
    list=bench/gpu-peers-quick.txt
    tmo=${GPU_SH_PEER_TIMEOUT:-32}
    if [ "$PEERS_MODE" = all ]; then list=bench/gpu-suite.txt; tmo=${GPU_SH_PEER_TIMEOUT:-45}; fi
    PYTHONUNBUFFERED=1 "$PY" bench/peers_gpu.py --suite "$list" --out "$OUT/peers.jsonl" --ceilings \
      --timeout "$tmo" --deadline $((T0 + BUDGET - 15 - reserve))
    got=$(grep -c '"ms"' "$OUT/peers.jsonl")
    note "peers (PyTorch): $got of $(problems "$list" | wc -l) problems of $list timed here, ${tmo} s a problem, in $(($(date +%s) - t)) s$([ -n "$PEERS_FROM" ] && echo "; the other suite problems from ${PEERS_FROM_ARG} (an earlier run on ${peer_dev:-?})")"
  else
    note "peers (PyTorch): skipped, out of time$([ -n "$PEERS_FROM" ] && echo "; every figure from ${PEERS_FROM_ARG}")"
  fi
fi

# ---- sampled checks of the suite -----------------------------------------------------------
if want checks && [ $HAVE_BIN = 1 ]; then
  t=$(date +%s)
  n=0
  while IFS= read -r p; do
    if [ "$(left)" -lt 25 ]; then note "checks: out of time after $n problems"; break; fi
    # The >2^31 problems (tests/lists/gpu_large.txt) get four times the samples, when asked for.
    k=$SAMPLES
    if problems tests/lists/gpu_large.txt | grep -qxF "$p"; then
      [ "${GPU_SH_CHECK_LARGE:-0}" = 1 ] || continue
      k=$((SAMPLES * 4))
    fi
    rec=$(check_one suite "$p" --samples "$k")
    echo "$rec" >>"$OUT/checks.jsonl"
    echo "$rec"
    n=$((n + 1))
  done < <(problems bench/gpu-suite.txt)
  note "suite checks (--samples $SAMPLES): $n problems in $(($(date +%s) - t)) s"
fi

# ---- report ---------------------------------------------------------------------------------
note "total $(elapsed) s"
args=()
for n in "${NOTES[@]}"; do args+=(--note "$n"); done
outs=(--out "bench/results/gpu-$(date +%F).md")
[ -n "$MATCH" ] && outs=()
if [ -n "$PEERS_FROM" ]; then
  if want peers; then args+=(--peers-fallback "$PEERS_FROM" --peers-fallback-name "$PEERS_FROM_ARG")
  else args+=(--peers-from "$PEERS_FROM_ARG"); fi
fi
"$PY" bench/compare_gpu.py --suite bench/gpu-suite.txt --bench "$OUT/bench.jsonl" --peers "$OUT/peers.jsonl" \
  --checks "$OUT/checks.jsonl" --tests "$OUT/tests.log" --variants "$OUT/variants.jsonl" --device "${DEVICE:-}" \
  --out "$OUT/summary.md" "${outs[@]}" "${args[@]}"
# The plot beside the result (skipped with a warning where matplotlib cannot be installed).
if [ ${#outs[@]} -gt 0 ]; then bench/plot.sh "${outs[1]}" || true; fi
