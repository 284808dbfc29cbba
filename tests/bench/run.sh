#!/usr/bin/env bash
# tests/bench/run.sh [BUILD_DIR] - throughput / latency / memory of vinr-webhookd.
#
# `make bench` runs it after `make all`.  Each scenario gets a fresh daemon on
# a fresh database in a temporary directory (on disk, not tmpfs, so that
# fsync costs what it costs), a free port, and then:
#   - build/loadgen posts signed, unique events (every one a transition);
#   - the daemon's peak RSS (VmHWM), RSS, threads and CPU time are read from /proc;
#   - outcomes rows must equal the events accepted, events rows likewise, and
#     the event log must catch up (one line per outcome);
#   - SIGTERM must stop it with exit 0.
#
# Scenarios (each can be tuned or dropped through the environment):
#   full-32   synchronous=full,   BENCH_CONNS (32) connections, BENCH_REQUESTS (100000)
#   full-1    synchronous=full,   1 connection for BENCH_SINGLE_SECS (5) s: one fsync per request
#   normal-32 synchronous=normal, BENCH_CONNS connections, BENCH_REQUESTS   (BENCH_NORMAL=0 skips)
# BENCH_IDS=random scatters the event/payment ids (UUID-like) instead of sending
# them in order (ULID-like): every insert then lands on a random index page.
# BENCH_DIR=DIR puts the daemons' files there (kept); BENCH_KEEP=1 keeps the temp dir.
# Exit 0 when every check held, 1 otherwise.
set -u

here=$(cd "$(dirname "$0")" && pwd)
BUILD=${1:-$(cd "$here/../.." && pwd)/build}
DAEMON=$BUILD/vinr-webhookd
LOADGEN=$BUILD/loadgen
REQUESTS=${BENCH_REQUESTS:-100000}
CONNS=${BENCH_CONNS:-32}
SINGLE_SECS=${BENCH_SINGLE_SECS:-5}
NORMAL=${BENCH_NORMAL:-1}
IDS=${BENCH_IDS:-seq}		# seq: ids in sending order (like VINR's ULIDs); random
SECRET="whsec_bench_$(date +%s)_$$"

for f in "$DAEMON" "$LOADGEN"; do
	[ -x "$f" ] || { echo "run.sh: $f missing: run make all first" >&2; exit 1; }
done

if [ -n "${BENCH_DIR:-}" ]; then
	top=$BENCH_DIR
	mkdir -p "$top"
else
	top=$(mktemp -d "${TMPDIR:-/var/tmp}/vinr-bench.XXXXXX")
fi
fstype=$(stat -f -c %T "$top" 2>/dev/null || echo unknown)
[ "$fstype" = tmpfs ] && echo "run.sh: warning: $top is on tmpfs: fsync costs nothing there" >&2

daemon_pid=
cleanup() {
	if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
		kill -KILL "$daemon_pid" 2>/dev/null
		wait "$daemon_pid" 2>/dev/null
	fi
	if [ -z "${BENCH_DIR:-}" ] && [ "${BENCH_KEEP:-0}" != 1 ]; then
		rm -rf "$top"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
	    echo $((20000 + RANDOM % 20000))
}

# GET /healthz without curl: prints the status code, or nothing.
healthz() {
	local line
	exec 3<>"/dev/tcp/127.0.0.1/$1" 2>/dev/null || return 1
	printf 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
	IFS= read -r -t 2 line <&3
	exec 3<&- 3>&-
	set -- $line
	echo "${2:-}"
}

sql() {
	if command -v sqlite3 >/dev/null; then
		sqlite3 -cmd '.timeout 10000' "file:$1?mode=ro" "$2"
	else
		python3 -c 'import sqlite3,sys; c=sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=10); print(c.execute(sys.argv[2]).fetchone()[0])' "$1" "$2"
	fi
}

proc_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# utime + stime of a process, in clock ticks.
proc_cpu() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
clk_tck=$(getconf CLK_TCK)

failures=0
fail() { echo "  FAIL: $*"; failures=$((failures + 1)); }
summary=()

# scenario NAME SYNC CONNS LOADGEN-ARGS...
scenario() {
	local name=$1 sync=$2 conns=$3; shift 3
	local dir=$top/$name port st rc i out result
	local hwm rss threads sampler cpu0 cpu1 outcomes events lines catchup t0 stopped

	mkdir -p "$dir"
	port=$(free_port)
	printf '%s\n' "$SECRET" > "$dir/webhook-secret"
	cat > "$dir/vinr.conf" <<-EOF
	[http]
	listen = 127.0.0.1:$port
	path = /webhooks/vinr
	[webhook]
	secret_file = $dir/webhook-secret
	[storage]
	database = $dir/vinr.db
	event_log = $dir/events.log
	synchronous = $sync
	[control]
	socket = $dir/control.sock
	EOF

	echo "== $name: synchronous=$sync, $conns connection(s), $*"
	(cd "$dir" && exec env -u VINR_API_KEY -u VINR_WEBHOOK_SECRET -u CREDENTIALS_DIRECTORY \
	    -u NOTIFY_SOCKET -u LISTEN_FDS -u LISTEN_PID -u JOURNAL_STREAM \
	    "$DAEMON" -c "$dir/vinr.conf" 2>"$dir/daemon.log") &
	daemon_pid=$!
	st=
	for i in $(seq 1 200); do
		kill -0 "$daemon_pid" 2>/dev/null || break
		st=$(healthz "$port" 2>/dev/null)
		[ "$st" = 200 ] && break
		sleep 0.05
	done
	if [ "$st" != 200 ]; then
		fail "$name: daemon not healthy (healthz '$st'):"; tail -5 "$dir/daemon.log"
		kill -KILL "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null; daemon_pid=
		return
	fi

	# Peak thread count, sampled while the load runs.
	(peak=0; while t=$(proc_kb "$daemon_pid" Threads 2>/dev/null) && [ -n "$t" ]; do
		[ "$t" -gt "$peak" ] && { peak=$t; echo "$peak" > "$dir/threads.peak"; }
		sleep 0.1; done) &
	sampler=$!
	cpu0=$(proc_cpu "$daemon_pid")
	out=$("$LOADGEN" -q -p "$port" -K "$dir/webhook-secret" -c "$conns" -I "$IDS" "$@")
	rc=$?
	cpu1=$(proc_cpu "$daemon_pid")
	printf '%s\n' "$out" | grep -v '^RESULT' | sed 's/^/  /'
	result=$(printf '%s\n' "$out" | sed -n 's/^RESULT //p')
	[ $rc -eq 0 ] || fail "$name: loadgen exit $rc"
	local requests=0 ok=0 ignored=0 rps=0 secs=1 p50_ms=0 p90_ms=0 p99_ms=0 max_ms=0
	local dup=0 http_err=0 io_err=0 mean_ms=0 cpu_s=0 run=
	eval "$(printf '%s\n' "$result" | tr ' ' '\n' | grep -E '^[a-z0-9_]+=[A-Za-z0-9._-]*$' | sed 's/^conns=.*//')"

	hwm=$(proc_kb "$daemon_pid" VmHWM)
	rss=$(proc_kb "$daemon_pid" VmRSS)
	kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
	threads=$(cat "$dir/threads.peak" 2>/dev/null || echo '?')

	# Event log: one line per outcome, within 30 s.
	outcomes=$(sql "$dir/vinr.db" 'SELECT count(*) FROM outcomes')
	events=$(sql "$dir/vinr.db" 'SELECT count(*) FROM events')
	t0=$(date +%s.%N)
	for i in $(seq 1 600); do
		lines=$(wc -l < "$dir/events.log")
		[ "$lines" -ge "$outcomes" ] && break
		sleep 0.05
	done
	catchup=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')

	echo "  daemon: VmHWM $((hwm / 1024)) MiB, VmRSS $((rss / 1024)) MiB, up to $threads threads;" \
	    "CPU $(awk -v c=$((cpu1 - cpu0)) -v t="$clk_tck" -v s="$secs" \
	    'BEGIN { printf "%.2f s = %.0f%% of one core", c / t, 100 * c / t / s }')"
	echo "  database: $outcomes outcomes, $events events; event log $lines lines" \
	    "(caught up ${catchup} s after the load)"
	[ "$outcomes" = "$ok" ] || fail "$name: $outcomes outcome rows, but $ok events accepted as transitions"
	[ "$events" = "$((ok + ignored))" ] || fail "$name: $events event rows, but $((ok + ignored)) accepted"
	[ "$lines" = "$outcomes" ] || fail "$name: event log has $lines lines, outcomes $outcomes"
	[ "$ok" -gt 0 ] && [ "$ok" = "$requests" ] || fail "$name: only $ok of $requests got 200 duplicate:false"

	kill -TERM "$daemon_pid"
	stopped=
	for i in $(seq 1 300); do
		kill -0 "$daemon_pid" 2>/dev/null || { stopped=1; break; }
		sleep 0.1
	done
	if [ -z "$stopped" ]; then
		fail "$name: daemon still running 30 s after SIGTERM"
		kill -KILL "$daemon_pid"
	fi
	wait "$daemon_pid"
	rc=$?
	daemon_pid=
	[ $rc -eq 0 ] || { fail "$name: daemon exit $rc after SIGTERM"; tail -5 "$dir/daemon.log"; }
	echo "  SIGTERM: exit $rc"
	summary+=("$(printf '%-10s %6s %5s %8s %8.0f %7.2f %7.2f %7.2f %8.2f %6s %6s' \
	    "$name" "$sync" "$conns" "$requests" "$rps" "$p50_ms" "$p90_ms" "$p99_ms" "$max_ms" \
	    "$((hwm / 1024))M" "$((rss / 1024))M")")
}

echo "vinr-webhookd bench: $DAEMON, files in $top ($fstype), $(nproc) CPU(s), ids $IDS"
scenario full-32 full "$CONNS" -n "$REQUESTS"
scenario full-1 full 1 -d "$SINGLE_SECS" -n 50000
[ "$NORMAL" = 1 ] && scenario normal-32 normal "$CONNS" -n "$REQUESTS"

echo
echo "== summary (latency in ms; RSS of the daemon: peak, after the load)"
printf '%-10s %6s %5s %8s %8s %7s %7s %7s %8s %6s %6s\n' scenario sync conns requests \
    'req/s' p50 p90 p99 max VmHWM VmRSS
for l in "${summary[@]}"; do echo "$l"; done
if [ $failures -ne 0 ]; then
	echo "bench: $failures check(s) FAILED"
	exit 1
fi
echo "bench: all checks passed"
