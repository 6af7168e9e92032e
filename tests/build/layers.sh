#!/usr/bin/env bash
# The layers of docs/architecture.md, checked on the includes: each folder may include only the
# folders below it. A line that breaks a rule is printed with the rule. Usage: layers.sh SRC_ROOT
set -uo pipefail
root=$1
bad=0
# rule: folder, then the src/ folders its files must not include ("" for public headers only)
check() {
  local dir=$1 forbidden=$2 what=$3
  [ -d "$root/$dir" ] || { echo "no folder $root/$dir"; bad=1; return; }
  local hits
  hits=$(grep -rnE "#include \"($forbidden)/" "$root/$dir" --include='*.h' --include='*.cpp' --include='*.cu' --include='*.cuh' --include='*.inc' || true)
  if [ -n "$hits" ]; then
    echo "$dir must not include $what:"
    echo "$hits"
    bad=1
  fi
}
check src/core "cpu|cuda|plan|reference|engine|api" "cpu/, cuda/, plan/, reference/, engine/ or api/"
check src/reference "cpu|cuda|plan|engine|api" "cpu/, cuda/, plan/, engine/ or api/"
check src/engine "cpu|cuda|plan|reference|api" "cpu/, cuda/, plan/, reference/ or api/"
check src/cpu "cuda|plan|api" "cuda/, plan/ or api/"
check src/cuda "cpu|plan|api" "cpu/, plan/ or api/"
check src/plan "api" "api/"
check tools "core|cpu|cuda|plan|reference|engine|api" "anything under src/ (public headers only)"
check python "core|cpu|cuda|plan|reference|engine|api" "anything under src/ (public headers only)"
# Device code includes nothing from outside src/cuda/kernels/.
kern=$(grep -rnE '#include "' "$root/src/cuda/kernels" | grep -vE '#include "(elem\.cuh|params\.h|fast_divmod\.h|kernels\.h|gemm_conv_index\.h|gemm_conv\.cuh|weight_grad\.h|smem_opt_in\.h|mma_sync\.cuh)"' || true)
if [ -n "$kern" ]; then echo "src/cuda/kernels must include only its own headers:"; echo "$kern"; bad=1; fi
[ $bad -eq 0 ] && echo "1 passed, 0 failed: every layer includes only the layers below it"
exit $bad
