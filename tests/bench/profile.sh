#!/usr/bin/env bash
# tests/bench/profile.sh [BUILD_DIR] - where the daemon's time goes under
# `loadgen -c 128 -d 8` (synchronous=full, event log on): the numbers behind
# tests/bench/PROFILE.md.  Needs perf (run as root, or with
# perf_event_paranoid low enough); not part of `make bench`.
#
#   1. perf record (cpu-clock, DWARF call graphs) of the daemon for
#      PROF_SECS (5) s in the middle of the load: per-thread top symbols
#      with percentages of that thread, and per-thread shares by library;
#   2. a fresh daemon under the same load, perf trace -s: the syscalls of
#      each thread, their count and time (the writer's WAL writes, fdatasync
#      and checkpoint I/O are there).
# Threads: libmicrohttpd's are "MHD-worker"; the daemon's own are unnamed and
# listed in creation order (main, writer, eventlog sink, control).
# Output goes to PROF_DIR (default: a new directory under /var/tmp, kept).
set -u

here=$(cd "$(dirname "$0")" && pwd)
BUILD=$(cd "${1:-$here/../../build}" && pwd) || exit 1
SECS=${PROF_SECS:-5}
CONNS=${PROF_CONNS:-128}
dir=${PROF_DIR:-$(mktemp -d /var/tmp/vinr-prof.XXXXXX)}
mkdir -p "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo "whsec_prof_$$" > "$dir/secret"
daemon_pid=
trap '[ -n "$daemon_pid" ] && kill -KILL "$daemon_pid" 2>/dev/null' EXIT

start() {
	rm -f "$dir"/vinr.db* "$dir/events.log" "$dir/control.sock"
	cat > "$dir/vinr.conf" <<-EOF
	[http]
	listen = 127.0.0.1:$port
	[webhook]
	secret_file = $dir/secret
	[storage]
	database = $dir/vinr.db
	event_log = $dir/events.log
	synchronous = full
	[control]
	socket = $dir/control.sock
	EOF
	"$BUILD/vinr-webhookd" -c "$dir/vinr.conf" 2>>"$dir/daemon.log" &
	daemon_pid=$!
	sleep 0.5
	echo "threads of $daemon_pid:"
	for t in /proc/"$daemon_pid"/task/*; do echo "  ${t##*/} $(cat "$t/comm")"; done
}

stop() {
	kill -TERM "$daemon_pid"
	wait "$daemon_pid"
	daemon_pid=
}

# load OUT: loadgen in the background for SECS + 3 s.
load() {
	"$BUILD/loadgen" -q -p "$port" -K "$dir/secret" -c "$CONNS" -d $((SECS + 3)) \
	    -n 250000 > "$1" &
	load_pid=$!
	sleep 1.5
}

echo "== 1. perf record, $CONNS connections, $SECS s"
start
load "$dir/load1.out"
perf record -F 499 --call-graph dwarf,8192 -p "$daemon_pid" -o "$dir/perf.data" \
    -- sleep "$SECS" 2>&1 | tail -1
wait "$load_pid"
head -3 "$dir/load1.out"
tids=$(ls /proc/"$daemon_pid"/task)
stop
perf report -i "$dir/perf.data" --no-children --sort tid --stdio -g none 2>/dev/null |
    grep -E '^ +[0-9]' > "$dir/threads.txt"
echo "samples by thread:"; cat "$dir/threads.txt"
for t in $tids; do
	perf report -i "$dir/perf.data" --no-children --tid="$t" --percentage relative \
	    --sort dso,sym --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' > "$dir/sym.$t.txt"
	[ -s "$dir/sym.$t.txt" ] || continue
	echo "== thread $t: by library"
	awk '{ sub(/%/, "", $1); s[$2] += $1 } END { for (d in s) printf "  %6.2f%%  %s\n", s[d], d }' \
	    "$dir/sym.$t.txt" | sort -rn
	echo "== thread $t: top symbols"
	head -25 "$dir/sym.$t.txt"
done

echo "== 2. perf trace -s, $CONNS connections, $SECS s"
start
load "$dir/load2.out"
timeout -s INT "$SECS" perf trace -s -p "$daemon_pid" -o "$dir/trace.txt" 2>/dev/null
wait "$load_pid"
head -3 "$dir/load2.out"
stop
cat "$dir/trace.txt"
echo "profile files in $dir"
