"""vinr-sim end to end: its Cloud API, its test cards, and its signed
webhooks arriving at a real vinr-webhookd (docs-sim.md describes the API)."""
import re
import subprocess
import time

import pytest

from conftest import SECRET, SIM, SIM_KEY, STD_SECRET, Daemon, clean_env

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
PAYMENT_KEYS = {"id", "object", "terminalId", "amount", "amountCaptured", "currency",
                "reference", "status", "captureMethod", "responseMode", "entryMethod",
                "last4", "brand", "authCode", "declineCode", "cancellationReason",
                "livemode", "createdAt", "authorizedAt", "completedAt", "failedAt",
                "cancelledAt"}

# The documented test cards: number -> (final status, declineCode, brand,
# cancellationReason).  The timeout card needs --timeout-after to be quick.
CARDS = {
    "4242424242424242": ("completed", None, "visa", None),
    "5555555555554444": ("completed", None, "mastercard", None),
    "378282246310005": ("completed", None, "amex", None),
    "4000000000000002": ("failed", "card_declined", "visa", None),
    "4000000000009995": ("failed", "insufficient_funds", "visa", None),
    "4000000000000069": ("failed", "expired_card", "visa", None),
    "4000000000000127": ("failed", "incorrect_cvc", "visa", None),
    "4000000000000119": ("failed", "processing_error", "visa", None),
    "4000000000000259": ("cancelled", None, "visa", "cardholder"),
    "4000000000003220": ("failed", "timeout", "visa", None),
}


def daemon_lines(d, pid):
    return [line for line in d.event_log_lines() if line["paymentId"] == pid]


def wait_daemon_status(d, pid, status, timeout=10):
    """Waits until the daemon's event log shows pid reaching status."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        lines = daemon_lines(d, pid)
        if lines and lines[-1]["status"] == status:
            return lines
        time.sleep(0.03)
    raise AssertionError("daemon never logged %s %s: %r\n%s" % (pid, status,
                         daemon_lines(d, pid), d.log()))


def test_sync_returns_the_final_object(make_daemon, make_sim):
    d = make_daemon()
    sim = make_sim(daemon=d)
    st, p = sim.create(responseMode="sync", reference="order_1")
    assert st == 200
    assert set(p) == PAYMENT_KEYS
    assert p["id"].startswith("tpay_") and len(p["id"]) == 31
    assert p["status"] == "completed"
    assert (p["terminalId"], p["amount"], p["amountCaptured"], p["currency"]) == \
        ("term_test_simulator", 2500, 2500, "USD")
    assert (p["reference"], p["captureMethod"], p["responseMode"]) == \
        ("order_1", "automatic", "sync")
    assert (p["entryMethod"], p["brand"], p["last4"]) == ("contactless", "visa", "4242")
    assert re.match(r"^[0-9A-Z]{6}$", p["authCode"]) and p["declineCode"] is None
    for k in ("createdAt", "authorizedAt", "completedAt"):
        assert TS.match(p[k]), (k, p[k])
    assert p["failedAt"] is None and p["cancelledAt"] is None and p["livemode"] is False
    assert sim.get(p["id"]) == (200, p)

    lines = wait_daemon_status(d, p["id"], "completed")
    assert [l["status"] for l in lines] == ["pending", "processing", "completed"]
    last = lines[-1]
    assert (last["amount"], last["amountCaptured"], last["brand"], last["last4"],
            last["authCode"], last["reference"], last["source"]) == \
        (2500, 2500, "visa", "4242", p["authCode"], "order_1", "webhook")
    assert last["occurredAt"] == p["completedAt"]
    evs = sim.wait_sent()
    assert [e["type"] for e in evs] == ["terminal_payment.created",
                                        "terminal_payment.processing",
                                        "terminal_payment.completed"]
    assert all(e["delivery"] == "delivered" and e["lastStatus"] == 200 for e in evs)
    assert [e["id"] for e in evs] == [l["eventId"] for l in lines]


def test_async_goes_pending_processing_final(make_daemon, make_sim):
    d = make_daemon()
    sim = make_sim(daemon=d)
    st, p = sim.create(delay=0.6)
    assert st == 201
    assert p["status"] == "pending" and p["responseMode"] == "async"
    assert p["entryMethod"] is None and p["last4"] is None and p["brand"] is None
    seen = [p["status"]]
    deadline = time.time() + 5
    while seen[-1] != "completed" and time.time() < deadline:
        st, q = sim.get(p["id"])
        assert st == 200
        if q["status"] != seen[-1]:
            seen.append(q["status"])
        time.sleep(0.02)
    assert seen == ["pending", "processing", "completed"]
    lines = wait_daemon_status(d, p["id"], "completed")
    assert [l["status"] for l in lines] == ["pending", "processing", "completed"]
    assert [(x["status"], x["terminalId"]) for x in sim.payments()] == \
        [("completed", "term_test_simulator")]


def test_cancel_while_pending_but_not_once_processing(make_daemon, make_sim):
    d = make_daemon()
    sim = make_sim(daemon=d)
    st, p = sim.create(delay=10)
    assert st == 201
    st, c = sim.cancel(p["id"])
    assert st == 200
    assert c["status"] == "cancelled" and c["cancellationReason"] == "requested"
    assert TS.match(c["cancelledAt"])
    st, e = sim.cancel(p["id"])
    assert st == 409 and e["error"]["code"] == "payment_not_cancellable"
    wait_daemon_status(d, p["id"], "cancelled")

    # The timeout card keeps the payment processing (--timeout-after 60).
    st, p = sim.create(delay=0, testCard="4000000000003220")
    assert st == 201
    sim.wait_status(p["id"], "processing")
    st, e = sim.cancel(p["id"])
    assert st == 409 and e["error"]["code"] == "payment_not_cancellable"
    assert "processing" in e["error"]["message"]
    # ... and the terminal stays busy meanwhile.
    st, e = sim.create(delay=0)
    assert st == 409 and e["error"]["code"] == "terminal_busy"
    assert sim.get(p["id"])[1]["status"] == "processing"
    st, e = sim.cancel("tpay_nope")
    assert st == 404 and e["error"]["code"] == "not_found"


def test_capture_only_from_authorized(make_daemon, make_sim):
    d = make_daemon()
    sim = make_sim(daemon=d)
    st, auto = sim.create(responseMode="sync")
    assert st == 200 and auto["status"] == "completed"
    st, e = sim.capture(auto["id"])
    assert st == 409 and e["error"]["code"] == "payment_not_capturable"

    st, p = sim.create(responseMode="sync", captureMethod="manual", amount=4000)
    assert st == 200
    assert p["status"] == "authorized" and p["amountCaptured"] == 0
    assert TS.match(p["authorizedAt"]) and p["completedAt"] is None and p["authCode"]
    wait_daemon_status(d, p["id"], "authorized")
    st, e = sim.capture(p["id"], amount=4001)
    assert st == 400 and e["error"]["code"] == "invalid_request"
    st, e = sim.capture(p["id"], amount=0)
    assert st == 400
    st, c = sim.capture(p["id"], amount=1500)
    assert st == 200
    assert c["status"] == "completed" and c["amountCaptured"] == 1500
    assert TS.match(c["completedAt"]) and c["authorizedAt"] == p["authorizedAt"]
    st, e = sim.capture(p["id"])
    assert st == 409 and e["error"]["code"] == "payment_not_capturable"

    lines = wait_daemon_status(d, p["id"], "completed")
    assert [l["status"] for l in lines] == ["pending", "processing", "authorized", "completed"]
    assert lines[-1]["amountCaptured"] == 1500 and lines[-1]["previousStatus"] == "authorized"
    evs = [e for e in sim.wait_sent() if e["paymentId"] == p["id"]]
    assert evs[-1]["type"] == "terminal_payment.captured" and evs[-1]["status"] == "completed"

    # A declined manual payment is never authorized.
    st, f = sim.create(responseMode="sync", captureMethod="manual",
                       testCard="4000000000000002")
    assert st == 200 and f["status"] == "failed"
    st, e = sim.capture(f["id"])
    assert st == 409


def test_every_test_card_gives_its_outcome(make_daemon, make_sim):
    d = make_daemon()
    sim = make_sim(daemon=d, args=["--timeout-after", "0.3"])
    listed = {c["number"]: c for c in sim.cards()}
    assert set(listed) == set(CARDS)
    made = {}
    for number, (status, decline, brand, reason) in CARDS.items():
        st, p = sim.create(responseMode="sync", testCard=number)
        assert st == 200, (number, p)
        assert (p["status"], p["declineCode"], p["brand"], p["last4"],
                p["cancellationReason"]) == (status, decline, brand, number[-4:], reason), number
        assert (p["authCode"] is not None) == (status == "completed")
        assert listed[number]["declineCode"] == decline
        made[p["id"]] = (status, decline)
    sim.wait_sent()
    for pid, (status, decline) in made.items():
        last = wait_daemon_status(d, pid, status)[-1]
        assert last["declineCode"] == decline
        assert last["type"] == "payment." + status
    final = {x["id"]: x["status"] for x in sim.payments()}
    assert final == {pid: s for pid, (s, _) in made.items()}
    rows = dict(d.query("SELECT id, status FROM payments"))
    assert rows == final


@pytest.mark.parametrize("scheme", ["vinr", "standard"])
def test_webhooks_verify_in_both_schemes(make_daemon, make_sim, scheme):
    secret = STD_SECRET if scheme == "standard" else SECRET
    old = "whsec_" + "b2xkLXJvdGF0ZWQtc2VjcmV0LTAxMjM0NTY3ODk="
    d = make_daemon(scheme=scheme)
    # Two secrets, as during a rotation: every delivery carries two v1
    # signatures and the daemon knows only one of them.
    sim = make_sim(daemon=d, secrets=[old, secret])
    st, p = sim.create(responseMode="sync")
    assert st == 200
    evs = sim.wait_sent()
    assert len(evs) == 3
    assert all(e["delivery"] == "delivered" for e in evs), evs
    wait_daemon_status(d, p["id"], "completed")
    assert d.query("SELECT count(*) FROM events")[0][0] == 3
    assert "invalid_signature" not in d.log()


def test_wrong_secret_is_rejected_and_retried(make_daemon, make_sim):
    d = make_daemon()
    sim = make_sim(daemon=d, secrets=["whsec_not_the_daemons"], args=["--max-retries", "1"])
    st, p = sim.create(responseMode="sync")
    assert st == 200
    evs = sim.wait_sent(timeout=10)
    assert all(e["delivery"] == "failed" and e["lastStatus"] == 401 and
               e["attempts"] == 2 for e in evs), evs
    s = sim.stats()
    assert (s["webhooksFailed"], s["webhooksRetried"], s["webhooksSent"]) == (3, 3, 0)
    assert d.query("SELECT count(*) FROM events")[0][0] == 0


def test_retry_until_the_daemon_is_up(tmp_path, make_sim):
    d = Daemon(tmp_path / "d")
    sim = make_sim(daemon=d)          # nothing listens on d.port yet
    try:
        st, p = sim.create(responseMode="sync")
        assert st == 200
        time.sleep(0.3)
        assert sim.stats()["webhooksQueued"] == 3
        d.start()
        wait_daemon_status(d, p["id"], "completed", timeout=15)
        evs = sim.wait_sent()
        assert all(e["delivery"] == "delivered" and e["attempts"] >= 2 for e in evs)
        assert sim.stats()["webhooksRetried"] >= 3
    finally:
        d.kill()


def test_drop_rate_1_sends_nothing(make_daemon, make_sim):
    d = make_daemon()
    sim = make_sim(daemon=d, args=["--drop-rate", "1"])
    for _ in range(2):
        assert sim.create(responseMode="sync")[0] == 200
    evs = sim.wait_sent()
    assert len(evs) == 6 and all(e["delivery"] == "dropped" for e in evs)
    s = sim.stats()
    assert (s["webhookEvents"], s["webhooksDropped"], s["webhookAttempts"]) == (6, 6, 0)
    time.sleep(0.3)
    assert d.query("SELECT count(*) FROM events")[0][0] == 0
    assert d.event_log_lines() == []


def test_per_payment_drop(make_daemon, make_sim):
    d = make_daemon()
    sim = make_sim(daemon=d)
    st, dropped = sim.create(responseMode="sync", simulate={"dropWebhooks": True})
    assert st == 200
    st, kept = sim.create(responseMode="sync")
    assert st == 200
    wait_daemon_status(d, kept["id"], "completed")
    sim.wait_sent()
    assert daemon_lines(d, dropped["id"]) == []
    assert sim.stats()["webhooksDropped"] == 3


def test_duplicate_rate_1_daemon_dedupes(make_daemon, make_sim):
    d = make_daemon()
    sim = make_sim(daemon=d, args=["--duplicate-rate", "1"])
    st, p = sim.create(responseMode="sync")
    assert st == 200
    evs = sim.wait_sent()
    assert len(evs) == 3
    assert all(e["copies"] == 2 and e["delivered"] == 2 for e in evs), evs
    s = sim.stats()
    assert (s["webhookEvents"], s["webhooksDuplicated"], s["webhooksSent"]) == (3, 3, 6)
    # The second copy of each event came back as a duplicate...
    assert all('"duplicate":true' in e["lastResponse"] for e in evs), evs
    # ... and the daemon keeps one row per event id, one transition each.
    rows = d.query("SELECT id FROM events ORDER BY id")
    assert sorted(r[0] for r in rows) == sorted(e["id"] for e in evs)
    lines = wait_daemon_status(d, p["id"], "completed")
    assert len(lines) == 3


def test_reorder_still_ends_in_the_same_final_status(make_daemon, make_sim):
    d = make_daemon()
    sim = make_sim(daemon=d, args=["--reorder", "--reorder-window", "400", "--seed", "7",
                                   "--duplicate-rate", "0.3"])
    made = []
    for card in ("4242424242424242", "4000000000000002", "4000000000000259",
                 "5555555555554444", "4000000000009995", "4242424242424242"):
        st, p = sim.create(responseMode="sync", testCard=card)
        assert st == 200
        made.append(p["id"])
    evs = sim.wait_sent()
    assert all(e["delivery"] == "delivered" for e in evs)
    final = {x["id"]: x["status"] for x in sim.payments()}
    assert dict(d.query("SELECT id, status FROM payments")) == final
    # Some later status overtook an earlier one and was recorded as stale.
    results = [r[0] for r in d.query("SELECT result FROM events")]
    assert results.count("transition") + results.count("stale") == len(evs)
    assert "stale" in results


def test_retrieve_faults_and_stats(make_sim):
    sim = make_sim()
    st, p = sim.create(responseMode="sync")
    assert st == 200
    path = "/v1/terminal/payments/" + p["id"]
    st, data = sim.set_faults({"retrieve": {"status": 429, "retryAfter": 2, "count": 3}})
    assert st == 200 and data["faults"]["retrieve"]["count"] == 3
    for _ in range(3):
        st, h, e = sim.request("GET", path)
        assert st == 429 and h["retry-after"] == "2"
        assert e["error"]["code"] == "rate_limited"
    assert sim.request("GET", path)[0] == 200
    for status, code in ((500, "internal_error"), (401, "unauthorized"), (404, "not_found"),
                         (503, "service_unavailable")):
        assert sim.set_faults({"retrieve": {"status": status, "count": 2}})[0] == 200
        for _ in range(2):
            st, h, e = sim.request("GET", path)
            assert (st, e["error"]["code"]) == (status, code)
            assert "retry-after" not in h
        assert sim.request("GET", path)[0] == 200
    # An HTTP-date Retry-After, and a fault that lasts until cleared.
    sim.set_faults({"retrieve": {"status": 429, "retryAfter": "Wed, 21 Oct 2015 07:28:00 GMT",
                                 "count": -1}})
    for _ in range(3):
        st, h, _ = sim.request("GET", path)
        assert st == 429 and h["retry-after"] == "Wed, 21 Oct 2015 07:28:00 GMT"
    st, _, data = sim.request("DELETE", "/_sim/faults", key=None)
    assert st == 200 and data == {"faults": {}}
    assert sim.request("GET", path)[0] == 200
    # A slow but normal answer.
    sim.set_faults({"retrieve": {"delayMs": 300}})
    t0 = time.time()
    assert sim.request("GET", path)[0] == 200
    assert time.time() - t0 >= 0.3
    for bad in ({"retrieve": {"status": 200}}, {"retrieve": {}}, {"bogus": None},
                {"retrieve": {"status": 500, "count": "x"}}, [1]):
        assert sim.set_faults(bad)[0] == 400, bad

    s = sim.stats()
    assert s["retrieves"] == 3 + 1 + 4 * 3 + 3 + 1 + 1
    assert s["retrievesFaulted"] == 3 + 4 * 2 + 3
    assert sum(s["retrievesPerSecond"].values()) == s["retrieves"]
    assert all(k.isdigit() for k in s["retrievesPerSecond"])
    assert s["retrievesByPayment"] == {p["id"]: s["retrieves"]}
    assert s["payments"]["total"] == 1 and s["payments"]["completed"] == 1
    # Faults on the other operations too.
    sim.set_faults({"create": {"status": 503}})
    assert sim.create()[0] == 503
    assert sim.create(responseMode="sync")[0] == 200


def test_auth_and_validation(make_sim):
    sim = make_sim()
    for key in (None, "sk_live_abc", "sk_test_", "nope"):
        st, e = sim.create(key=key)
        assert st == 401 and e["error"]["code"] == "unauthorized", key
    st, h, _ = sim.request("GET", "/v1/terminal/payments/tpay_x", key=None)
    assert st == 401 and h["www-authenticate"].startswith("Bearer")
    bad = [{"amount": 0}, {"amount": 12.5}, {"amount": "2500"}, {"amount": None},
           {"currency": "XYZ"}, {"currency": 840}, {"testCard": "4111111111111112"},
           {"captureMethod": "later"}, {"responseMode": "push"}, {"terminalId": 7},
           {"reference": 5}, {"simulate": {"dropWebhooks": "yes"}}]
    for fields in bad:
        st, e = sim.create(**fields)
        assert st == 400 and e["error"]["code"] == "invalid_request", fields
        assert e["error"]["message"], fields
    for delay in ("-1", "abc", "601"):
        st, e = sim.create(delay=delay)
        assert st == 400 and "simulateDelay" in e["error"]["message"]
    st, _, e = sim.request("POST", "/v1/terminal/payments", b"{not json")
    assert st == 400 and e["error"]["code"] == "invalid_request"
    st, e = sim.create(terminalId="term_nope")
    assert st == 404 and e["error"]["code"] == "terminal_not_found"
    st, e = sim.get("tpay_unknown")
    assert st == 404 and e["error"]["code"] == "not_found"
    assert sim.request("GET", "/v1/nope")[0] == 404
    st, h, _ = sim.request("DELETE", "/v1/terminal/payments/tpay_x")
    assert st == 405 and h["allow"] == "GET"
    st, p = sim.create(currency="eur", responseMode="sync")
    assert st == 200 and p["currency"] == "EUR" and p["reference"]
    assert sim.stats()["payments"]["total"] == 1


def test_exact_api_key_and_extra_terminals(make_sim):
    sim = make_sim(args=["--api-key", "sk_test_exact", "--terminal", "term_2"])
    assert sim.create(key=SIM_KEY)[0] == 401
    assert sim.create(key="sk_test_exact", delay=5)[0] == 201
    assert sim.create(key="sk_test_exact", delay=5)[0] == 409
    st, p = sim.create(key="sk_test_exact", terminalId="term_2")
    assert st == 201 and p["terminalId"] == "term_2"


def test_sigterm_stops_cleanly_and_bad_usage_is_64(make_sim):
    sim = make_sim()
    st, p = sim.create(delay=5)
    assert st == 201
    assert sim.stop() == 0
    assert "stopping" in sim.log()
    for args in (["--bogus"], ["--drop-rate", "2"], ["--scheme", "md5"], ["extra"],
                 ["--webhook-url", "http://127.0.0.1:1/x"], ["--listen", "nope"],
                 ["--webhook-url", "ftp://x", "--webhook-secret", "s"],
                 ["--scheme", "standard", "--webhook-secret", "whsec_%%%"]):
        r = subprocess.run([SIM, *args], env=clean_env(), capture_output=True, timeout=10)
        assert r.returncode == 64, (args, r.stderr)
    r = subprocess.run([SIM, "-h"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "--webhook-url" in r.stdout
    # The secret may come from the environment instead.
    r = subprocess.run([SIM, "--webhook-url", "http://127.0.0.1:1/x", "--listen", "nope"],
                       env=clean_env({"VINR_WEBHOOK_SECRET": SECRET}), capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 64 and "--listen" in r.stderr
