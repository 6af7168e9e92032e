#!/usr/bin/env bash
# Data-parallel training with convnd layers (issue #16): bench/multi_gpu.py under torchrun, one
# process per GPU over NCCL, beside the same run with the stock PyTorch layers, at world sizes 1
# and 2 (the scaling), each checking that one step's gradients equal a single-process run on the
# concatenated batch (1e-4 relative, float32). Without two GPUs it runs what the machine allows:
# with one GPU, world size 1 over NCCL; and always world sizes 1 and 2 of CPU processes over gloo.
# Writes $OUT/multi-gpu.jsonl and a table $OUT/multi-gpu.md (OUT defaults to out/).
#   bench/multi_gpu.sh            (PYTHON: an interpreter with torch and convnd; default python3)
# NVLink multicast stays off (NCCL_NVLS_ENABLE=0), as the device notes ask.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out}
mkdir -p "$OUT"
py=${PYTHON:-python3}
export NCCL_NVLS_ENABLE=0 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
gpus=$("$py" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)' 2>/dev/null || echo 0)
jsonl="$OUT/multi-gpu.jsonl"
: >"$jsonl"
run() {  # backend world layers [args]
  local backend=$1 world=$2 layers=$3
  shift 3
  "$py" -m torch.distributed.run --standalone --nproc_per_node "$world" bench/multi_gpu.py \
    --backend "$backend" --layers "$layers" "$@" 2>"$OUT/multi-gpu-$backend-$world-$layers.log" |
    grep '^{' | tee -a "$jsonl"
}
for layers in convnd torch; do
  if [ "$gpus" -ge 2 ]; then run nccl 1 "$layers"; run nccl 2 "$layers"; fi
  if [ "$gpus" -eq 1 ]; then run nccl 1 "$layers"; fi
  run gloo 1 "$layers" --batch 4 --length 2048 --steps 5
  run gloo 2 "$layers" --batch 4 --length 2048 --steps 5
done
"$py" - "$jsonl" "$OUT/multi-gpu.md" "$gpus" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
lines = [f"# Data-parallel training, convnd layers beside the stock ones ({sys.argv[3]} GPUs visible)", "",
         "| layers | backend | device | world | samples per process | grad rel. error | step ms | scaling (world 1 ms x world / ms) |",
         "| --- | --- | --- | --- | --- | --- | --- | --- |"]
base = {(r["layers"], r["backend"]): r["step_ms"] for r in rows if r["world"] == 1}
bad = []
for r in rows:
    one = base.get((r["layers"], r["backend"]))
    scale = f"{one * r['world'] / r['step_ms']:.2f}" if one and r["world"] > 1 else ""
    lines.append(f"| {r['layers']} | {r['backend']} | {r['device']} | {r['world']} | {r['batch_per_process']} | "
                 f"{r['grad_rel_err']:.2e} | {r['step_ms']} | {scale} |")
    if r["grad_rel_err"] is None or r["grad_rel_err"] > 1e-4:
        bad.append(r)
text = "\n".join(lines) + "\n"
open(sys.argv[2], "w").write(text)
print(text)
sys.exit(1 if bad or not rows else 0)
PY
