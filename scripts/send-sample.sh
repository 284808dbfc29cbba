#!/bin/sh
# Posts a correctly signed sample VINR event to the development daemon.
#   scripts/send-sample.sh [STATUS [PAYMENT_ID]]
# STATUS: pending processing authorized completed failed cancelled
# (default completed).  Uses the DEVELOPMENT secret of config/dev.conf.
set -eu
cd "$(dirname "$0")/.."

status=${1:-completed}
payment=${2:-tpay_demo_$(date +%s)}
url=${VINR_URL:-http://127.0.0.1:8787/webhooks/vinr}
secret=$(grep -v '^#' config/dev-webhook-secret | head -n 1)
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
evt=evt_demo_$(date +%s%N)

body=$(printf '{"id":"%s","object":"event","type":"terminal_payment.%s","createdAt":"%s","livemode":false,"data":{"object":{"id":"%s","status":"%s","terminalId":"term_test_simulator","amount":2500,"currency":"USD","reference":"order_demo","entryMethod":"contactless","brand":"visa","last4":"4242"}}}' \
	"$evt" "$status" "$now" "$payment" "$status")
t=$(date +%s)
sig=$(printf '%s.%s' "$t" "$body" | openssl dgst -sha256 -hmac "$secret" | sed 's/^.* //')

curl -sS -X POST "$url" -H 'Content-Type: application/json' \
	-H "Vinr-Signature: t=$t,v1=$sig" --data-binary "$body"
echo
