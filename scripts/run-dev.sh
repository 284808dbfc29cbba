#!/bin/sh
# `make run`: the daemon (and vinr-sim, when built) on config/dev.conf, state
# under ./var/, loopback only.  Ctrl-C stops both.
set -eu
cd "$(dirname "$0")/.."
mkdir -p var
BIN=${BIN:-build}
PORT=8787
pids=""

# A second `make run` (or anything else on the port) would make our daemon
# fail to bind while /healthz below still answered from the other one, so
# look first: curl exits 7 only when nothing accepts the connection.
rc=0
curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/healthz" || rc=$?
if [ "$rc" -ne 7 ]; then
	echo "run-dev: port $PORT on 127.0.0.1 is taken (another \`make run\`?); stop it first" >&2
	exit 1
fi
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if [ -x "$BIN/vinr-sim" ]; then
	"$BIN/vinr-sim" --listen 127.0.0.1:8788 \
		--webhook-url http://127.0.0.1:8787/webhooks/vinr \
		--webhook-secret-file config/dev-webhook-secret \
		2>>var/sim.log &
	pids="$pids $!"
fi
VINR_API_KEY=${VINR_API_KEY:-sk_test_dev} "$BIN/vinr-webhookd" -c config/dev.conf &
daemon=$!
pids="$pids $daemon"

i=0
until curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; do
	# Our own daemon must be the one that answers: if it died (a port taken
	# since the check above, a bad config), say so and fail.
	if ! kill -0 "$daemon" 2>/dev/null; then
		wait "$daemon" || rc=$?
		echo "run-dev: vinr-webhookd exited (status $rc) before it was ready" >&2
		exit 1
	fi
	i=$((i + 1))
	if [ $i -gt 100 ]; then echo "vinr-webhookd did not come up" >&2; exit 1; fi
	sleep 0.1
done

cat <<MSG

  vinr-webhookd is running on http://127.0.0.1:8787/webhooks/vinr
  state in ./var/ (vinr.db, events.log), control socket var/control.sock

  In another terminal, post a signed sample event:

    scripts/send-sample.sh completed

  and watch the outcome land:

    tail -F var/events.log
MSG
if [ -x "$BIN/vinr-sim" ]; then
cat <<MSG

  vinr-sim (VINR's cloud, on loopback) is feeding it.  Take a payment
  through the daemon, which holds the sandbox API key, and get its outcome:

    $BIN/vinrctl -s var/control.sock pay --terminal term_test_simulator \\
      --amount 2500 --currency USD --reference order_1

  a decline:   add --test-card "4000 0000 0000 0002" (and a new --reference)
  a tip:       pay ... --manual, then $BIN/vinrctl -s var/control.sock capture ID --amount 2875
  watch outcomes flow:   $BIN/vinrctl -s var/control.sock tail
MSG
fi
cat <<MSG

  Ctrl-C stops everything.

MSG
wait
