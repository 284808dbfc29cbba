#!/bin/sh
# `make run-pg`: two vinr-webhookd instances sharing one PostgreSQL database
# (SPEC §8), and vinr-sim when built, all on loopback.  The database is a
# throwaway cluster under ./var/pg (scripts/pg-scratch.sh: initdb as an
# unprivileged user, 127.0.0.1 only); each instance keeps its event log and
# control socket under ./var/pg-a or ./var/pg-b.  Ctrl-C stops everything,
# the cluster too; its data stays in ./var/pg for the next run (remove that
# directory to start afresh).
set -eu
cd "$(dirname "$0")/.."
BIN=${BIN:-build}
PGDIR=${VINR_PG_DIR:-var/pg}
PGPORT=8794
SIMPORT=8793
PORT_A=8791
PORT_B=8792
pids=""
pg_started=0

# Nothing else may answer on our ports (a second `make run-pg`): curl exits
# 7 only when nothing accepts the connection.
for port in $PORT_A $PORT_B $SIMPORT $PGPORT; do
	rc=0
	curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/" || rc=$?
	if [ "$rc" -ne 7 ]; then
		echo "run-pg: port $port on 127.0.0.1 is taken (another \`make run-pg\`?); stop it first" >&2
		exit 1
	fi
done

mkdir -p var/pg-a var/pg-b "$PGDIR"
PGDIR=$(cd "$PGDIR" && pwd)

# The server runs as the `postgres` user when we are root: it must be able
# to reach its directory through every parent.
if [ "$(id -u)" -eq 0 ] && getent passwd postgres >/dev/null &&
    ! runuser -u postgres -- test -x "$(dirname "$PGDIR")"; then
	echo "run-pg: the postgres user cannot enter $(dirname "$PGDIR");" \
	    "set VINR_PG_DIR to a directory it can reach (e.g. /tmp/vinr-pg)" >&2
	exit 1
fi

cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ $pg_started -eq 1 ]; then
		scripts/pg-scratch.sh stop "$PGDIR" || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The role's password is made once, with the cluster, and kept beside it
# (mode 0600): never in a configuration file.
pwfile=var/pg-password
if [ ! -s "$PGDIR/data/PG_VERSION" ] || [ ! -s "$pwfile" ]; then
	rm -rf "${PGDIR:?}/data"
	(umask 077; openssl rand -hex 16 > "$pwfile")
fi
VINR_PG_PASSWORD=$(cat "$pwfile")
export VINR_PG_PASSWORD
scripts/pg-scratch.sh start "$PGDIR" $PGPORT "$VINR_PG_PASSWORD"
pg_started=1

for name in a b; do
	if [ $name = a ]; then port=$PORT_A; else port=$PORT_B; fi
	cat > var/pg-$name/vinr.conf <<-CONF
	; Written by scripts/run-pg.sh (\`make run-pg\`): instance $name of two.
	; The webhook secret is the DEVELOPMENT one of config/dev.conf.
	[http]
	listen = 127.0.0.1:$port
	path = /webhooks/vinr

	[webhook]
	scheme = vinr
	secret_file = config/dev-webhook-secret

	[storage]
	backend = postgres
	dsn = postgresql://vinr@127.0.0.1:$PGPORT/vinr
	instance = $name
	takeover = 5
	event_log = var/pg-$name/events.log

	[control]
	socket = var/pg-$name/control.sock

	[api]
	base = http://127.0.0.1:$SIMPORT
	timeout = 30
	unknown_after = 60

	[reconciler]
	interval = 2
	stale_after = 10
	max_backoff = 60
	CONF
done

if [ -x "$BIN/vinr-sim" ]; then
	# Its webhooks all go to instance a; the other one sees them through
	# the shared database.
	"$BIN/vinr-sim" --listen 127.0.0.1:$SIMPORT \
		--webhook-url http://127.0.0.1:$PORT_A/webhooks/vinr \
		--webhook-secret-file config/dev-webhook-secret \
		2>>var/pg-sim.log &
	pids="$pids $!"
fi
for name in a b; do
	VINR_API_KEY=${VINR_API_KEY:-sk_test_dev} \
	    "$BIN/vinr-webhookd" -c var/pg-$name/vinr.conf 2>>var/pg-$name/daemon.log &
	pids="$pids $!"
	eval "pid_$name=\$!"
done

for name in a b; do
	if [ $name = a ]; then port=$PORT_A; pid=$pid_a; else port=$PORT_B; pid=$pid_b; fi
	i=0
	until curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "run-pg: instance $name exited before it was ready; its log:" >&2
			tail -n 20 var/pg-$name/daemon.log >&2
			exit 1
		fi
		i=$((i + 1))
		if [ $i -gt 150 ]; then
			echo "run-pg: instance $name did not come up (var/pg-$name/daemon.log)" >&2
			exit 1
		fi
		sleep 0.1
	done
done

cat <<MSG

  Two vinr-webhookd instances share one PostgreSQL database:

    instance a   http://127.0.0.1:$PORT_A/webhooks/vinr   control socket var/pg-a/control.sock
    instance b   http://127.0.0.1:$PORT_B/webhooks/vinr   control socket var/pg-b/control.sock
    PostgreSQL   127.0.0.1:$PGPORT, database vinr, data in $PGDIR
    logs         var/pg-a/daemon.log, var/pg-b/daemon.log, $PGDIR/server.log

  Watch both event logs: each instance writes every outcome, whichever
  instance received it, with the same seq:

    tail -F var/pg-a/events.log var/pg-b/events.log

  Post a signed sample event to each instance (another terminal):

    VINR_URL=http://127.0.0.1:$PORT_A/webhooks/vinr scripts/send-sample.sh pending tpay_demo_1
    VINR_URL=http://127.0.0.1:$PORT_B/webhooks/vinr scripts/send-sample.sh completed tpay_demo_1

  Wait on one instance, answer through the other:

    $BIN/vinrctl -s var/pg-a/control.sock wait tpay_demo_2 --timeout 60 &
    VINR_URL=http://127.0.0.1:$PORT_B/webhooks/vinr scripts/send-sample.sh completed tpay_demo_2

  Compare:   $BIN/vinrctl -s var/pg-a/control.sock stats
             $BIN/vinrctl -s var/pg-b/control.sock stats
MSG
if [ -x "$BIN/vinr-sim" ]; then
cat <<MSG

  vinr-sim (VINR's cloud, on loopback) sends its webhooks to instance a.
  Take a payment through instance b; it answers once a has committed the
  outcome:

    $BIN/vinrctl -s var/pg-b/control.sock pay --terminal term_test_simulator \\
      --amount 2500 --currency USD --reference order_1
MSG
fi
cat <<MSG

  Kill one instance (kill -9 <pid>; a: $pid_a, b: $pid_b) and the other
  goes on, taking over the hook and the reconciler's rounds within
  [storage] takeover seconds.

  Ctrl-C stops everything (the cluster too; rm -rf $PGDIR starts afresh).

MSG
wait
