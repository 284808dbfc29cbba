#!/usr/bin/env bash
# tests/bench/run.sh [BUILD_DIR] - throughput, CPU, bytes, sinks and latency of
# vinr-webhookd, each beside a reference measured in the same run (issue 11).
#
# `make bench` runs it after `make all`.  Every daemon gets a fresh database
# in a temporary directory (on disk, not tmpfs, so that fsync costs what it
# costs), a free port, and the event log on.
#
# Ingest (build/loadgen posts signed, unique events, every one a transition):
#   bare-32, bare-128   tests/bench/bare.c: libmicrohttpd alone with the
#                       daemon's threading model and 16 KiB pool, BENCH_BARE_SECS (5) s each
#   bare-susp-128       the same, each request suspended and resumed by
#                       another thread (BENCH_SUSPEND=0 skips)
#   full-32, full-128   synchronous=full, BENCH_CONNS (32) and BENCH_CONNS_HIGH
#                       (128) connections for BENCH_SECS (8) s: req/s and
#                       latency, CPU per stored event per thread (from
#                       /proc/PID/task/*/stat), bytes written per event
#                       (/proc/PID/io, and database growth), the writer's
#                       commits (from /metrics)
#   full-1              1 connection for BENCH_SINGLE_SECS (5) s (BENCH_SINGLE=0 skips)
#   normal-32           synchronous=normal (BENCH_NORMAL=0 skips)
#   Checks: outcome rows = events accepted as transitions, event rows = events
#   accepted, the event log catches up (one line per outcome), SIGTERM exits 0.
# Sinks (BENCH_SINKS=0 skips), on a database of BENCH_BACKLOG (20000) outcomes:
#   socket  [forward] socket, events = all, and a consumer reading as fast as
#           it can (tests/bench/sinkbench.py consume): lines/s
#   hook    [forward] hook = /bin/true, events = all: runs/s for at most
#           BENCH_HOOK_SECS (5) s, beside build/spawnrate (posix_spawn +
#           waitpid of /bin/true one after another)
#   subscribe  `subscribe since 0`: the time to the last line, the longest
#           pause; the worst of BENCH_SUB_RUNS (3) subscribers, one after the other
#   latency    light load (BENCH_LAT_N (200) events at BENCH_LAT_RATE (50)/s,
#           one at a time): 200 -> event-log line, 200 -> subscriber line
#           (BENCH_LAT=0 skips)
# Engine (BENCH_ENGINE=0 skips): build/enginebench, the SQLite engine alone
#   (40,000 events in batches of 50, synchronous=full, no HTTP): the writer's
#   CPU per event without the other threads, the median of 3 runs.
# BENCH_BARE=0 skips the bare server, BENCH_INGEST=0 full-32 and full-128;
# PostgreSQL (BENCH_PG=0 skips): see tests/bench/pg.sh.
# BENCH_IDS=random scatters the ids.
# BENCH_DIR=DIR puts the files there (kept); BENCH_KEEP=1 keeps the temp dir.
# One summary table at the end.  Exit 0 when every check held, 1 otherwise.
set -u

here=$(cd "$(dirname "$0")" && pwd)
BUILD=$(cd "${1:-$here/../../build}" 2>/dev/null && pwd) ||
	{ echo "run.sh: ${1:-build}: no such directory: run make all first" >&2; exit 1; }
DAEMON=$BUILD/vinr-webhookd
LOADGEN=$BUILD/loadgen
BARE=$BUILD/bare
SPAWNRATE=$BUILD/spawnrate
SINKBENCH=$here/sinkbench.py
. "$here/pg.sh"
SECS=${BENCH_SECS:-8}
POOL=${BENCH_POOL:-250000}
CONNS=${BENCH_CONNS:-32}
CONNS_HIGH=${BENCH_CONNS_HIGH:-128}
BARE_SECS=${BENCH_BARE_SECS:-5}
SINGLE_SECS=${BENCH_SINGLE_SECS:-5}
BACKLOG=${BENCH_BACKLOG:-20000}
HOOK_SECS=${BENCH_HOOK_SECS:-5}
LAT_N=${BENCH_LAT_N:-200}
LAT_RATE=${BENCH_LAT_RATE:-50}
IDS=${BENCH_IDS:-seq}		# seq: ids in sending order (like VINR's ULIDs); random
SECRET="whsec_bench_$(date +%s)_$$"

for f in "$DAEMON" "$LOADGEN" "$BARE" "$SPAWNRATE"; do
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
bg_pid=
cleanup() {
	pg_cleanup
	for p in $daemon_pid $bg_pid; do
		if kill -0 "$p" 2>/dev/null; then
			kill -KILL "$p" 2>/dev/null
			wait "$p" 2>/dev/null
		fi
	done
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

# GET PATH on 127.0.0.1:PORT without curl: the status code, or the body with -b.
http_get() {
	local port=$1 path=$2 want=${3:-status} line st body=0
	exec 3<>"/dev/tcp/127.0.0.1/$port" 2>/dev/null || return 1
	printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
	IFS= read -r -t 2 line <&3
	set -- $line
	st=${2:-}
	if [ "$want" = status ]; then
		echo "$st"
	else
		while IFS= read -r -t 2 line; do
			[ $body = 1 ] && printf '%s\n' "$line"
			[ "$line" = $'\r' ] && body=1
		done <&3
	fi
	exec 3<&- 3>&-
}
healthz() { http_get "$1" /healthz; }
# The value of one /metrics line (name and labels as printed), or 0.
metric() { awk -v k="$2" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }' "$1"; }

sql() {
	if command -v sqlite3 >/dev/null; then
		sqlite3 -cmd '.timeout 10000' "file:$1?mode=ro" "$2"
	else
		python3 -c 'import sqlite3,sys; c=sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=10); print(c.execute(sys.argv[2]).fetchone()[0])' "$1" "$2"
	fi
}

proc_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# utime + stime of a process or thread, in clock ticks.
proc_cpu() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "$1/stat"; }
io_field() { awk -v k="$2:" '$1 == k { print $2 }' "$1/io"; }
fsize() { stat -c %s "$1" 2>/dev/null || echo 0; }
clk_tck=$(getconf CLK_TCK)
us_per_tick=$((1000000 / clk_tck))

failures=0
fail() { echo "  FAIL: $*"; failures=$((failures + 1)); }
declare -A R			# results, "scenario.key" -> value
peak_hwm=0

# One line per thread: tid, role, CPU ticks, write_bytes.  Threads the
# daemon does not name (comm = the program's) are named by creation order,
# which main.c's start() fixes: the writer, the sinks in the order of
# $roles, the control loop.  libmicrohttpd's own are "MHD-worker".
thread_snap() {
	local pid=$1 roles=$2 t tid comm role i=0
	local -a r=($roles)
	for t in $(ls -d /proc/"$pid"/task/* 2>/dev/null | sort -t/ -k5 -n); do
		tid=${t##*/}
		comm=$(cat "$t/comm" 2>/dev/null) || continue
		if [ "$tid" = "$pid" ]; then
			role=main
		elif [ "$comm" = MHD-worker ]; then
			role=http
		elif [ "$comm" != vinr-webhookd ]; then
			role=$comm
		else
			role=${r[$i]:-other}
			i=$((i + 1))
		fi
		echo "$tid $role $(proc_cpu "$t" 2>/dev/null || echo 0) $(io_field "$t" write_bytes 2>/dev/null || echo 0)"
	done
}

# Writes DIR/vinr.conf; extra lines go into [forward].
write_conf() {
	local dir=$1 port=$2 sync=$3 forward=${4:-}
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
	[forward]
	$forward
	[control]
	socket = $dir/control.sock
	EOF
}

# Starts the daemon of DIR on PORT; 0 once /healthz answers 200.
daemon_start() {
	local dir=$1 port=$2 name=$3 st= i
	(cd "$dir" && exec env -u VINR_API_KEY -u VINR_WEBHOOK_SECRET -u CREDENTIALS_DIRECTORY \
	    -u NOTIFY_SOCKET -u LISTEN_FDS -u LISTEN_PID -u JOURNAL_STREAM \
	    "$DAEMON" -c "$dir/vinr.conf" 2>>"$dir/daemon.log") &
	daemon_pid=$!
	for i in $(seq 1 200); do
		kill -0 "$daemon_pid" 2>/dev/null || break
		st=$(healthz "$port" 2>/dev/null)
		[ "$st" = 200 ] && return 0
		sleep 0.05
	done
	fail "$name: daemon not healthy (healthz '$st'):"; tail -5 "$dir/daemon.log"
	kill -KILL "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null; daemon_pid=
	return 1
}

# SIGTERM: must exit 0 within 30 s.
daemon_stop() {
	local name=$1 dir=$2 rc i stopped= hwm
	hwm=$(proc_kb "$daemon_pid" VmHWM)
	[ "${hwm:-0}" -gt "$peak_hwm" ] && peak_hwm=$hwm
	kill -TERM "$daemon_pid"
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
}

# Runs loadgen; sets the RESULT variables in the caller.
run_loadgen() {
	local name=$1 port=$2 out rc; shift 2
	out=$("$LOADGEN" -q -p "$port" -K "$top/secret" -I "$IDS" "$@")
	rc=$?
	printf '%s\n' "$out" | grep -v '^RESULT' | sed 's/^/  /'
	[ $rc -eq 0 ] || fail "$name: loadgen exit $rc"
	eval "$(printf '%s\n' "$out" | sed -n 's/^RESULT //p' | tr ' ' '\n' |
	    grep -E '^[a-z0-9_]+=[A-Za-z0-9._-]*$' | sed 's/^conns=.*//')"
}

# bare NAME CONNS [-s]
bare() {
	local name=$1 conns=$2 port pid cpu0 cpu1 requests=0 ok=0 rps=0 p50_ms=0 p90_ms=0
	local p99_ms=0 max_ms=0 secs=1 ignored=0 dup=0 http_err=0 io_err=0 mean_ms=0 cpu_s=0 run= ids=
	shift 2
	port=$(free_port)
	echo "== $name: bare libmicrohttpd server${*:+ $*}, $conns connections, $BARE_SECS s"
	"$BARE" -p "$port" "$@" 2>"$top/$name.log" &
	pid=$!
	bg_pid=$pid
	for i in $(seq 1 100); do
		[ "$(http_get "$port" / 2>/dev/null)" = 200 ] && break
		sleep 0.02
	done
	cpu0=$(proc_cpu "/proc/$pid")
	run_loadgen "$name" "$port" -c "$conns" -d "$BARE_SECS" -n 20000 -R
	cpu1=$(proc_cpu "/proc/$pid")
	kill -TERM "$pid"; wait "$pid"; bg_pid=
	R[$name.rps]=${rps%.*}; R[$name.p50]=$p50_ms; R[$name.p99]=$p99_ms; R[$name.max]=$max_ms
	R[$name.cpu_us]=$(awk -v c=$(((cpu1 - cpu0) * us_per_tick)) -v n="$requests" \
	    'BEGIN { printf "%.1f", n ? c / n : 0 }')
	echo "  bare: CPU ${R[$name.cpu_us]} µs per request"
}

# Per-thread CPU from two snapshots, in µs per event, into R[name.cpu.ROLE].
cpu_split() {
	local name=$1 before=$2 after=$3 n=$4 line
	while read -r line; do
		set -- $line
		R[$name.cpu.$1]=$2
	done < <(awk -v n="$n" -v us="$us_per_tick" '
	    NR == FNR { b[$1] = $3; next }
	    { cpu[$2] += $3 - b[$1]; wb[$2] += $4 }
	    END { for (r in cpu) printf "%s %.1f\n", r, n ? cpu[r] * us / n : 0 }' "$before" "$after")
	echo "  CPU µs per stored event by thread:" \
	    "$(for k in writer checkpointer http http-resumer eventlog control main other; do
		[ -n "${R[$name.cpu.$k]:-}" ] && printf '%s %s, ' "$k" "${R[$name.cpu.$k]}"; done)" \
	    "all ${R[$name.cpu_us]}"
	# The roles are guessed from creation order: the writer writes the WAL,
	# more bytes than the event log's lines.
	awk '$2 == "writer" { w = $4 } $2 == "eventlog" { e = $4 }
	    END { if (w < e) print "  warning: the thread taken for the writer wrote less than the event log: roles may be wrong" }' "$after"
}

# ingest NAME SYNC CONNS LOADGEN-ARGS...
ingest() {
	local name=$1 sync=$2 conns=$3; shift 3
	local dir=$top/$name port i out threads sampler cpu0 cpu1 outcomes events lines catchup t0
	local requests=0 ok=0 ignored=0 rps=0 secs=1 p50_ms=0 p90_ms=0 p99_ms=0 max_ms=0
	local dup=0 http_err=0 io_err=0 mean_ms=0 cpu_s=0 run= ids= hwm
	local wb0 wb1 db0 db1 m0 m1 n commits csum bsum

	mkdir -p "$dir"
	port=$(free_port)
	write_conf "$dir" "$port" "$sync"
	echo "== $name: synchronous=$sync, $conns connection(s), $*"
	daemon_start "$dir" "$port" "$name" || return

	(peak=0; while t=$(proc_kb "$daemon_pid" Threads 2>/dev/null) && [ -n "$t" ]; do
		[ "$t" -gt "$peak" ] && { peak=$t; echo "$peak" > "$dir/threads.peak"; }
		sleep 0.1; done) &
	sampler=$!
	http_get "$port" /metrics body > "$dir/metrics.0"
	db0=$(( $(fsize "$dir/vinr.db") + $(fsize "$dir/vinr.db-wal") ))
	wb0=$(io_field "/proc/$daemon_pid" write_bytes)
	thread_snap "$daemon_pid" "writer eventlog control" > "$dir/threads.0"
	cpu0=$(proc_cpu "/proc/$daemon_pid")
	run_loadgen "$name" "$port" -c "$conns" "$@"
	cpu1=$(proc_cpu "/proc/$daemon_pid")
	thread_snap "$daemon_pid" "writer eventlog control" > "$dir/threads.1"
	wb1=$(io_field "/proc/$daemon_pid" write_bytes)
	http_get "$port" /metrics body > "$dir/metrics.1"
	hwm=$(proc_kb "$daemon_pid" VmHWM)
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
	n=$((ok + ignored))

	R[$name.rps]=${rps%.*}; R[$name.p50]=$p50_ms; R[$name.p99]=$p99_ms; R[$name.max]=$max_ms
	R[$name.hwm]=$((hwm / 1024)); R[$name.catchup]=$catchup
	R[$name.cpu_us]=$(awk -v c=$(((cpu1 - cpu0) * us_per_tick)) -v n="$n" \
	    'BEGIN { printf "%.1f", n ? c / n : 0 }')
	R[$name.wb]=$(awk -v b=$((wb1 - wb0)) -v n="$n" 'BEGIN { printf "%.0f", n ? b / n : 0 }')
	m0=$dir/metrics.0; m1=$dir/metrics.1
	commits=$(awk -v a="$(metric "$m0" vinr_commit_seconds_count)" \
	    -v b="$(metric "$m1" vinr_commit_seconds_count)" 'BEGIN { print b - a }')
	csum=$(awk -v a="$(metric "$m0" vinr_commit_seconds_sum)" \
	    -v b="$(metric "$m1" vinr_commit_seconds_sum)" 'BEGIN { print b - a }')
	bsum=$(awk -v a="$(metric "$m0" vinr_commit_batch_size_sum)" \
	    -v b="$(metric "$m1" vinr_commit_batch_size_sum)" 'BEGIN { print b - a }')
	R[$name.busy]=$(awk -v c="$csum" -v s="$secs" 'BEGIN { printf "%.0f", 100 * c / s }')
	R[$name.ms_commit]=$(awk -v c="$csum" -v k="$commits" 'BEGIN { printf "%.2f", k ? 1000 * c / k : 0 }')
	R[$name.per_commit]=$(awk -v b="$bsum" -v k="$commits" 'BEGIN { printf "%.1f", k ? b / k : 0 }')
	R[$name.wal]=$(( $(fsize "$dir/vinr.db-wal") / 1024 ))
	R[$name.log_b]=$(awk -v b="$(fsize "$dir/events.log")" -v n="$outcomes" \
	    'BEGIN { printf "%.0f", n ? b / n : 0 }')

	echo "  daemon: VmHWM $((hwm / 1024)) MiB, up to $threads threads;" \
	    "CPU $(awk -v c=$((cpu1 - cpu0)) -v t="$clk_tck" -v s="$secs" \
	    'BEGIN { printf "%.2f s = %.0f%% of one core", c / t, 100 * c / t / s }')"
	cpu_split "$name" "$dir/threads.0" "$dir/threads.1" "$n"
	echo "  writer: $commits commits, busy ${R[$name.busy]}% of the run," \
	    "${R[$name.ms_commit]} ms per commit, ${R[$name.per_commit]} jobs per commit"
	echo "  written: ${R[$name.wb]} B per event (write_bytes), WAL now ${R[$name.wal]} KiB," \
	    "event log ${R[$name.log_b]} B per line"
	echo "  database: $outcomes outcomes, $events events; event log $lines lines" \
	    "(caught up ${catchup} s after the load)"
	[ "$outcomes" = "$ok" ] || fail "$name: $outcomes outcome rows, but $ok events accepted as transitions"
	[ "$events" = "$((ok + ignored))" ] || fail "$name: $events event rows, but $((ok + ignored)) accepted"
	[ "$lines" = "$outcomes" ] || fail "$name: event log has $lines lines, outcomes $outcomes"
	[ "$ok" -gt 0 ] && [ "$ok" = "$requests" ] || fail "$name: only $ok of $requests got 200 duplicate:false"

	daemon_stop "$name" "$dir"
	db1=$(( $(fsize "$dir/vinr.db") + $(fsize "$dir/vinr.db-wal") ))
	R[$name.db_b]=$(awk -v b=$((db1 - db0)) -v n="$n" 'BEGIN { printf "%.0f", n ? b / n : 0 }')
	echo "  database file after the stop: ${R[$name.db_b]} B per event" \
	    "($(sql "$dir/vinr.db" "SELECT group_concat(name || ' ' || (s * 1 / $n), ', ') FROM
	    (SELECT name, sum(pgsize) AS s FROM dbstat GROUP BY name ORDER BY s DESC)" 2>/dev/null) B/event)"
}

# The sinks on one database of BACKLOG outcomes, each in a daemon of its own.
sinks() {
	local dir=$top/sinks port out n rc
	local requests=0 ok=0 ignored=0 rps=0 secs=1 p50_ms=0 p90_ms=0 p99_ms=0 max_ms=0
	local dup=0 http_err=0 io_err=0 mean_ms=0 cpu_s=0 run= ids=
	local lines=0 rate=0 max_gap_ms=0 first_ms=0 delivered=0 cursor=0 runs=0 forks

	mkdir -p "$dir"
	port=$(free_port)
	write_conf "$dir" "$port" full
	echo "== sinks: a backlog of $BACKLOG outcomes"
	daemon_start "$dir" "$port" sinks || return
	run_loadgen sinks "$port" -c "$CONNS" -n "$BACKLOG"
	daemon_stop sinks "$dir"
	n=$(sql "$dir/vinr.db" 'SELECT count(*) FROM outcomes')

	echo "== socket sink: events = all, a consumer reading as fast as it can"
	python3 "$SINKBENCH" consume "$dir/sink.sock" "$n" 30 > "$dir/consume.out" &
	bg_pid=$!
	for i in $(seq 1 100); do [ -S "$dir/sink.sock" ] && break; sleep 0.02; done
	write_conf "$dir" "$port" full "$(printf 'socket = %s\nevents = all' "$dir/sink.sock")"
	if daemon_start "$dir" "$port" socket; then
		wait "$bg_pid" || fail "socket sink: the consumer got fewer than $n lines"
		bg_pid=
		sed 's/^/  /' "$dir/consume.out" | grep -v RESULT
		eval "$(sed -n 's/^RESULT //p' "$dir/consume.out")"
		R[socket.rate]=$rate; R[socket.gap]=$max_gap_ms
		daemon_stop socket "$dir"
	fi

	echo "== hook sink: hook = /bin/true, events = all, at most $HOOK_SECS s"
	out=$("$SPAWNRATE" -d 2 /bin/true)
	printf '%s\n' "$out" | grep -v RESULT | sed 's/^/  /'
	eval "$(printf '%s\n' "$out" | sed -n 's/^RESULT //p')"
	R[spawn.rate]=$rate
	write_conf "$dir" "$port" full "$(printf 'hook = /bin/true\nevents = all')"
	if daemon_start "$dir" "$port" hook; then
		# The sink saves its cursor once per batch of 256: a slow hook
		# does not move it within the window.  So the daemon's forks are
		# counted too (a tracepoint, where perf may use it).
		forks=
		if command -v perf >/dev/null; then
			perf stat -x, -e sched:sched_process_fork -p "$daemon_pid" \
			    -o "$dir/forks" -- sleep "$HOOK_SECS" 2>/dev/null &
			bg_pid=$!
		fi
		out=$(python3 "$SINKBENCH" hookrate "$dir/control.sock" "$n" "$HOOK_SECS")
		rc=$?
		printf '%s\n' "$out" | grep -v RESULT | sed 's/^/  /'
		eval "$(printf '%s\n' "$out" | sed -n 's/^RESULT //p')"
		if [ -n "$bg_pid" ]; then
			wait "$bg_pid"; bg_pid=
			forks=$(awk -F, '/sched_process_fork/ { print $1 }' "$dir/forks" 2>/dev/null)
		fi
		case "$forks" in
		''|*[!0-9]*)
			R[hook.rate]=$rate
			[ $rc -eq 0 ] || fail "hook sink: its cursor did not move in $HOOK_SECS s";;
		*)
			echo "  perf: the daemon forked $forks times in $HOOK_SECS s:" \
			    "$(awk -v f="$forks" -v s="$HOOK_SECS" 'BEGIN { printf "%.1f", f / s }') runs/s"
			# The cursor's figure when the backlog ran out first.
			R[hook.rate]=$(awk -v f="$forks" -v s="$HOOK_SECS" -v c="$cursor" -v n="$n" \
			    -v r="$rate" 'BEGIN { printf "%.1f", (c >= n ? r : f / s) }')
			[ "$forks" -gt 0 ] || fail "hook sink: no hook run in $HOOK_SECS s";;
		esac
		daemon_stop hook "$dir"
	fi

	echo "== subscriber: subscribe since 0, $n lines of backlog"
	write_conf "$dir" "$port" full
	daemon_start "$dir" "$port" subscribe || return
	# How long it takes depends on how the reader and the control loop
	# interleave: BENCH_SUB_RUNS (3) subscribers one after the other, the
	# worst counts.
	for i in $(seq 1 "${BENCH_SUB_RUNS:-3}"); do
		out=$(python3 "$SINKBENCH" subscribe "$dir/control.sock" "$n" 30)
		rc=$?
		printf '%s\n' "$out" | grep -v RESULT | sed 's/^/  /'
		[ $rc -eq 0 ] || fail "subscriber: fewer than $n lines within 30 s"
		eval "$(printf '%s\n' "$out" | sed -n 's/^RESULT //p')"
		R[sub.secs]=$(awk -v a="${R[sub.secs]:-0}" -v b="$secs" 'BEGIN { print (b > a ? b : a) }')
		R[sub.gap]=$(awk -v a="${R[sub.gap]:-0}" -v b="$max_gap_ms" 'BEGIN { print (b > a ? b : a) }')
	done
	if [ "${BENCH_LAT:-1}" = 1 ]; then
		echo "== latency: $LAT_N events at $LAT_RATE/s, one at a time"
		out=$(python3 "$SINKBENCH" latency "$port" "$dir/webhook-secret" \
		    "$dir/control.sock" "$dir/events.log" "$LAT_N" "$LAT_RATE")
		rc=$?
		printf '%s\n' "$out" | grep -v RESULT | sed 's/^/  /'
		[ $rc -eq 0 ] || fail "latency: an event got no 200 or no line"
		eval "$(printf '%s\n' "$out" | sed -n 's/^RESULT //p')"
		R[lat.log]="$log_p50 / $log_p99"; R[lat.sub]="$sub_p50 / $sub_p99"
		R[lat.rtt]="$rtt_p50 / $rtt_p99"
	fi
	daemon_stop subscribe "$dir"
}

# The SQLite engine alone (tests/bench/enginebench.c), when it was built.
engine() {
	local i out writer_us=0 process_us=0 wall_us=0 bytes=0 all=
	[ -x "$BUILD/enginebench" ] || return
	echo "== engine: build/enginebench -s 2, 3 runs"
	for i in 1 2 3; do
		rm -rf "$top/engine"; mkdir -p "$top/engine"
		out=$("$BUILD/enginebench" -s 2 "$top/engine" 2>/dev/null) ||
		    { fail "enginebench failed"; return; }
		printf '%s\n' "$out" | grep -v RESULT | sed 's/^/  /'
		eval "$(printf '%s\n' "$out" | sed -n 's/^RESULT //p')"
		all="$all $writer_us"
		R[engine.bytes]=$bytes
	done
	R[engine.writer]=$(printf '%s\n' $all | sort -n | sed -n 2p)
}

# The summary: one row per figure, the daemon beside its reference.
row() { printf '%-40s %13s %13s  %-24s %s\n' "$@"; }
v() { echo "${R[$1]:--}"; }
ratio() {
	[ -n "${R[$1]:-}" ] && [ -n "${R[$2]:-}" ] &&
	    awk -v a="${R[$1]}" -v b="${R[$2]}" 'BEGIN { if (b > 0) printf "%.2fx", a / b }'
}
summary() {
	local lo=$CONNS hi=$CONNS_HIGH k
	echo
	echo "== summary: $(nproc) CPUs, files on $fstype, ids $IDS, synchronous=full unless said" \
	    "(targets: issue 11)"
	row what "$lo conns" "$hi conns" reference target
	row "ingest, req/s" "$(v full-$lo.rps)" "$(v full-$hi.rps)" \
	    "bare $(v bare-$lo.rps) / $(v bare-$hi.rps)" ">= 3x today"
	row "  daemon / bare" "$(ratio full-$lo.rps bare-$lo.rps)" "$(ratio full-$hi.rps bare-$hi.rps)" \
	    "bare+suspend $(v bare-susp-$hi.rps)" ""
	row "latency p50 ms" "$(v full-$lo.p50)" "$(v full-$hi.p50)" \
	    "bare $(v bare-$lo.p50) / $(v bare-$hi.p50)" ""
	row "latency p99 ms" "$(v full-$lo.p99)" "$(v full-$hi.p99)" \
	    "bare $(v bare-$lo.p99) / $(v bare-$hi.p99)" "<= 5 / <= 15"
	row "latency max ms" "$(v full-$lo.max)" "$(v full-$hi.max)" "" ""
	row "CPU us per stored event" "$(v full-$lo.cpu_us)" "$(v full-$hi.cpu_us)" \
	    "bare $(v bare-$lo.cpu_us) / $(v bare-$hi.cpu_us) per req" "<= 45"
	for k in writer checkpointer http http-resumer eventlog control main other; do
		[ -n "${R[full-$lo.cpu.$k]:-}${R[full-$hi.cpu.$k]:-}" ] || continue
		row "  $k thread(s)" "$(v full-$lo.cpu.$k)" "$(v full-$hi.cpu.$k)" \
		    "$([ $k = http ] && echo "HMAC+parse ~4 us")" "$([ $k = writer ] && echo "<= 15")"
	done
	row "  SQLite engine alone, writer us" "$(v engine.writer)" "" \
	    "enginebench, median of 3" ""
	row "writer busy, % of the run" "$(v full-$lo.busy)" "$(v full-$hi.busy)" "" ""
	row "  ms per commit" "$(v full-$lo.ms_commit)" "$(v full-$hi.ms_commit)" "" ""
	row "  jobs per commit" "$(v full-$lo.per_commit)" "$(v full-$hi.per_commit)" "" ""
	row "bytes written per event (write_bytes)" "$(v full-$lo.wb)" "$(v full-$hi.wb)" \
	    "body ~700 B" ""
	row "database growth per event, B" "$(v full-$lo.db_b)" "$(v full-$hi.db_b)" "" ""
	row "event log per line, B" "$(v full-$lo.log_b)" "$(v full-$hi.log_b)" "" ""
	row "WAL after the load, KiB" "$(v full-$lo.wal)" "$(v full-$hi.wal)" "" "bounded"
	row "event log caught up after load, s" "$(v full-$lo.catchup)" "$(v full-$hi.catchup)" \
	    "" "<= 1"
	row "1 connection: req/s, p99 ms" "$(v full-1.rps)" "$(v full-1.p99)" "" ""
	row "synchronous=normal: req/s, p99 ms" "$(v normal-$lo.rps)" "$(v normal-$lo.p99)" "" ""
	row "hook sink, /bin/true, runs/s" "$(v hook.rate)" "" \
	    "posix_spawn $(v spawn.rate)/s" ">= 0.5x: $(ratio hook.rate spawn.rate)"
	row "socket sink, lines/s" "$(v socket.rate)" "" "" ">= 50000"
	row "subscriber backlog $BACKLOG lines, s" "$(v sub.secs)" "" "worst of ${BENCH_SUB_RUNS:-3}" "< 1"
	row "  longest pause, ms" "$(v sub.gap)" "" "worst of ${BENCH_SUB_RUNS:-3}" "<= 100"
	row "200 -> event-log line p50/p99 ms" "$(v lat.log)" "" "200 rtt $(v lat.rtt)" "p99 <= 10"
	row "200 -> subscriber line p50/p99 ms" "$(v lat.sub)" "" "" "p99 <= 10"
	row "peak RSS (VmHWM), MiB, all runs" "$((peak_hwm / 1024))" "" "" "<= 32"
	pg_summary
}

echo "vinr-webhookd bench: $DAEMON, files in $top ($fstype), $(nproc) CPU(s), ids $IDS"
printf '%s\n' "$SECRET" > "$top/secret"
if [ "${BENCH_BARE:-1}" = 1 ]; then
	bare "bare-$CONNS" "$CONNS" -m 16384
	bare "bare-$CONNS_HIGH" "$CONNS_HIGH" -m 16384
	[ "${BENCH_SUSPEND:-1}" = 1 ] && bare "bare-susp-$CONNS_HIGH" "$CONNS_HIGH" -s -m 16384
fi
if [ "${BENCH_INGEST:-1}" = 1 ]; then
	ingest "full-$CONNS" full "$CONNS" -d "$SECS" -n "$POOL"
	ingest "full-$CONNS_HIGH" full "$CONNS_HIGH" -d "$SECS" -n "$POOL"
fi
[ "${BENCH_ENGINE:-1}" = 1 ] && engine
[ "${BENCH_SINGLE:-1}" = 1 ] && ingest full-1 full 1 -d "$SINGLE_SECS" -n 50000
[ "${BENCH_NORMAL:-1}" = 1 ] && ingest "normal-$CONNS" normal "$CONNS" -d "$SECS" -n "$POOL"
[ "${BENCH_SINKS:-1}" = 1 ] && sinks
[ "${BENCH_PG:-1}" = 1 ] && pg_bench

summary
if [ $failures -ne 0 ]; then
	echo "bench: $failures check(s) FAILED"
	exit 1
fi
echo "bench: all checks passed"
