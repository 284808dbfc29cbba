#!/bin/sh
# `make run`: the daemon (and vinr-sim, when built) on config/dev.conf, state
# under ./var/, loopback only.  Ctrl-C stops both.
set -eu
cd "$(dirname "$0")/.."
mkdir -p var
BIN=${BIN:-build}
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if [ -x "$BIN/vinr-sim" ]; then
	"$BIN/vinr-sim" --listen 127.0.0.1:8788 \
		--webhook-url http://127.0.0.1:8787/webhooks/vinr \
		--webhook-secret "$(grep -v '^#' config/dev-webhook-secret | head -n 1)" \
		2>>var/sim.log &
	pids="$pids $!"
fi
VINR_API_KEY=${VINR_API_KEY:-sk_test_dev} "$BIN/vinr-webhookd" -c config/dev.conf &
pids="$pids $!"

i=0
until curl -fsS http://127.0.0.1:8787/healthz >/dev/null 2>&1; do
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
