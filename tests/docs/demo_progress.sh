#!/usr/bin/env bash
# scripts/demo shows the build's progress and a line per stage when its output is not a
# terminal (a pipe here). Runs a copy of scripts/ with cmake, the set-up and the cases replaced
# by stand-ins, so it takes a second. Usage: demo_progress.sh SOURCE_DIR
set -euo pipefail
src=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/tree/scripts" "$tmp/tree/bench" "$tmp/bin"
cp "$src/scripts/demo" "$src/scripts/build" "$tmp/tree/scripts/"
printf '#!/bin/sh\nexit 0\n' >"$tmp/tree/scripts/setup"
printf '#!/bin/sh\necho "stand-in cases: ok"\n' >"$tmp/tree/bench/demo.sh"
cat >"$tmp/bin/cmake" <<'STUB'
#!/bin/sh
# Configure: nothing to say. Build: what Ninja prints when stdout is not a terminal.
case " $* " in *" --build "*) echo "[1/2] Building CXX object CMakeFiles/convnd.dir/src/core/problem.cpp.o"
                              echo "[2/2] Linking CXX static library libconvnd.a";; esac
exit 0
STUB
chmod +x "$tmp/tree/scripts/"* "$tmp/tree/bench/demo.sh" "$tmp/bin/cmake"
PATH="$tmp/bin:$PATH" "$tmp/tree/scripts/demo" 2>&1 | cat >"$tmp/out.txt"
cat "$tmp/out.txt"
for want in '^== build' '^\[build\] configuring' '^\[build\] compiling with' '^\[1/2\] Building CXX' \
            '^\[2/2\] Linking' '^== build done in' '^== headline cases' '^stand-in cases: ok' '^== demo done in'; do
  grep -q "$want" "$tmp/out.txt" || { echo "scripts/demo's output lacks /$want/" >&2; exit 1; }
done
echo "demo_progress: ok"
