#!/usr/bin/env bash
# The per-ISA objects of the library (src/cpu/isa/*__avx2.cpp, *__avx512.cpp, *__avx512bf16.cpp,
# *__amx.cpp, compiled with -mavx2 / -mavx512f / ...) must define no symbol the linker could merge with another object's copy:
# an inline function or template shared with generic code, emitted here with AVX-512
# instructions, could be the copy the linker keeps for every caller (an illegal instruction on
# a CPU without AVX-512). So every weak (W/V) symbol they define must be inside their own ISA
# namespace (convnd::isa_<isa>::) or file-local. Usage: isa_symbols.sh path/to/libconvnd.a
set -euo pipefail
lib=$1
bad=0
current=""
while IFS= read -r line; do
  case "$line" in
    *.o:) current=${line%:}; continue ;;
  esac
  case "$current" in
    *__avx2.cpp.o|*__avx512.cpp.o|*__avx512bf16.cpp.o|*__amx.cpp.o) ;;
    *) continue ;;
  esac
  # "address type name": weak definitions only.
  type=$(awk '{print $(NF>2 ? 2 : 1)}' <<<"$line")
  [[ "$type" == W || "$type" == V ]] || continue
  name=$(awk '{print $NF}' <<<"$line")
  isa=${current##*__}; isa=${isa%.cpp.o}
  ns="isa_${isa}"
  # Mangled: _ZN6convnd<len><ns>... is a name inside convnd::<ns>.
  prefix="_ZN6convnd${#ns}${ns}"
  if [[ "$name" != "$prefix"* && "$name" != *_GLOBAL__N_* ]]; then
    echo "weak symbol outside convnd::${ns}:: in $current: $(c++filt "$name")"
    bad=1
  fi
done < <(nm "$lib")
count=$(nm -C "$lib" | grep -cE '__(avx2|avx512|avx512bf16|amx)\.cpp\.o:$' || true)
if [ "$count" -lt 2 ]; then
  echo "no per-ISA objects found in $lib (expected src/cpu/isa/*__avx2.cpp.o and *__avx512.cpp.o)"
  exit 1
fi
[ $bad -eq 0 ] && echo "1 passed, 0 failed: the $count per-ISA objects define no weak symbol outside their ISA namespace"
exit $bad
