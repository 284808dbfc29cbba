# tests/bench/pg.sh - sourced by run.sh: the PostgreSQL backend (SPEC §8).
#
# A throwaway cluster (scripts/pg-scratch.sh: loopback, fsync on), a fresh
# database per run, the event log on, and build/loadgen as for SQLite:
#   pg-CONNS, pg-CONNS_HIGH   one daemon: req/s, latency, the daemon's CPU
#                             and the server's (every postgres process) per
#                             stored event
#   pg2-CONNS_HIGH            two daemons on one database, CONNS_HIGH/2
#                             connections each, at the same time
#   Checks: outcome rows = events accepted, seq gap-free (max = count),
#   SIGTERM exits 0.
# BENCH_PG=0 skips it; without PostgreSQL installed it is skipped with a note.

pg_dir=
pg_port=
pg_pw=
pg_pids=
pg_n=0

pg_cleanup() {
	for p in $pg_pids; do
		kill -KILL "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	[ -n "$pg_dir" ] && "$here/../../scripts/pg-scratch.sh" kill "$pg_dir/c" >/dev/null 2>&1
	[ -n "$pg_dir" ] && rm -rf "$pg_dir"
	pg_dir=
}

pg_sql() { psql -h "$pg_dir/c" -p "$pg_port" -U postgres -d "$1" -At -c "$2" 2>/dev/null; }

# CPU ticks of every process of the cluster.
pg_server_cpu() {
	local pm t=0 p
	pm=$(head -1 "$pg_dir/c/data/postmaster.pid" 2>/dev/null) || { echo 0; return; }
	for p in $pm $(pgrep -P "$pm"); do
		t=$((t + $(proc_cpu "/proc/$p" 2>/dev/null || echo 0)))
	done
	echo $t
}

# pg_ingest NAME NINST CONNS
pg_ingest() {
	local name=$1 ninst=$2 conns=$3 db i dir port ports= st c0=0 c1=0 s0 s1 p
	local rps=0 p99=0 ok=0 outcomes maxseq rc lg l_rps l_p99_ms l_ok l_ignored
	pg_n=$((pg_n + 1))
	db=bench_$pg_n
	pg_sql postgres "CREATE DATABASE $db OWNER vinr" >/dev/null ||
	    { fail "$name: cannot create the database"; return; }
	echo "== $name: postgres, $ninst daemon(s), $conns connection(s) in all, -d $SECS"
	pg_pids=
	for i in $(seq 1 "$ninst"); do
		dir=$top/$name-$i
		mkdir -p "$dir"
		port=$(free_port)
		write_conf "$dir" "$port" full
		sed -i "s|^\[storage\]$|[storage]\nbackend = postgres\ndsn = postgresql://vinr@127.0.0.1:$pg_port/$db\ninstance = bench$i|" \
		    "$dir/vinr.conf"
		(cd "$dir" && exec env -u VINR_API_KEY -u VINR_WEBHOOK_SECRET -u CREDENTIALS_DIRECTORY \
		    -u NOTIFY_SOCKET -u LISTEN_FDS -u LISTEN_PID -u JOURNAL_STREAM \
		    VINR_PG_PASSWORD="$pg_pw" "$DAEMON" -c "$dir/vinr.conf" 2>>"$dir/daemon.log") &
		pg_pids="$pg_pids $!"
		ports="$ports $port"
		for _ in $(seq 1 200); do
			st=$(healthz "$port" 2>/dev/null)
			[ "$st" = 200 ] && break
			sleep 0.05
		done
		[ "$st" = 200 ] || { fail "$name: daemon $i not healthy"; tail -5 "$dir/daemon.log"; return; }
	done
	for p in $pg_pids; do c0=$((c0 + $(proc_cpu "/proc/$p"))); done
	s0=$(pg_server_cpu)
	i=0
	lg=
	for port in $ports; do
		i=$((i + 1))
		"$LOADGEN" -q -p "$port" -K "$top/secret" -I "$IDS" -r "pg$pg_n$i" \
		    -c $((conns / ninst)) -d "$SECS" -n "$POOL" > "$top/$name-$i.out" &
		lg="$lg $!"
	done
	for p in $lg; do
		wait "$p" || fail "$name: loadgen exit $?"
	done
	for p in $pg_pids; do c1=$((c1 + $(proc_cpu "/proc/$p"))); done
	s1=$(pg_server_cpu)
	for i in $(seq 1 "$ninst"); do
		grep -v '^RESULT' "$top/$name-$i.out" | sed 's/^/  /'
		eval "$(sed -n 's/^RESULT //p' "$top/$name-$i.out" | tr ' ' '\n' |
		    grep -E '^(rps|p99_ms|ok|ignored)=' | sed "s/^/l_/")"
		rps=$(awk -v a="$rps" -v b="${l_rps:-0}" 'BEGIN { printf "%.0f", a + b }')
		p99=$(awk -v a="$p99" -v b="${l_p99_ms:-0}" 'BEGIN { print (b > a ? b : a) }')
		ok=$((ok + ${l_ok:-0} + ${l_ignored:-0}))
	done
	outcomes=$(pg_sql "$db" 'SELECT count(*) FROM outcomes')
	maxseq=$(pg_sql "$db" 'SELECT coalesce(max(seq), 0) FROM outcomes')
	[ "$outcomes" = "$ok" ] || fail "$name: $outcomes outcomes for $ok events accepted"
	[ "$outcomes" = "$maxseq" ] || fail "$name: seq not gap-free ($outcomes rows, max $maxseq)"
	echo "  database: $outcomes outcomes, max seq $maxseq"
	R[$name.rps]=$rps; R[$name.p99]=$p99
	R[$name.cpu_us]=$(awk -v c=$(((c1 - c0) * us_per_tick)) -v n="$ok" 'BEGIN { printf "%.1f", n ? c / n : 0 }')
	R[$name.srv_us]=$(awk -v c=$(((s1 - s0) * us_per_tick)) -v n="$ok" 'BEGIN { printf "%.1f", n ? c / n : 0 }')
	echo "  CPU µs per stored event: daemon(s) ${R[$name.cpu_us]}, postgres ${R[$name.srv_us]}"
	for p in $pg_pids; do
		kill -TERM "$p"
		wait "$p"
		rc=$?
		[ $rc -eq 0 ] || fail "$name: daemon exit $rc after SIGTERM"
	done
	echo "  SIGTERM: all stopped"
	pg_pids=
}

pg_bench() {
	if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
		echo "== postgres: PostgreSQL is not installed: skipped (make deps-pg)"
		return
	fi
	pg_dir=$(mktemp -d /tmp/vinr-bench-pg.XXXXXX)
	chmod 0755 "$pg_dir"
	pg_port=$(free_port)
	pg_pw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	"$here/../../scripts/pg-scratch.sh" start "$pg_dir/c" "$pg_port" "$pg_pw" ||
	    { fail "postgres: the cluster did not start"; pg_cleanup; return; }
	pg_ingest "pg-$CONNS" 1 "$CONNS"
	pg_ingest "pg-$CONNS_HIGH" 1 "$CONNS_HIGH"
	pg_ingest "pg2-$CONNS_HIGH" 2 "$CONNS_HIGH"
	pg_cleanup
}

pg_summary() {
	local lo=$CONNS hi=$CONNS_HIGH
	[ -n "${R[pg-$lo.rps]:-}" ] || return 0
	row "postgres: ingest, req/s" "$(v pg-$lo.rps)" "$(v pg-$hi.rps)" \
	    "sqlite $(v full-$lo.rps) / $(v full-$hi.rps)" ""
	row "  two instances, req/s in all" "" "$(v pg2-$hi.rps)" "" ""
	row "  latency p99 ms" "$(v pg-$lo.p99)" "$(v pg-$hi.p99)" "two: $(v pg2-$hi.p99)" ""
	row "  daemon CPU us per event" "$(v pg-$lo.cpu_us)" "$(v pg-$hi.cpu_us)" "two: $(v pg2-$hi.cpu_us)" ""
	row "  postgres CPU us per event" "$(v pg-$lo.srv_us)" "$(v pg-$hi.srv_us)" "two: $(v pg2-$hi.srv_us)" ""
}
