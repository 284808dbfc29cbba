#!/bin/sh
# The layout rules of docs/design.md that a machine can check (make lint):
# no file in src/ over 1,200 lines, main.c at most 400, no function over
# 120 lines, and no two compiled files that need each other's symbols.
# usage: scripts/check-layout.sh BUILD_DIR
set -u
cd "$(dirname "$0")/.."
build=${1:-build}
rc=0

for f in src/*.c src/*.h src/sim/*.c src/sim/*.h; do
	n=$(wc -l < "$f")
	if [ "$n" -gt 1200 ]; then
		echo "layout: $f has $n lines (at most 1200)"; rc=1
	fi
done
n=$(wc -l < src/main.c)
if [ "$n" -gt 400 ]; then
	echo "layout: src/main.c has $n lines (at most 400: start, signals, stop)"; rc=1
fi

# Functions in KNF: the name at column 0 followed by '(', the body from a '{'
# to a '}' at column 0.
long=$(awk '
FNR == 1 { name = ""; start = 0 }
/^[A-Za-z_][A-Za-z0-9_]*\(/ { n = $0; sub(/\(.*/, "", n); name = n; at = FNR }
/^\{/ && name != "" { start = FNR }
/^\}/ && start { len = FNR - start + 1
	if (len > 120) printf "layout: %s:%d %s() has %d lines (at most 120)\n", FILENAME, at, name, len
	start = 0; name = "" }
' src/*.c src/sim/*.c tests/bench/*.c)
if [ -n "$long" ]; then
	echo "$long"; rc=1
fi

# The daemon's objects (programs' main files aside) and the sim's.
/usr/bin/python3 scripts/check-deps.py "$build"/obj/*.o || rc=1
/usr/bin/python3 scripts/check-deps.py "$build"/obj/sim/*.o || rc=1
[ $rc -eq 0 ] && echo "layout: ok"
exit $rc
