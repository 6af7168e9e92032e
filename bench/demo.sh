#!/usr/bin/env bash
# The headline cases on the CPU, each timed (`convnd bench`) and checked against the float64
# oracle (`convnd check`). Called by scripts/demo after the build; expects build/convnd.
set -euo pipefail
cd "$(dirname "$0")/.."
CONVND=${CONVND:-build/convnd}
PY=$(command -v python3)
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
avail_kb=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
echo "convnd demo on $cpu, $(nproc) cores, $((avail_kb / 1024 / 1024)) GiB available"
echo

# 1. A 1x1 conv whose output passes 2^31 elements: n=1025 x 2048 pixels x 1024 channels
#    (2,149,580,800 outputs, 8.6 GB in f32), sized down to the memory this machine has.
per_n=$((2048 * 1024 * 4 + 2048 * 8 * 4))       # output + input bytes per batch entry
fit_n=$(( (avail_kb * 1024 - (1 << 30)) / per_n ))  # keep 1 GiB for everything else
n=1025
if [ "$fit_n" -lt "$n" ]; then
  n=$fit_n
  echo "note: an output of 2^31 elements needs about 8.6 GB; this machine has room for n=$n"
  echo "      ($((n * 2048 * 1024)) output elements), so the demo runs that instead."
fi
pointwise="n=$n in=2048x1 c=8 o=1024"
longk="op=convT in=5160 c=1 o=1 k=4096 stride=1024"
longk100="op=convT in=516000 c=1 o=1 k=4096 stride=1024"

run_case() {  # name, problem, bench reps, extra check arguments...
  local name=$1 problem=$2 reps=$3
  shift 3
  echo "== $name: $problem"
  "$CONVND" bench "$problem" --reps "$reps" --json >"$results/$name.bench"
  "$CONVND" check "$problem" --json "$@" >"$results/$name.check" || true
  "$PY" - "$results/$name.bench" "$results/$name.check" <<'PYEOF'
import json, sys
b = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
c = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
print(f"   {c['result']}: {c['mode']} check of {c['checked']:,} elements, largest error {c['max_err_over_tol']:.3f} of the tolerance")
print(f"   {b['algorithm']}: {b['median_s'] * 1e3:.2f} ms, {b['gbps']:.2f} GB/s, workspace {b['workspace_bytes'] / 2**20:.2f} MiB, "
      f"peak memory {b['peak_rss_bytes'] / 2**20:.0f} MiB")
PYEOF
}

run_case "pointwise_2g" "$pointwise" 3 --samples 20000 --whole-batch -1
echo "   (the check compares every element of the last batch entry, whose offsets pass 2^31)"
run_case "long_kernel" "$longk" 10 --full
run_case "long_kernel_100x" "$longk100" 3 --samples 20000

echo
"$PY" - "$results" <<'PYEOF'
import json, os, sys
d = sys.argv[1]
rows = []
for name in ("pointwise_2g", "long_kernel", "long_kernel_100x"):
    b = json.loads(open(os.path.join(d, name + ".bench")).read().strip().splitlines()[-1])
    c = json.loads(open(os.path.join(d, name + ".check")).read().strip().splitlines()[-1])
    rows.append((b["problem"], b["algorithm"], f"{b['median_s'] * 1e3:.2f}", f"{b['workspace_bytes'] / 2**20:.2f}",
                 f"{b['peak_rss_bytes'] / 2**20:.0f}", c["result"]))
head = ("problem", "algorithm", "ms", "workspace MiB", "peak MiB", "check")
w = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
for r in [head] + rows:
    print("  ".join(str(v).ljust(w[i]) for i, v in enumerate(r)))
sys.exit(0 if all(r[-1] == "PASS" for r in rows) else 1)
PYEOF
