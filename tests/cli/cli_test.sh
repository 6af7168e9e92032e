#!/usr/bin/env bash
# Tests of the convnd command-line program: exit codes, one-line errors, .npy files, check.
# usage: cli_test.sh CASE /path/to/convnd      (CASE: see the functions named case_* below)
# No Python: the .npy files, good and bad, are written with printf.
set -u
CASE=${1:?case}
CONVND=${2:?path to the convnd binary}
T=$(mktemp -d "${TMPDIR:-/tmp}/convnd-cli.XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
FAILS=0

fail() {
  echo "FAIL: $*" >&2
  FAILS=$((FAILS + 1))
}

# expect CODE CMD...: runs the CLI, keeps stdout in $T/out and stderr in $T/err, checks the
# exit code; for a nonzero code the error must be exactly one line on stderr. With TIMEOUT=S
# set, a run that takes longer than S seconds fails (exit 124).
expect() {
  local want=$1
  shift
  ${TIMEOUT:+timeout "$TIMEOUT"} "$CONVND" "$@" >"$T/out" 2>"$T/err"
  local got=$?
  if grep -qE "Sanitizer|runtime error:" "$T/err"; then
    fail "convnd $*: sanitizer report: $(head -c 2000 "$T/err")"
    return 1
  fi
  if [ "$got" != "$want" ]; then
    fail "convnd $* exited $got, expected $want; stderr: $(head -c 600 "$T/err")"
    return 1
  fi
  if [ "$want" != 0 ] && [ "$want" != 1 ]; then
    local lines
    lines=$(wc -l <"$T/err")
    [ "$lines" = 1 ] || fail "convnd $*: expected one line on stderr, got $lines: $(head -c 600 "$T/err")"
  fi
  return 0
}

# contains FILE TEXT: the file contains the fixed string.
contains() {
  grep -qF -- "$2" "$1" || fail "$1 lacks '$2': $(head -c 600 "$1")"
}

# npy PATH DICT DATA [MAJOR]: writes a .npy file whose header dict is DICT (padding added
# so that the data starts at a multiple of 16) and whose data is the printf string DATA.
npy() {
  local path=$1 dict=$2 data=$3 major=${4:-1}
  local pre=10
  [ "$major" = 1 ] || pre=12
  while [ $(((pre + ${#dict} + 1) % 16)) != 0 ]; do dict="$dict "; done
  local hlen=$((${#dict} + 1))
  printf "\\x93NUMPY\\x$(printf %02x "$major")\\x00" >"$path"
  printf "\\x$(printf %02x $((hlen & 255)))\\x$(printf %02x $(((hlen >> 8) & 255)))" >>"$path"
  [ "$major" = 1 ] || printf "\\x$(printf %02x $(((hlen >> 16) & 255)))\\x$(printf %02x $(((hlen >> 24) & 255)))" >>"$path"
  printf '%s\n' "$dict" >>"$path"
  printf "$data" >>"$path"
}

# The data bytes of a .npy file (everything after its header).
npy_data() {
  local f=$1 major hlen
  major=$(od -An -tu1 -j6 -N1 "$f" | tr -d ' ')
  if [ "$major" = 1 ]; then
    hlen=$(od -An -tu2 -j8 -N2 "$f" | tr -d ' ')
    tail -c +$((10 + hlen + 1)) "$f"
  else
    hlen=$(od -An -tu4 -j8 -N4 "$f" | tr -d ' ')
    tail -c +$((12 + hlen + 1)) "$f"
  fi
}

case_usage() {
  expect 0 --help && contains "$T/out" "usage: convnd"
  for c in run check plan bench; do
    expect 0 "$c" --help && contains "$T/out" "usage: convnd $c"
  done
  expect 2
  expect 2 frobnicate 'in=8 c=1 o=1'
  expect 2 run 'in=8 c=1 o=1' --frobnicate
  expect 2 run 'in=8 c=1 o=1' -x
  expect 2 run 'in=8 c=1 o=1' --seed
  expect 2 run 'in=8 c=1 o=1' --seed abc
  expect 2 run 'in=8 c=1 o=1' --threads 0
  # Thread counts are bounded (documented in tools/README.md).
  expect 2 run 'in=8 c=1 o=1' --threads 4097 && contains "$T/err" "--threads '4097' is not a whole number from 1 to 4096"
  expect 2 plan 'in=8 c=1 o=1' --threads 65536 && contains "$T/err" "--threads"
  expect 0 plan 'in=8 c=1 o=1' --threads 4096 && contains "$T/out" "threads:    4096"
  # --isa takes the CPU paths by name.
  expect 2 run 'in=8 c=1 o=1' --isa sse9 && contains "$T/err" "--isa 'sse9' is not auto, generic, avx2, avx512, avx512_bf16 or amx"
  expect 2 plan 'in=8 c=1 o=1' --isa sm_90 && contains "$T/err" "--isa"
  for c in run check plan bench; do
    expect 0 "$c" --help && contains "$T/out" "--isa ISA"
  done
  # --precision is exact or tf32; anything else is a usage error for every command.
  for c in run check plan bench; do
    expect 2 "$c" 'in=8 c=1 o=1' --precision fast &&
      contains "$T/err" "$c: --precision 'fast' is not exact or tf32 (see convnd $c --help)"
    expect 0 "$c" --help && contains "$T/out" "--precision P"
  done
  expect 2 plan 'in=8 c=1 o=1' --precision && contains "$T/err" "option '--precision' needs a value"
  expect 2 run 'in=8 c=1 o=1' --precision=TF32 && contains "$T/err" "--precision 'TF32'"
  expect 2 run 'in=8 c=1 o=1' --budget 12XB && contains "$T/err" "--budget"
  expect 2 run 'in=8 c=1 o=1' --backend tpu
  expect 2 run 'in=8 c=1 o=1' --full
  expect 2 check 'dir=bwd_d in=8 c=1 o=1' --dy dy.npy && contains "$T/err" "option '--dy' does not apply to 'check'"
  expect 0 run --help && contains "$T/out" "--dy FILE"
  expect 2 run
  expect 2 check 'in=8 c=1 o=1' --full --samples 10
  expect 2 check --file list.txt 'in=8 c=1 o=1'
  expect 2 bench 'in=8 c=1 o=1' --reps 0
  expect 2 plan 'in=8 c=1 o=1' --json=1
  # Unquoted fields are joined into one problem string; --opt=value works.
  expect 0 run in=8 c=1 o=1 --seed=3 && contains "$T/out" "problem:   in=8 c=1 o=1"
  # A library error names the option's problem
  expect 2 run 'in=8 c=1 o=1' --algorithm no_such_algorithm && contains "$T/err" "problem: in=8 c=1 o=1"
}

case_invalid() {
  local p
  local -a bad=(
    'in=8 c=1 o=1 frob=2'                       # unknown key
    'in=8 c=1 o=1 c=2'                          # repeated key
    'in=8 c=1x o=1'                             # bad number
    'in=8 c=1 o=99999999999999999999'           # number beyond int64
    'in=8x8 c=1 o=1 k=3'                        # rank mismatch
    'in=8x8 c=1 o=1 stride=1x1x1'               # rank mismatch (per-axis field)
    'in=8 c=4 o=4 g=0'                          # g=0
    'in=8 c=4 o=4 g=3'                          # groups do not divide
    'op=convT in=8 c=1 o=1 k=3 stride=2 outpad=2' # outpad out of range
    'in=8 c=1 o=1 outpad=1'                     # outpad on op=conv
    'in=4 c=1 o=1 k=7'                          # kernel larger than the input
    'in=4 c=1 o=1 k=9 pad=2 stride=3'           # kernel larger than the padded input, stride > 1
    'in=4611686018427387904 c=4 o=1'            # x bytes overflow int64
    'n=4294967296 in=4294967296 c=1 o=1'        # element count overflows int64
    'in=8 c=1 o=1 k=3 dil=4611686018427387904'  # dilated kernel extent overflows
    'n=1 in=8 c=2 o=2 k=3 pad=-9223372036854775808:9223372036854775807'  # index math: -lo overflows
    'n=1 in=8 c=1 o=1 k=1 pad=-4611686018427387904:9223372036854775807 stride=4611686018427387904'  # p*stride - lo overflows
    'in=8 c=0 o=1'                              # c=0
    'in=8 o=1'                                  # missing c
    'in=8 c=1 o=1 dtype=f8'                     # bad dtype
    'op=conv2 in=8 c=1 o=1'                     # bad op
    ''                                          # empty
  )
  for p in "${bad[@]}"; do
    for cmd in run check plan bench; do
      expect 2 "$cmd" "$p" || continue
      [ -z "$p" ] || contains "$T/err" "problem:"
    done
  done
  # A newline inside the problem string still gives a one-line message.
  expect 2 run $'in=8\nc=1 o=1 frob=1'
  # The message names the field.
  expect 2 run 'in=8 c=1 o=1 frob=2' && contains "$T/err" "frob"
  expect 2 run 'in=8 c=4 o=4 g=0' && contains "$T/err" "groups"
}

case_unsupported() {
  # An instruction set this CPU lacks is unsupported too (when the CPU has it, it is used).
  for isa in avx2 avx512; do
    if grep -qw "$([ $isa = avx2 ] && echo avx2 || echo avx512f)" /proc/cpuinfo 2>/dev/null; then
      expect 0 plan 'n=1 in=8x8 c=3 o=4 k=3x3' --isa $isa && contains "$T/out" "isa:        $isa"
    else
      expect 3 plan 'n=1 in=8x8 c=3 o=4 k=3x3' --isa $isa && contains "$T/err" "$isa"
    fi
  done
  if [ "${CONVND_HAVE_CUDA:-}" = ON ]; then
    echo "built with CUDA: --backend cuda is supported, not tested here"
    return
  fi
  for cmd in run check plan bench; do
    expect 3 "$cmd" 'n=1 in=8x8 c=3 o=4 k=3x3' --backend cuda && contains "$T/err" "problem: in=8x8 c=3 o=4 k=3x3"
    expect 3 "$cmd" 'dir=bwd_w n=1 in=8x8 c=3 o=4 k=3x3' --backend cuda &&
      contains "$T/err" "problem: in=8x8 c=3 o=4 k=3x3 dir=bwd_w"
  done
}

case_oom() {
  # 1e13 output elements (40 TB): planned (a plan reads only shapes and tells the bytes), and
  # refused as out of memory by every command that would run it, before anything is allocated.
  local p='n=10 in=1000000000000 c=1 o=1'
  expect 0 plan "$p" && contains "$T/out" "algorithm:"
  for cmd in run check bench; do
    expect 4 "$cmd" "$p" && contains "$T/err" "problem: $p" && contains "$T/err" "available to this process"
  done
  expect 4 run "$p" --output big.npy
  [ ! -e big.npy ] || fail "an out-of-memory run left big.npy behind"
  # An allocation that fails although the machine has the memory (here: an address-space limit
  # of 400 MB against 512 MiB of x and y) is exit 4 too, and names the problem. Skipped where
  # the limit breaks even a tiny run (sanitizer builds reserve terabytes of address space).
  if (ulimit -v 400000 && "$CONVND" run 'in=8 c=1 o=1' >/dev/null) 2>/dev/null; then
    local rc
    (ulimit -v 400000 && exec "$CONVND" run 'n=1 in=67108864 c=1 o=1' --threads 1 --output big.npy) \
      >"$T/out" 2>"$T/err"
    rc=$?
    [ "$rc" = 4 ] || fail "a failed allocation exited $rc, expected 4: $(cat "$T/err")"
    contains "$T/err" "could not allocate"
    contains "$T/err" "; problem: in=67108864 c=1 o=1"
    [ "$(wc -l <"$T/err")" = 1 ] || fail "expected one line on stderr: $(cat "$T/err")"
    [ -z "$(ls -A | grep big.npy)" ] || fail "a failed allocation left files behind: $(ls -A)"
  fi
}

# Writes the 1x1 identity weight (value 1.0) for a dtype.
one_weight() {
  local dtype=$1 path=$2
  case $dtype in
    f32) npy "$path" "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1), }" '\x00\x00\x80\x3f' ;;
    f64) npy "$path" "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1, 1), }" '\x00\x00\x00\x00\x00\x00\xf0\x3f' ;;
    f16) npy "$path" "{'descr': '<f2', 'fortran_order': False, 'shape': (1, 1, 1), }" '\x00\x3c' ;;
    bf16) npy "$path" "{'descr': '<V2', 'fortran_order': False, 'shape': (1, 1, 1), }" '\x80\x3f' ;;
  esac
}

case_npy_roundtrip() {
  local dt
  for dt in f32 f64 f16 bf16; do
    # y0 = conv of random inputs, shape (1, 30, 1); then y1 = identity conv of y0 must equal y0.
    expect 0 run "in=32 c=1 o=1 k=3 dtype=$dt" --seed 7 --output "y0_$dt.npy" || continue
    [ -f "y0_$dt.npy" ] || { fail "no y0_$dt.npy"; continue; }
    one_weight "$dt" "one_$dt.npy"
    expect 0 run "in=30 c=1 o=1 dtype=$dt" --input "y0_$dt.npy" --weight "one_$dt.npy" --output "y1_$dt.npy"
    contains "$T/out" "y0_$dt.npy"
    cmp -s "y0_$dt.npy" "y1_$dt.npy" || fail "$dt: identity conv of y0.npy differs from y0.npy"
    # The header says what NumPy needs.
    case $dt in f32) d='<f4' ;; f64) d='<f8' ;; f16) d='<f2' ;; bf16) d='<V2' ;; esac
    head -c 128 "y0_$dt.npy" | grep -qaF "'descr': '$d', 'fortran_order': False, 'shape': (1, 30, 1), }" ||
      fail "$dt: unexpected header: $(head -c 128 "y0_$dt.npy" | tr -d '\000')"
    # The data starts at a multiple of 64 bytes and has the right length.
    local size
    size=$(wc -c <"y0_$dt.npy")
    local es=4
    case $dt in f64) es=8 ;; f16 | bf16) es=2 ;; esac
    [ $(((size - 30 * es) % 64)) = 0 ] || fail "$dt: header not padded to 64 bytes (size $size)"
    [ "$(npy_data "y0_$dt.npy" | wc -c)" = $((30 * es)) ] || fail "$dt: data length"
  done
  # bf16 raw bit patterns as '<u2' are read too.
  npy u2.npy "{'descr': '<u2', 'fortran_order': False, 'shape': (1, 1, 1), }" '\x80\x3f'
  expect 0 run "in=30 c=1 o=1 dtype=bf16" --input y0_bf16.npy --weight u2.npy --output y2.npy
  cmp -s y0_bf16.npy y2.npy || fail "'<u2' bf16 weight did not act as 1.0"
  # Random inputs: with the identity weight, y is x. Same seed, same x for any thread count
  # (1.4M elements: more than one generator chunk); another seed, another x.
  expect 0 run 'n=2 in=700000 c=1 o=1' --weight one_f32.npy --seed 5 --threads 1 --output a.npy
  expect 0 run 'n=2 in=700000 c=1 o=1' --weight one_f32.npy --seed 5 --threads 2 --output b.npy
  expect 0 run 'n=2 in=700000 c=1 o=1' --weight one_f32.npy --seed 6 --threads 2 --output c.npy
  cmp -s a.npy b.npy || fail "the random input depends on the thread count"
  cmp -s a.npy c.npy && fail "seeds 5 and 6 gave the same input"
  # A version 2.0 header is read as well.
  npy v2.npy "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1), }" '\x00\x00\x80\x3f' 2
  expect 0 run "in=30 c=1 o=1" --input y0_f32.npy --weight v2.npy --output y3.npy
  cmp -s y0_f32.npy y3.npy || fail "version 2.0 weight"
  # --json names the files.
  expect 0 run "in=30 c=1 o=1" --input y0_f32.npy --weight v2.npy --json
  contains "$T/out" '"x_source": "y0_f32.npy"'
  contains "$T/out" '"y_shape": [1, 30, 1]'
}

# The generator documented in tools/random_fill.h, in 64-bit shell arithmetic: prints the
# float64 bit pattern of element I of stream S under seed SEED.
lshr() { echo $((($1 >> $2) & ((1 << (64 - $2)) - 1))); }
mix64() {
  local z=$1
  z=$(((z ^ $(lshr "$z" 30)) * 0xBF58476D1CE4E5B9))
  z=$(((z ^ $(lshr "$z" 27)) * 0x94D049BB133111EB))
  echo $((z ^ $(lshr "$z" 31)))
}
expected_f64_bits() {
  local seed=$1 stream=$2 i=$3 key bits m a e=0 sign=0
  key=$(mix64 $(($(mix64 "$seed") + (stream + 1) * 0xD1B54A32D192ED03)))
  bits=$(mix64 $((key + (i + 1) * 0x9E3779B97F4A7C15)))
  m=$(($(lshr "$bits" 11) - (1 << 52))) # u = m * 2^-52, exactly
  if [ "$m" = 0 ]; then printf '%016x\n' 0; return; fi
  if [ "$m" -lt 0 ]; then sign=1; a=$((-m)); else a=$m; fi
  while [ $((a >> (e + 1))) != 0 ]; do e=$((e + 1)); done
  printf '%016x\n' $(((sign << 63) | ((1023 + e - 52) << 52) | ((a << (52 - e)) & ((1 << 52) - 1))))
}

case_random_inputs() {
  one_weight f64 one.npy
  local seed i got want
  for seed in 0 12345 18446744073709551615; do
    # y = x (identity weight): x's elements 0..4 are stream 0.
    expect 0 run 'in=5 c=1 o=1 dtype=f64' --weight one.npy --seed "$seed" --output x.npy || continue
    # y = w (x = 1): w's elements are stream 1.
    expect 0 run 'in=1 c=1 o=5 dtype=f64' --input one.npy --seed "$seed" --output w.npy || continue
    # dx = dy (identity weight): the cotangent dy of the gradients is stream 3.
    expect 0 run 'dir=bwd_d in=5 c=1 o=1 dtype=f64' --weight one.npy --seed "$seed" --output dy.npy || continue
    for i in 0 1 2 3 4; do
      got=$(npy_data dy.npy | od -An -tx8 -j$((8 * i)) -N8 | tr -d ' ')
      want=$(expected_f64_bits $((seed)) 3 "$i")
      [ "$got" = "$want" ] || fail "seed $seed dy[$i]: bits $got, the documented generator gives $want"
      got=$(npy_data x.npy | od -An -tx8 -j$((8 * i)) -N8 | tr -d ' ')
      want=$(expected_f64_bits $((seed)) 0 "$i")
      [ "$got" = "$want" ] || fail "seed $seed x[$i]: bits $got, the documented generator gives $want"
      got=$(npy_data w.npy | od -An -tx8 -j$((8 * i)) -N8 | tr -d ' ')
      want=$(expected_f64_bits $((seed)) 1 "$i")
      [ "$got" = "$want" ] || fail "seed $seed w[$i]: bits $got, the documented generator gives $want"
    done
  done
}

case_npy_malformed() {
  local good="{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1), }"
  printf 'NOTNUMPY\x01\x00\x10\x00' >magic.npy
  : >empty.npy
  printf '\x93NUMPY\x01' >noversion.npy
  printf '\x93NUMPY\x01\x00\x40\x00{'"'"'descr'"'"': ' >trunc_header.npy
  printf '\x93NUMPY\x02\x00\xff\xff\xff\xff{' >huge_header.npy
  printf '\x93NUMPY\x09\x00\x10\x00{}             \n' >version9.npy
  npy unterminated.npy "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1), " '\x00\x00\x80\x3f'
  npy unterminated_str.npy "{'descr': '<f4" '\x00\x00\x80\x3f'
  npy notdict.npy "['descr', '<f4']" '\x00\x00\x80\x3f'
  npy trunc_data.npy "$good" '\x00\x00\x80'
  npy trailing.npy "$good" '\x00\x00\x80\x3f\x00'
  npy absurd.npy "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000000000000000000000, 1, 1), }" ''
  npy overflow.npy "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4611686018427387904, 1), }" ''
  npy overflow_bytes.npy "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 1, 1), }" ''
  npy negative.npy "{'descr': '<f4', 'fortran_order': False, 'shape': (1, -1, 1), }" '\x00\x00\x80\x3f'
  npy fortran.npy "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 1, 1), }" '\x00\x00\x80\x3f'
  npy bigendian.npy "{'descr': '>f4', 'fortran_order': False, 'shape': (1, 1, 1), }" '\x3f\x80\x00\x00'
  npy int.npy "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 1, 1), }" '\x01\x00\x00\x00'
  npy wrongdtype.npy "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1, 1), }" '\x00\x00\x00\x00\x00\x00\xf0\x3f'
  npy wrongshape.npy "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), }" '\x00\x00\x80\x3f'
  npy nokey.npy "{'descr': '<f4', 'shape': (1, 1, 1), }" '\x00\x00\x80\x3f'
  npy extrakey.npy "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1), 'x': 1, }" '\x00\x00\x80\x3f'
  npy repeated.npy "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1), }" '\x00\x00\x80\x3f'
  npy structured.npy "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1, 1, 1), }" '\x00\x00\x80\x3f'
  npy manydims.npy "{'descr': '<f4', 'fortran_order': False, 'shape': ($(printf '1, %.0s' $(seq 70))), }" '\x00\x00\x80\x3f'
  mkdir adir.npy
  local f
  for f in magic empty noversion trunc_header huge_header version9 unterminated unterminated_str notdict \
    trunc_data trailing absurd overflow overflow_bytes negative fortran bigendian int wrongdtype wrongshape nokey \
    extrakey repeated structured manydims adir missing; do
    expect 2 run 'in=1 c=1 o=1' --weight "$f.npy" --output out.npy || continue
    contains "$T/err" "$f.npy"
    contains "$T/err" "problem: in=1 c=1 o=1"
    [ ! -e out.npy ] || fail "$f.npy: a failed run left out.npy behind"
  done
  # The reader's own messages for a few of them.
  expect 2 run 'in=1 c=1 o=1' --weight magic.npy && contains "$T/err" "not a .npy file"
  expect 2 run 'in=1 c=1 o=1' --weight trunc_data.npy && contains "$T/err" "truncated"
  expect 2 run 'in=1 c=1 o=1' --weight huge_header.npy && contains "$T/err" "header length"
  expect 2 run 'in=1 c=1 o=1' --weight overflow.npy && contains "$T/err" "int64"
  expect 2 run 'in=1 c=1 o=1' --weight fortran.npy && contains "$T/err" "Fortran"
  expect 2 run 'in=1 c=1 o=1' --weight wrongshape.npy && contains "$T/err" "needs shape (1, 1, 1)"
  expect 2 run 'in=1 c=1 o=1' --weight wrongdtype.npy && contains "$T/err" "dtype is f32"
  expect 2 run 'in=1 c=1 o=1' --input fortran.npy && contains "$T/err" "input x"
  # The same file is fine when nothing is wrong with it.
  npy ok.npy "$good" '\x00\x00\x80\x3f'
  expect 0 run 'in=1 c=1 o=1' --weight ok.npy --input ok.npy --json && contains "$T/out" '"w_source": "ok.npy"'
}

case_output_atomic() {
  # An unwritable place fails before the run, leaving nothing.
  expect 2 run 'in=8 c=1 o=1' --output no/such/dir/y.npy && contains "$T/err" "no/such/dir/y.npy"
  mkdir d
  expect 2 run 'in=8 c=1 o=1' --output d && contains "$T/err" "directory"
  # A failing run leaves an existing output untouched and no temporary file.
  expect 0 run 'in=8 c=1 o=1' --output keep.npy
  cp keep.npy keep.orig
  printf 'garbage' >bad.npy
  expect 2 run 'in=8 c=1 o=1' --output keep.npy --input bad.npy
  cmp -s keep.npy keep.orig || fail "a failed run changed keep.npy"
  expect 4 run 'n=10 in=1000000000000 c=1 o=1' --output keep.npy
  cmp -s keep.npy keep.orig || fail "an out-of-memory run changed keep.npy"
  local left
  left=$(ls -A | grep -c tmp)
  [ "$left" = 0 ] || fail "temporary files left behind: $(ls -A)"
  # A successful run replaces it.
  expect 0 run 'in=8 c=1 o=1' --output keep.npy --seed 9
  cmp -s keep.npy keep.orig && fail "keep.npy was not replaced"
  [ "$(ls -A | grep -c tmp)" = 0 ] || fail "temporary files left behind: $(ls -A)"
}

case_output_targets() {
  # Nothing but a regular file is ever replaced (tools/output_file.h has the table).
  local p='in=8 c=1 o=1'
  expect 0 run "$p" --seed 2 --output want.npy || return
  # A symbolic link is written through: the link stays, the file it leads to gets y.
  expect 0 run "$p" --seed 1 --output real.npy
  ln -s real.npy link.npy
  expect 0 run "$p" --seed 2 --output link.npy
  [ -L link.npy ] || fail "the symbolic link link.npy was replaced by a file"
  cmp -s real.npy want.npy || fail "writing through link.npy did not write real.npy"
  ln -s made.npy dangling.npy
  expect 0 run "$p" --seed 2 --output dangling.npy
  [ -L dangling.npy ] || fail "the symbolic link dangling.npy was replaced by a file"
  cmp -s made.npy want.npy || fail "writing through dangling.npy did not create made.npy"
  # Links are followed for inputs too.
  expect 0 run "$p" --input link.npy && contains "$T/out" "link.npy"
  mkdir adir
  ln -s adir dirlink.npy
  expect 2 run "$p" --output dirlink.npy && contains "$T/err" "directory"
  [ -L dirlink.npy ] && [ -d adir ] || fail "dirlink.npy or adir changed"
  # Standard output, by '-' or by any name (like /dev/stdout, a link to /proc/self/fd/1): y on
  # stdout, the summary on stderr. The names are links of our own: a regression run as root
  # must not replace the system's /dev/stdout.
  local target
  ln -s /dev/fd/1 my_stdout
  for target in - my_stdout /dev/fd/1; do
    "$CONVND" run "$p" --seed 2 --output "$target" >stdout.npy 2>"$T/err" || fail "--output $target exited $?"
    cmp -s stdout.npy want.npy || fail "--output $target: stdout is not y.npy"
    contains "$T/err" "written to standard output"
  done
  [ -L my_stdout ] || fail "the link my_stdout was replaced"
  # A character device is written in place, never replaced. As root, on device nodes of our
  # own (the same devices as /dev/null and /dev/full), for the same reason.
  local null=/dev/null full=/dev/full
  if [ "$(id -u)" = 0 ]; then
    null= full=
    mknod null c 1 3 2>/dev/null && null=$PWD/null
    mknod full c 1 7 2>/dev/null && full=$PWD/full
  fi
  if [ -n "$null" ]; then
    expect 0 run "$p" --output "$null" && contains "$T/out" "written to $null"
    [ -c "$null" ] || fail "$null is no longer a character device"
  fi
  if [ -n "$full" ] && [ -w "$full" ]; then
    expect 2 run "$p" --output "$full" && contains "$T/err" "No space left on device"
    [ -c "$full" ] || fail "$full is no longer a character device"
  fi
  # A FIFO: refused at once when nobody reads it, written in place when someone does.
  mkfifo fifo.npy
  TIMEOUT=60 expect 2 run "$p" --output fifo.npy && contains "$T/err" "nobody reads"
  cat fifo.npy >from_fifo.npy &
  local reader=$! i
  for i in $(seq 100); do # until cat has opened the FIFO
    TIMEOUT=60 "$CONVND" run "$p" --seed 2 --output fifo.npy >/dev/null 2>"$T/err" && break
    grep -q "nobody reads" "$T/err" || { fail "writing to a FIFO with a reader: $(cat "$T/err")"; break; }
    sleep 0.1
  done
  wait "$reader"
  cmp -s from_fifo.npy want.npy || fail "what was written to fifo.npy is not y.npy"
  [ -p fifo.npy ] || fail "fifo.npy is no longer a FIFO"
  # Inputs are read from regular files only: a FIFO would block, a device is no .npy.
  TIMEOUT=60 expect 2 run "$p" --input fifo.npy && contains "$T/err" "FIFO (named pipe), not a regular file"
  [ -z "$null" ] || { expect 2 run "$p" --weight "$null" && contains "$T/err" "character device, not a regular file"; }
  expect 2 run "$p" --weight adir && contains "$T/err" "directory"
  [ "$(ls -A | grep -c tmp)" = 0 ] || fail "temporary files left behind: $(ls -A)"
  # A replaced file keeps its permissions.
  chmod 640 real.npy
  expect 0 run "$p" --seed 3 --output real.npy
  [ "$(stat -c %a real.npy)" = 640 ] || fail "real.npy's mode changed to $(stat -c %a real.npy)"
}

case_check() {
  local p
  for p in 'n=2 in=9x7 c=6 o=4 k=3x2 pad=1' 'in=12 c=4 o=6 k=3 stride=2 pad=1 dtype=f64' \
    'op=convT n=2 in=7 c=4 o=6 k=4 stride=3 pad=1 outpad=2 g=2 dtype=f16' \
    'n=1 in=9x7 c=6 o=4 k=3x2 stride=2x1 pad=0:2x1:0 dil=1x2 idil=2x1 g=2 flip=1 dtype=bf16' \
    'n=2 in=5x5x5 c=4 o=4 k=3x3x3 pad=1 g=4'; do
    expect 0 check "$p" || continue
    contains "$T/out" "PASS "
    contains "$T/out" "checked=full:"
    contains "$T/out" " | algorithm="
  done
  # The line carries the canonical problem string.
  expect 0 check 'o=4 k=3x2 c=6 in=9x7 n=2 pad=1x1' && contains "$T/out" "PASS n=2 in=9x7 c=6 o=4 k=3x2 pad=1 |"
  # Sampled mode, and the seed reproduces the same line.
  expect 0 check 'n=3 in=40x50 c=8 o=16 k=3x3 pad=1' --samples 100 --seed 4 && contains "$T/out" "checked=sampled:"
  # A wrong result fails with exit 1, in full and sampled mode, and says where.
  CONVND_CHECK_CORRUPT=5 expect 1 check 'n=2 in=9x7 c=6 o=4 k=3x2 pad=1' --seed 1
  contains "$T/out" "FAIL n=2 in=9x7 c=6 o=4 k=3x2 pad=1 |"
  contains "$T/out" "worst=y[0,0,1,1]"
  # Sampled: the last element and the first row are always checked.
  CONVND_CHECK_CORRUPT=-1 expect 1 check 'n=3 in=40x50 c=8 o=16 k=3x3 pad=1' --samples 0 --seed 2
  contains "$T/out" "worst=y[2,39,49,15]"
  CONVND_CHECK_CORRUPT=17 expect 1 check 'n=3 in=40x50 c=8 o=16 k=3x3 pad=1' --samples 0 --seed 2
  CONVND_CHECK_CORRUPT=-3 expect 1 check 'n=3 in=40x50 c=8 o=16 k=3x3 pad=1' --samples 0 --seed 3
  # --whole-batch compares one whole entry: an error in the middle of the last entry
  # (y[2,20,25,3], away from every row and border of the default sample) is caught with it.
  CONVND_CHECK_CORRUPT=-15597 expect 0 check 'n=3 in=40x50 c=8 o=16 k=3x3 pad=1' --samples 0 --seed 2
  CONVND_CHECK_CORRUPT=-15597 expect 1 check 'n=3 in=40x50 c=8 o=16 k=3x3 pad=1' --samples 0 --seed 2 --whole-batch -1
  contains "$T/out" "worst=y[2,20,25,3]"
  expect 2 check 'n=3 in=40x50 c=8 o=16 k=3x3 pad=1' --samples 0 --whole-batch 3
  # JSON
  expect 0 check 'in=8 c=2 o=2 k=3' --json --seed 1 && contains "$T/out" '"result": "PASS"'
  contains "$T/out" '"seed": 1'
  # A long row is sampled boundedly (the output has 2 rows of 300000 x 8 elements).
  expect 0 check 'in=2x300000 c=1 o=8' --samples 10 && contains "$T/out" "rows_sampled="
  # Unsupported and out-of-memory problems exit 3 and 4.
  expect 4 check 'n=10 in=1000000000000 c=1 o=1'
}

case_check_list() {
  cat >small.txt <<'EOF'
# a small conformance list
n=2 in=9x7 c=6 o=4 k=3x2 pad=1        # 2-D
in=12 c=4 o=6 k=3 stride=2 dtype=f64

op=convT in=7 c=4 o=6 k=4 stride=3 pad=1 g=2 dtype=f16
   # indented comment
EOF
  expect 0 check --file small.txt --seed 3
  [ "$(tail -n 1 "$T/out")" = "3 passed, 0 failed" ] || fail "small.txt summary: $(tail -n 1 "$T/out")"
  [ "$(grep -c '^PASS ' "$T/out")" = 3 ] || fail "small.txt: expected 3 PASS lines: $(cat "$T/out")"
  # An invalid line fails and the rest still run.
  cp small.txt mixed.txt
  echo 'in=8 c=4 o=4 g=0' >>mixed.txt
  echo 'in=8 c=1 o=1' >>mixed.txt
  expect 1 check --file mixed.txt
  [ "$(tail -n 1 "$T/out")" = "4 passed, 1 failed" ] || fail "mixed.txt summary: $(tail -n 1 "$T/out")"
  contains "$T/out" "mixed.txt:7"
  # A wrong result counts as failed.
  CONVND_CHECK_CORRUPT=0 expect 1 check --file small.txt
  [ "$(tail -n 1 "$T/out")" = "0 passed, 3 failed" ] || fail "corrupted summary: $(tail -n 1 "$T/out")"
  # Unsupported problems are skipped, not failed.
  if [ "${CONVND_HAVE_CUDA:-}" != ON ]; then
    expect 0 check --file small.txt --backend cuda
    [ "$(tail -n 1 "$T/out")" = "0 passed, 0 failed, 3 skipped" ] || fail "cuda summary: $(tail -n 1 "$T/out")"
    [ "$(grep -c '^SKIP ' "$T/out")" = 3 ] || fail "expected 3 SKIP lines: $(cat "$T/out")"
  fi
  # An empty list passes trivially; a missing list is a usage error.
  printf '# nothing\n\n' >empty.txt
  expect 0 check --file empty.txt
  [ "$(tail -n 1 "$T/out")" = "0 passed, 0 failed" ] || fail "empty summary: $(tail -n 1 "$T/out")"
  expect 2 check --file no_such_list.txt && contains "$T/err" "no_such_list.txt"
  # JSON lines end with a summary object.
  expect 0 check --file small.txt --json
  [ "$(tail -n 1 "$T/out")" = '{"passed": 3, "failed": 0, "skipped": 0}' ] || fail "json summary: $(tail -n 1 "$T/out")"
}

case_plan() {
  expect 0 plan 'n=1 in=8x8 c=3 o=4 k=3x3' && contains "$T/out" "algorithm:"
  contains "$T/out" "direction:  fwd"
  contains "$T/out" "isa:        "
  contains "$T/out" "config:     "
  # --isa reaches the plan, and every command runs it.
  expect 0 plan 'n=1 in=8x8 c=3 o=4 k=3x3' --isa generic && contains "$T/out" "isa:        generic"
  expect 0 plan 'n=1 in=8x8 c=3 o=4 k=3x3' --isa=generic --json && contains "$T/out" '"isa": "generic"'
  expect 0 run 'n=1 in=8x8 c=3 o=4 k=3x3' --isa generic
  expect 0 check 'n=2 in=9x7 c=6 o=4 k=3x2 pad=1' --isa generic && contains "$T/out" "PASS "
  expect 0 bench 'in=16 c=4 o=4 k=3' --reps 1 --isa generic && contains "$T/out" "GFLOP/s"
  expect 0 plan 'n=1 in=8x8 c=3 o=4 k=3x3' --isa auto
  contains "$T/out" "problem:    in=8x8 c=3 o=4 k=3x3"
  # --precision: every command takes it. A plan shows precision only where its algorithm
  # multiplies float32 as TF32, which no CPU algorithm does: float32 stays exact there.
  if grep -q '^precision:' "$T/out"; then fail "plan shows precision by default: $(cat "$T/out")"; fi
  for v in exact tf32; do
    expect 0 plan 'n=1 in=8x8 c=3 o=4 k=3x3' --precision $v
    if grep -q '^precision:' "$T/out"; then fail "a CPU plan shows precision ($v): $(cat "$T/out")"; fi
    expect 0 plan 'n=1 in=8x8 c=3 o=4 k=3x3' --precision=$v --json
    if grep -q precision "$T/out"; then fail "a CPU plan's json shows precision ($v): $(cat "$T/out")"; fi
  done
  expect 0 run 'n=1 in=8x8 c=3 o=4 k=3x3' --precision tf32 --output tf32.npy
  expect 0 run 'n=1 in=8x8 c=3 o=4 k=3x3' --precision exact --output exact.npy
  cmp -s tf32.npy exact.npy || fail "--precision tf32 changed a CPU result"
  expect 0 check 'n=2 in=9x7 c=6 o=4 k=3x2 pad=1' --precision tf32 && contains "$T/out" "PASS "
  expect 0 bench 'in=16 c=4 o=4 k=3' --reps 1 --precision exact && contains "$T/out" "GFLOP/s"
  expect 0 plan 'n=1 in=8x8 c=3 o=4 k=3x3' --json --budget 64MiB && contains "$T/out" '"budget_bytes": 67108864'
  expect 0 plan 'in=8 c=1 o=1' --algorithm reference && contains "$T/out" "algorithm:  reference"
}

case_bench() {
  expect 0 bench 'n=1 in=16x16 c=8 o=8 k=3x3 pad=1' --reps 3 && contains "$T/out" "GFLOP/s"
  contains "$T/out" "reps=3"
  contains "$T/out" "peak_rss="
  expect 0 bench 'in=16 c=4 o=4 k=3' --reps 2 --json && contains "$T/out" '"median_s": '
  contains "$T/out" '"workspace_bytes": '
  printf 'in=16 c=4 o=4 k=3\n# comment\nin=8x8 c=2 o=2 k=3x3\n' >b.txt
  expect 0 bench --file b.txt --reps 1
  [ "$(grep -c 'GFLOP/s' "$T/out")" = 2 ] || fail "bench --file: $(cat "$T/out")"
}

# f32 values as printf escapes.
F32_0='\x00\x00\x00\x00' F32_1='\x00\x00\x80\x3f' F32_2='\x00\x00\x00\x40' F32_3='\x00\x00\x40\x40'
F32_4='\x00\x00\x80\x40' F32_5='\x00\x00\xa0\x40' F32_10='\x00\x00\x20\x41' F32_100='\x00\x00\xc8\x42'
F32_1000='\x00\x00\x7a\x44' F32_10000='\x00\x40\x1c\x46' F32_32='\x00\x00\x00\x42' F32_3210='\x00\xa0\x48\x45'
F32_21000='\x00\x10\xa4\x46' F32_4200='\x00\x40\x83\x45' F32_5310='\x00\xf0\xa5\x45' F32_420='\x00\x00\xd2\x43'

case_gradients() {
  # dir=bwd_d computes dx from w and dy, dir=bwd_w dw from x and dy (semantics.md, "Gradients"):
  # plan, check, bench and run take them like the forward.
  local p='n=2 in=9x7 c=6 o=4 k=3x2 pad=1' d
  for d in bwd_d bwd_w; do
    expect 0 plan "dir=$d $p" && contains "$T/out" "direction:  $d"
    contains "$T/out" "problem:    $p dir=$d"
    expect 0 plan "dir=$d $p" --json && contains "$T/out" "\"direction\": \"$d\""
    # check: against the gradient oracles in full, and on a sample (the per-element oracles).
    expect 0 check "dir=$d $p" --seed 1 && contains "$T/out" "PASS $p dir=$d | algorithm="
    contains "$T/out" "checked=full:"
    expect 0 check "dir=$d $p" --seed 1 --samples 50 && contains "$T/out" "checked=sampled:"
    expect 0 check "dir=$d $p" --json && contains "$T/out" '"result": "PASS"'
    expect 0 check "dir=$d $p dtype=f64" --seed 2 && contains "$T/out" "PASS "
    expect 0 check "dir=$d op=convT n=2 in=7 c=4 o=6 k=4 stride=3 pad=1 outpad=2 g=2 dtype=bf16" && contains "$T/out" "PASS "
    expect 0 bench "dir=$d $p" --reps 2 && contains "$T/out" "$p dir=$d | algorithm="
    contains "$T/out" "GFLOP/s"
    contains "$T/out" "GB/s"
    contains "$T/out" "reps=2"
    expect 0 bench "dir=$d $p" --reps 1 --json && contains "$T/out" '"gbps": '
    # Too large for this machine: refused before anything is allocated, as the forward.
    for cmd in run check bench; do
      expect 4 "$cmd" "dir=$d n=10 in=1000000000000 c=1 o=1" && contains "$T/err" "problem: n=10 in=1000000000000 c=1 o=1 dir=$d"
    done
  done

  # run on random inputs: the summary names the two tensors read and the one written.
  expect 0 run "dir=bwd_d $p" --output dx.npy || return
  contains "$T/out" "problem:   $p dir=bwd_d"
  contains "$T/out" "w:         (4, 3, 2, 6) f32 [O, KH, KW, C/g], random (seed 0)"
  contains "$T/out" "dy:        (2, 9, 8, 4) f32 [N, PH, PW, O], random (seed 0)"
  contains "$T/out" "dx:        (2, 9, 7, 6) f32, written to dx.npy"
  head -c 128 dx.npy | grep -qaF "'shape': (2, 9, 7, 6), }" || fail "dx.npy: unexpected header"
  expect 0 run "dir=bwd_w $p" --output dw.npy --json || return
  contains "$T/out" '"dir": "bwd_w"'
  contains "$T/out" '"x_source": "random", "dy_source": "random", "computes": "dw"'
  head -c 128 dw.npy | grep -qaF "'shape': (4, 3, 2, 6), }" || fail "dw.npy: unexpected header"
  # dw is bitwise the same for any thread count; dx and dw change with the seed.
  expect 0 run "dir=bwd_w $p" --output dw1.npy --threads 1
  expect 0 run "dir=bwd_w $p" --output dw3.npy --threads 3
  cmp -s dw.npy dw1.npy && cmp -s dw.npy dw3.npy || fail "dw depends on the thread count"
  expect 0 run "dir=bwd_d $p" --output dx2.npy --seed 2
  cmp -s dx.npy dx2.npy && fail "seeds 0 and 2 gave the same dx"
  # The gradient written to standard output, the summary to stderr.
  "$CONVND" run "dir=bwd_d $p" --output - >dx_stdout.npy 2>"$T/err" || fail "--output - exited $?"
  cmp -s dx.npy dx_stdout.npy || fail "dx on standard output differs from dx.npy"
  contains "$T/err" "dx:        (2, 9, 7, 6) f32, written to standard output"

  # A transposed conv whose padding (3) is beyond the kernel span (2), from given files, with
  # values worked out by hand: x [1, 5, 1] scatters x[t]·w[k] to y[2t + k − 3].
  local s='op=convT in=5 c=1 o=1 k=3 stride=2 pad=3'
  npy w123.npy "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 1), }" "$F32_1$F32_2$F32_3"
  npy dy5.npy "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 5, 1), }" "$F32_1$F32_10$F32_100$F32_1000$F32_10000"
  npy y12345.npy "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 5, 1), }" "$F32_1$F32_2$F32_3$F32_4$F32_5"
  # dx[t] = sum over k of dy[2t + k − 3]·w[k] = (0, 32, 3210, 21000, 0)
  expect 0 run "dir=bwd_d $s" --weight w123.npy --dy dy5.npy --output dx.npy
  contains "$T/out" "w123.npy"
  contains "$T/out" "dy5.npy"
  printf "$F32_0$F32_32$F32_3210$F32_21000$F32_0" >want_dx
  npy_data dx.npy | cmp -s - want_dx || fail "dx of $s: $(npy_data dx.npy | od -An -tf4)"
  # dw[k] = sum over t of x[t]·dy[2t + k − 3] = (4200, 5310, 420), with x = dy5.npy, dy = y12345.npy
  expect 0 run "dir=bwd_w $s" --input dy5.npy --dy y12345.npy --output dw.npy
  printf "$F32_4200$F32_5310$F32_420" >want_dw
  npy_data dw.npy | cmp -s - want_dw || fail "dw of $s: $(npy_data dw.npy | od -An -tf4)"
  for d in bwd_d bwd_w; do
    expect 0 check "dir=$d $s" && contains "$T/out" "PASS $s dir=$d |"
  done

  # Given files must have the problem's shapes and dtype; the message names the tensor, the
  # shape it needs and the problem; nothing is written.
  cp dx.npy keep.npy
  expect 2 run "dir=bwd_d $s" --weight w123.npy --dy w123.npy --output keep.npy
  contains "$T/err" "w123.npy (cotangent dy [N, PW, O]): has shape (1, 3, 1) but the problem needs shape (1, 5, 1)"
  contains "$T/err" "problem: $s dir=bwd_d"
  npy dy_f64.npy "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 5, 1), }" '\x00\x00\x00\x00\x00\x00\xf0\x3f\x00\x00\x00\x00\x00\x00\xf0\x3f\x00\x00\x00\x00\x00\x00\xf0\x3f\x00\x00\x00\x00\x00\x00\xf0\x3f\x00\x00\x00\x00\x00\x00\xf0\x3f'
  expect 2 run "dir=bwd_w $s" --input dy5.npy --dy dy_f64.npy --output bad.npy && contains "$T/err" "dtype is f32"
  contains "$T/err" "cotangent dy"
  expect 2 run "dir=bwd_d $s" --weight dy5.npy --dy dy5.npy --output bad.npy
  contains "$T/err" "weight w [O, KW, C/g]): has shape (1, 5, 1) but the problem needs shape (1, 3, 1)"
  expect 2 run "dir=bwd_w $s" --input w123.npy --dy dy5.npy --output bad.npy
  contains "$T/err" "input x [N, W, C]): has shape (1, 3, 1) but the problem needs shape (1, 5, 1)"
  expect 2 run "dir=bwd_d $s" --dy no_such_dy.npy --output bad.npy && contains "$T/err" "no_such_dy.npy"
  # The flag of the tensor a direction computes, and --dy in the forward, are usage errors.
  expect 2 run "dir=bwd_d $s" --input dy5.npy --output bad.npy
  contains "$T/err" "--input does not apply to dir=bwd_d"
  contains "$T/err" "problem: $s dir=bwd_d"
  expect 2 run "dir=bwd_w $s" --weight w123.npy --output bad.npy && contains "$T/err" "--weight does not apply to dir=bwd_w"
  expect 2 run "$s" --dy dy5.npy --output bad.npy && contains "$T/err" "--dy applies to dir=bwd_d and dir=bwd_w"
  [ ! -e bad.npy ] || fail "a failed gradient run left bad.npy behind"
  cmp -s keep.npy dx.npy || fail "a failed gradient run changed keep.npy"
  [ "$(ls -A | grep -c tmp)" = 0 ] || fail "temporary files left behind: $(ls -A)"

  # check catches a wrong gradient and names the element in the gradient's coordinates.
  CONVND_CHECK_CORRUPT=5 expect 1 check "dir=bwd_d $p" --seed 1 && contains "$T/out" "worst=dx[0,0,0,5]"
  CONVND_CHECK_CORRUPT=-1 expect 1 check "dir=bwd_d $p" --seed 1 --samples 0 && contains "$T/out" "worst=dx[1,8,6,5]"
  CONVND_CHECK_CORRUPT=-1 expect 1 check "dir=bwd_w $p" --seed 1 && contains "$T/out" "worst=dw[3,2,1,5]"
  CONVND_CHECK_CORRUPT=0 expect 1 check "dir=bwd_w $p" --seed 1 --samples 0 && contains "$T/out" "worst=dw[0,0,0,0]"
  # For dw, --whole-batch B compares output channel B in full: dw[3,3,3,1] of a 7x7 kernel is
  # in no row or border of the default sample.
  local q='n=1 in=20x20 c=4 o=4 k=7x7'
  CONVND_CHECK_CORRUPT=-99 expect 0 check "dir=bwd_w $q" --samples 0 --seed 2
  CONVND_CHECK_CORRUPT=-99 expect 1 check "dir=bwd_w $q" --samples 0 --seed 2 --whole-batch -1
  contains "$T/out" "worst=dw[3,3,3,1]"
  expect 2 check "dir=bwd_w $q" --samples 0 --whole-batch 4 && contains "$T/err" "outside the output channels of dw"

  # Lists mix directions.
  printf 'dir=bwd_d in=8 c=1 o=1 k=3\nin=8 c=1 o=1 k=3\nin=8 c=2 o=4 k=3 g=2 dir=bwd_w  # a comment\n' >grads.txt
  expect 0 check --file grads.txt
  [ "$(tail -n 1 "$T/out")" = "3 passed, 0 failed" ] || fail "grads.txt summary: $(tail -n 1 "$T/out")"
  contains "$T/out" "PASS in=8 c=2 o=4 k=3 g=2 dir=bwd_w |"
  CONVND_CHECK_CORRUPT=0 expect 1 check --file grads.txt
  [ "$(tail -n 1 "$T/out")" = "0 passed, 3 failed" ] || fail "corrupted grads.txt summary: $(tail -n 1 "$T/out")"
  expect 0 bench --file grads.txt --reps 1
  [ "$(grep -c 'GFLOP/s' "$T/out")" = 3 ] || fail "bench --file grads.txt: $(cat "$T/out")"
}

case_interrupt() {
  # Ctrl-C stops a long run between tiles: exit 130, one line naming the problem, no output.
  local p='in=512x512 c=64 o=64 k=3x3 pad=1'
  "$CONVND" run "$p" --algorithm reference --output int.npy >"$T/out" 2>"$T/err" &
  local pid=$!
  sleep 1
  kill -INT "$pid"
  local t0=$SECONDS
  wait "$pid"
  local rc=$?
  [ "$rc" = 130 ] || fail "interrupted run exited $rc, expected 130: $(cat "$T/err")"
  [ $((SECONDS - t0)) -lt 30 ] || fail "the run took $((SECONDS - t0)) s to stop"
  [ ! -e int.npy ] || fail "an interrupted run left int.npy behind"
  [ "$(ls -A | grep -c tmp)" = 0 ] || fail "temporary files left behind: $(ls -A)"
  if [ -s "$T/err" ]; then # empty when the signal came before the handler was installed
    [ "$(wc -l <"$T/err")" = 1 ] || fail "expected one line on stderr: $(cat "$T/err")"
    contains "$T/err" "problem: $p"
  fi
}

# Waits (at most 30 s) until a temporary file of $1 exists, with data when $2 is 'data'.
wait_for_temp() {
  local i f
  for i in $(seq 3000); do
    for f in "$1".tmp-*; do
      if [ -e "$f" ] && { [ "${2:-}" != data ] || [ -s "$f" ]; }; then return 0; fi
    done
    sleep 0.01
  done
  return 1
}

case_signals() {
  # Every signal that ends the process removes the output's temporary file and keeps an
  # existing output as it was; the exit status is the signal's.
  local p='in=512x512 c=64 o=64 k=3x3 pad=1' sig pid rc
  expect 0 run 'in=8 c=1 o=1' --output keep.npy || return
  cp keep.npy keep.orig
  for sig in TERM HUP USR1 ALRM; do
    "$CONVND" run "$p" --algorithm reference --output keep.npy >"$T/out" 2>"$T/err" &
    pid=$!
    wait_for_temp keep.npy || fail "SIG$sig: no temporary file appeared"
    kill -s "$sig" "$pid"
    wait "$pid" 2>/dev/null
    rc=$?
    [ "$rc" -gt 128 ] && [ "$(kill -l "$rc")" = "$sig" ] || fail "SIG$sig: exit status $rc: $(cat "$T/err")"
    [ "$(ls -A | grep -c tmp)" = 0 ] || fail "SIG$sig left temporary files behind: $(ls -A)"
    cmp -s keep.npy keep.orig || fail "SIG$sig changed keep.npy"
  done
  # A second Ctrl-C ends the process at once (the first asks for a stop between tiles, a few
  # hundred ms away with one thread on the reference): no temporary file either way.
  "$CONVND" run "$p" --algorithm reference --threads 1 --output keep.npy >"$T/out" 2>"$T/err" &
  pid=$!
  wait_for_temp keep.npy || fail "no temporary file appeared"
  kill -INT "$pid"
  sleep 0.02
  kill -INT "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rc=$?
  [ "$rc" = 130 ] || fail "two Ctrl-C: exit status $rc, expected 130: $(cat "$T/err")"
  [ "$(ls -A | grep -c tmp)" = 0 ] || fail "a second Ctrl-C left temporary files behind: $(ls -A)"
  cmp -s keep.npy keep.orig || fail "two Ctrl-C changed keep.npy"
  # Ctrl-C while y is written: exit 130, the output as it was, no temporary file. The process
  # is stopped as soon as its temporary file has data, interrupted, and continued.
  local big='n=1 in=67108864 c=1 o=1' size # 256 MiB of x and of y
  "$CONVND" run "$big" --output keep.npy >"$T/out" 2>"$T/err" &
  pid=$!
  if wait_for_temp keep.npy data; then
    kill -STOP "$pid"
    size=$(cat keep.npy.tmp-* 2>/dev/null | wc -c)
    kill -INT "$pid"
    kill -CONT "$pid"
    wait "$pid" 2>/dev/null
    rc=$?
    if [ "$size" -lt $((256 << 20)) ]; then
      [ "$rc" = 130 ] || fail "Ctrl-C during the write: exit status $rc, expected 130: $(cat "$T/err")"
      contains "$T/err" "interrupted"
      cmp -s keep.npy keep.orig || fail "Ctrl-C during the write replaced keep.npy"
    else
      echo "note: the write had ended before the signal; not checked"
    fi
  else
    wait "$pid"
    fail "no temporary file with data appeared: $(cat "$T/err")"
  fi
  [ "$(ls -A | grep -c tmp)" = 0 ] || fail "temporary files left behind: $(ls -A)"
  # Written in place (standard output into a pipe that is not read yet): Ctrl-C stops the
  # write after the piece under way, exit 130. The reader starts only after the signal (a
  # fixed delay raced the compute on a loaded machine: the write then never blocked).
  if [ -r /proc/self/wchan ]; then
    "$CONVND" run "$big" --output - 2>"$T/err" > >(while [ ! -e "$T/read" ]; do sleep 0.05; done
                                                  cat >/dev/null) &
    pid=$!
    local i
    for i in $(seq 3000); do
      case $(cat "/proc/$pid/wchan" 2>/dev/null) in *pipe_write*) break ;; esac
      sleep 0.01
    done
    kill -INT "$pid"
    touch "$T/read"
    wait "$pid" 2>/dev/null
    rc=$?
    [ "$rc" = 130 ] || fail "Ctrl-C while writing to a pipe: exit status $rc, expected 130: $(cat "$T/err")"
    contains "$T/err" "what was written so far stays"
  fi
}

if ! declare -F "case_$CASE" >/dev/null; then
  echo "unknown case '$CASE'" >&2
  exit 2
fi
"case_$CASE"
if [ "$FAILS" != 0 ]; then
  echo "$CASE: $FAILS failure(s)" >&2
  exit 1
fi
echo "$CASE: ok"
