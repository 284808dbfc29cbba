"""vinr-sim end to end: its Cloud API, its test cards, and its signed
webhooks arriving at a real vinr-webhookd (docs/vinr-sim.md describes the API;
it follows VINR's Cloud API page, /work/shared/000_5a882a0308a04778.txt)."""
import os
import re
import subprocess
import time

import pytest

from conftest import (SECRET, SIM, SIM_KEY, STD_SECRET, Daemon, clean_env,
                      write_secret_file)

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
# The Cloud API page's three example objects, key for key and in order.
APPROVED_KEYS = ["id", "terminalId", "amount", "amountCaptured", "currency", "reference",
                 "status", "captureMethod", "responseMode", "entryMethod", "last4", "brand",
                 "authCode", "createdAt", "completedAt"]
DECLINED_KEYS = ["id", "terminalId", "amount", "currency", "reference", "status",
                 "responseMode", "declineCode", "createdAt", "failedAt"]
PENDING_KEYS = ["id", "terminalId", "amount", "currency", "reference", "status",
                "responseMode", "createdAt"]

# The page's test cards, as the page writes them: number -> declineCode
# (None: approved).
PAGE_CARDS = {
    "4242 4242 4242 4242": None,
    "4000 0000 0000 0002": "card_declined",
    "4000 0000 0000 9995": "insufficient_funds",
    "4000 0000 0000 0069": "expired_card",
    "4100 0000 0000 0019": "lost_or_stolen",
}
# Every card the sim knows: number -> (final status, declineCode, brand,
# cancellationReason).  The payment shows the brand and last4 only once
# approved, as in the page's examples.  The timeout card needs
# --timeout-after to be quick.
CARDS = {
    "4242424242424242": ("completed", None, "visa", None),
    "4000000000000002": ("failed", "card_declined", "visa", None),
    "4000000000009995": ("failed", "insufficient_funds", "visa", None),
    "4000000000000069": ("failed", "expired_card", "visa", None),
    "4100000000000019": ("failed", "lost_or_stolen", "visa", None),
    "5555555555554444": ("completed", None, "mastercard", None),
    "378282246310005": ("completed", None, "amex", None),
    "4000000000000127": ("failed", "incorrect_cvc", "visa", None),
    "4000000000000119": ("failed", "processing_error", "visa", None),
    "4000000000000408": ("failed", "communication_error", "visa", None),
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
    st, p = sim.create(responseMode="sync", reference="order_8821")
    assert st == 200
    # The page's approved example, key for key and in the same order.
    assert list(p) == APPROVED_KEYS
    assert p["id"].startswith("tpay_") and len(p["id"]) == 31
    assert p["status"] == "completed"
    assert (p["terminalId"], p["amount"], p["amountCaptured"], p["currency"]) == \
        ("term_test_simulator", 2500, 2500, "USD")
    assert (p["reference"], p["captureMethod"], p["responseMode"]) == \
        ("order_8821", "automatic", "sync")
    assert (p["entryMethod"], p["brand"], p["last4"]) == ("contactless", "visa", "4242")
    assert re.match(r"^[0-9A-Z]{6}$", p["authCode"])
    assert TS.match(p["createdAt"]) and TS.match(p["completedAt"])
    assert sim.get(p["id"]) == (200, p)

    lines = wait_daemon_status(d, p["id"], "completed")
    assert [l["status"] for l in lines] == ["pending", "processing", "completed"]
    last = lines[-1]
    assert (last["amount"], last["amountCaptured"], last["brand"], last["last4"],
            last["authCode"], last["reference"], last["source"]) == \
        (2500, 2500, "visa", "4242", p["authCode"], "order_8821", "webhook")
    assert last["occurredAt"] == p["completedAt"]
    evs = sim.wait_sent()
    assert [e["type"] for e in evs] == ["terminal_payment.created",
                                        "terminal_payment.processing",
                                        "terminal_payment.completed"]
    assert all(e["delivery"] == "delivered" and e["lastStatus"] == 200 for e in evs)
    assert [e["id"] for e in evs] == [l["eventId"] for l in lines]

    # The page's declined example.
    st, f = sim.create(responseMode="sync", testCard="4000 0000 0000 0002")
    assert st == 200 and list(f) == DECLINED_KEYS
    assert (f["status"], f["declineCode"], f["responseMode"]) == \
        ("failed", "card_declined", "sync")
    assert TS.match(f["failedAt"])


def test_async_answers_202_pending_then_goes_processing_final(make_daemon, make_sim):
    d = make_daemon()
    sim = make_sim(daemon=d)
    st, p = sim.create(delay=0.6)
    assert st == 202
    # The page's pending example, key for key.
    assert list(p) == PENDING_KEYS
    assert p["status"] == "pending" and p["responseMode"] == "async"
    seen = [p["status"]]
    deadline = time.time() + 5
    while seen[-1] != "completed" and time.time() < deadline:
        st, q = sim.get(p["id"])
        assert st == 200
        if q["status"] != seen[-1]:
            seen.append(q["status"])
            if q["status"] == "processing":
                assert list(q) == PENDING_KEYS
        time.sleep(0.02)
    assert seen == ["pending", "processing", "completed"]
    assert list(sim.get(p["id"])[1]) == APPROVED_KEYS
    lines = wait_daemon_status(d, p["id"], "completed")
    assert [l["status"] for l in lines] == ["pending", "processing", "completed"]
    assert [(x["status"], x["terminalId"]) for x in sim.payments()] == \
        [("completed", "term_test_simulator")]
    # Without a reference, the key stays, null.
    st, p = sim.create(delay=0, reference=None)
    assert st == 202 and p["reference"] is None and list(p) == PENDING_KEYS


def test_cancel_while_pending_but_not_once_processing(make_daemon, make_sim):
    d = make_daemon()
    sim = make_sim(daemon=d)
    st, p = sim.create(delay=10)
    assert st == 202
    st, c = sim.cancel(p["id"])
    assert st == 200
    assert c["status"] == "cancelled" and c["cancellationReason"] == "requested"
    assert TS.match(c["cancelledAt"])
    st, e = sim.cancel(p["id"])
    assert st == 409 and e["error"]["code"] == "payment_not_cancellable"
    wait_daemon_status(d, p["id"], "cancelled")

    # The timeout card keeps the payment processing (--timeout-after 60).
    st, p = sim.create(delay=0, testCard="4000000000003220")
    assert st == 202
    sim.wait_status(p["id"], "processing")
    st, e = sim.cancel(p["id"])
    assert st == 409 and e["error"]["code"] == "payment_not_cancellable"
    assert "processing" in e["error"]["message"]
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
    assert p["captureMethod"] == "manual" and p["authCode"] and p["last4"] == "4242"
    assert TS.match(p["authorizedAt"]) and "completedAt" not in p
    wait_daemon_status(d, p["id"], "authorized")
    # The default tolerance is 20 %: 4800 at most.
    st, e = sim.capture(p["id"], amount=4801)
    assert st == 400 and e["error"]["code"] == "invalid_request"
    assert "4800" in e["error"]["message"]
    st, e = sim.capture(p["id"], amount=0)
    assert st == 400
    st, c = sim.capture(p["id"], amount=4800)
    assert st == 200
    assert c["status"] == "completed" and c["amountCaptured"] == 4800
    assert TS.match(c["completedAt"]) and c["authorizedAt"] == p["authorizedAt"]
    st, e = sim.capture(p["id"])
    assert st == 409 and e["error"]["code"] == "payment_not_capturable"

    lines = wait_daemon_status(d, p["id"], "completed")
    assert [l["status"] for l in lines] == ["pending", "processing", "authorized", "completed"]
    assert lines[-1]["amountCaptured"] == 4800 and lines[-1]["previousStatus"] == "authorized"
    evs = [e for e in sim.wait_sent() if e["paymentId"] == p["id"]]
    assert evs[-1]["type"] == "terminal_payment.captured" and evs[-1]["status"] == "completed"

    # A lower amount is a partial capture; no amount captures the whole.
    for amount, captured in ((1500, 1500), (None, 2500)):
        st, q = sim.create(responseMode="sync", captureMethod="manual")
        st, c = sim.capture(q["id"], amount=amount)
        assert st == 200 and c["amountCaptured"] == captured

    # A declined manual payment is never authorized.
    st, f = sim.create(responseMode="sync", captureMethod="manual",
                       testCard="4000000000000002")
    assert st == 200 and f["status"] == "failed"
    st, e = sim.capture(f["id"])
    assert st == 409


def test_the_pages_tip_capture_and_a_tolerance_flag(make_daemon, make_sim):
    """The page's restaurant example: 2500 authorized at the table, 2875
    captured after the tip."""
    d = make_daemon()
    sim = make_sim(daemon=d)
    st, p = sim.create(responseMode="sync", reference="table_12", captureMethod="manual")
    assert st == 200 and p["status"] == "authorized" and p["amount"] == 2500
    st, c = sim.capture(p["id"], amount=2875)
    assert st == 200, c
    assert (c["status"], c["amount"], c["amountCaptured"]) == ("completed", 2500, 2875)
    last = wait_daemon_status(d, p["id"], "completed")[-1]
    assert last["amountCaptured"] == 2875

    # --capture-tolerance 10: 2750 at most.
    sim10 = make_sim(args=["--capture-tolerance", "10"])
    st, p = sim10.create(responseMode="sync", captureMethod="manual")
    st, e = sim10.capture(p["id"], amount=2875)
    assert st == 400 and "2750" in e["error"]["message"]
    assert sim10.get(p["id"])[1]["status"] == "authorized"
    st, c = sim10.capture(p["id"], amount=2750)
    assert st == 200 and c["amountCaptured"] == 2750
    # --capture-tolerance 0: never more than authorized.
    sim0 = make_sim(args=["--capture-tolerance", "0"])
    st, p = sim0.create(responseMode="sync", captureMethod="manual")
    assert sim0.capture(p["id"], amount=2501)[0] == 400
    assert sim0.capture(p["id"], amount=2500)[0] == 200


def test_terminal_errors_are_failed_payments(make_daemon, make_sim):
    """The page's error table: terminal_not_found, terminal_offline,
    terminal_busy and communication_error are decline codes of a failed
    payment, never HTTP errors."""
    d = make_daemon()
    sim = make_sim(daemon=d, args=["--terminal", "term_2"])
    # Unknown terminal (the page's own example id): sync and async.
    st, f = sim.create(responseMode="sync", terminalId="term_01HZ5QXYZ")
    assert st == 200 and list(f) == DECLINED_KEYS
    assert (f["status"], f["declineCode"], f["terminalId"]) == \
        ("failed", "terminal_not_found", "term_01HZ5QXYZ")
    st, p = sim.create(terminalId="term_01HZ5QXYZ")
    assert st == 202 and p["status"] == "pending"
    assert sim.wait_status(p["id"], "failed")["declineCode"] == "terminal_not_found"
    last = wait_daemon_status(d, p["id"], "failed")[-1]
    assert last["declineCode"] == "terminal_not_found"

    # Busy: another session is active; it goes on unharmed.
    st, first = sim.create(delay=10)
    assert st == 202
    st, f = sim.create(responseMode="sync")
    assert st == 200 and (f["status"], f["declineCode"]) == ("failed", "terminal_busy")
    assert sim.get(first["id"])[1]["status"] == "pending"
    st, t = sim.request("GET", "/_sim/terminals", key=None)[::2]
    assert st == 200 and t["terminals"] == [
        {"id": "term_test_simulator", "online": True, "activePayment": first["id"]},
        {"id": "term_2", "online": True, "activePayment": None}]

    # Offline (a sim-only control): the active session drops out with
    # communication_error, and new payments fail with terminal_offline.
    st, _, t = sim.request("POST", "/_sim/terminals/term_test_simulator", {"online": False},
                           key=None)
    assert st == 200 and t == {"id": "term_test_simulator", "online": False,
                               "activePayment": None}
    p = sim.get(first["id"])[1]
    assert (p["status"], p["declineCode"]) == ("failed", "communication_error")
    st, f = sim.create(responseMode="sync")
    assert st == 200 and (f["status"], f["declineCode"]) == ("failed", "terminal_offline")
    st, f = sim.create(responseMode="sync", terminalId="term_2")
    assert st == 200 and f["status"] == "completed"
    assert sim.request("POST", "/_sim/terminals/term_test_simulator", {"online": True},
                       key=None)[0] == 200
    assert sim.create(responseMode="sync")[1]["status"] == "completed"

    # Dropping out while processing: on purpose with the sim-only card...
    st, f = sim.create(responseMode="sync", testCard="4000 0000 0000 0408")
    assert (f["status"], f["declineCode"]) == ("failed", "communication_error")
    # ... or by taking the terminal offline mid-way.
    st, p = sim.create(delay=0, testCard="4000000000003220")
    sim.wait_status(p["id"], "processing")
    sim.request("POST", "/_sim/terminals/term_test_simulator", {"online": False}, key=None)
    p = sim.get(p["id"])[1]
    assert (p["status"], p["declineCode"]) == ("failed", "communication_error")
    for pid, code in ((first["id"], "communication_error"), (p["id"], "communication_error")):
        assert wait_daemon_status(d, pid, "failed")[-1]["declineCode"] == code

    for bad in ({"online": "no"}, {}, None):
        assert sim.request("POST", "/_sim/terminals/term_2", bad, key=None)[0] == 400
    assert sim.request("POST", "/_sim/terminals/term_x", {"online": False},
                       key=None)[0] == 404
    assert sim.request("GET", "/_sim/terminals/term_2", key=None)[0] == 405


def test_retrieve_is_rate_limited_per_key(make_sim):
    sim = make_sim(args=["--retrieve-limit", "5/1"])
    st, p = sim.create(responseMode="sync")
    path = "/v1/terminal/payments/" + p["id"]
    got = [sim.request("GET", path) for _ in range(8)]
    assert [g[0] for g in got[:5]] == [200] * 5
    assert 429 in [g[0] for g in got[5:]]
    st, h, e = next(g for g in got if g[0] == 429)
    assert e["error"]["code"] == "rate_limited" and h["retry-after"] == "1"
    # Another key has its own allowance; create is not limited.
    assert sim.request("GET", path, key="sk_test_other")[0] == 200
    assert sim.create(delay=0)[0] == 202
    time.sleep(1.0)
    assert sim.request("GET", path)[0] == 200
    s = sim.stats()
    assert s["retrievesLimited"] == sum(1 for g in got if g[0] == 429)
    assert s["retrieves"] == 8 + 1 + 1

    # Retry-After says when a call gets through again.
    slow = make_sim(args=["--retrieve-limit", "2/10"])
    st, p = slow.create(responseMode="sync")
    path = "/v1/terminal/payments/" + p["id"]
    assert [slow.request("GET", path)[0] for _ in range(2)] == [200, 200]
    st, h, _ = slow.request("GET", path)
    assert st == 429 and h["retry-after"] == "5"

    # "0" turns the limit off.
    off = make_sim(args=["--retrieve-limit", "0"])
    st, p = off.create(responseMode="sync")
    assert all(off.request("GET", "/v1/terminal/payments/" + p["id"])[0] == 200
               for _ in range(400))


def test_default_retrieve_limit_is_300_per_10_s(make_sim):
    """A reconciler at max_rps=2 (20 per 10 s) never meets it; a tight loop
    does."""
    sim = make_sim()
    st, p = sim.create(responseMode="sync")
    path = "/v1/terminal/payments/" + p["id"]
    codes = []
    while 429 not in codes and len(codes) < 2000:
        codes.append(sim.request("GET", path)[0])
    # The bucket refills at 30/s while the loop runs: a little over 300 pass.
    assert 429 in codes and codes.index(429) >= 300, len(codes)
    assert sim.stats()["retrievesLimited"] == 1


def test_every_test_card_gives_its_outcome(make_daemon, make_sim):
    d = make_daemon()
    sim = make_sim(daemon=d, args=["--timeout-after", "0.3"])
    listed = {c["number"]: c for c in sim.cards()}
    assert set(listed) == set(CARDS)
    assert {n for n, c in listed.items() if not c["simOnly"]} == \
        {n.replace(" ", "") for n in PAGE_CARDS}
    made = {}
    for number, (status, decline, brand, reason) in CARDS.items():
        st, p = sim.create(responseMode="sync", testCard=number)
        assert st == 200, (number, p)
        approved = status == "completed"
        assert (p["status"], p.get("declineCode"), p.get("brand"), p.get("last4"),
                p.get("cancellationReason")) == \
            (status, decline, brand if approved else None,
             number[-4:] if approved else None, reason), number
        assert ("authCode" in p) == approved
        assert (listed[number]["declineCode"], listed[number]["brand"]) == (decline, brand)
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


def test_the_pages_cards_with_or_without_spaces(make_sim):
    sim = make_sim()
    for number, decline in PAGE_CARDS.items():
        for form in (number, number.replace(" ", "")):
            st, p = sim.create(responseMode="sync", testCard=form)
            assert st == 200, (form, p)
            assert p["status"] == ("completed" if decline is None else "failed"), form
            assert p.get("declineCode") == decline, form
            assert list(p) == (APPROVED_KEYS if decline is None else DECLINED_KEYS)
    for bad in ("4242-4242-4242-4242", "4242 4242 4242 424", "4111 1111 1111 1111", ""):
        st, e = sim.create(testCard=bad)
        assert st == 400 and e["error"]["code"] == "invalid_request", bad


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
    assert sim.stats()["retrievesLimited"] == 0


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
    st, e = sim.create(terminalId="term\nx")
    assert st == 400 and "terminalId" in e["error"]["message"]
    st, e = sim.get("tpay_unknown")
    assert st == 404 and e["error"]["code"] == "not_found"
    assert sim.request("GET", "/v1/nope")[0] == 404
    st, h, _ = sim.request("DELETE", "/v1/terminal/payments/tpay_x")
    assert st == 405 and h["allow"] == "GET"
    st, p = sim.create(currency="eur", responseMode="sync")
    assert st == 200 and p["currency"] == "EUR" and p["reference"]
    assert sim.stats()["payments"]["total"] == 1
    # A live key is refused: the sim is a sandbox.
    assert sim.get(p["id"])[0] == 200
    st, _, e = sim.request("GET", "/v1/terminal/payments/" + p["id"], key="sk_live_abc")
    assert st == 401


def test_exact_api_key_and_extra_terminals(make_sim):
    sim = make_sim(api_key="sk_test_exact", args=["--terminal", "term_2"])
    assert sim.create(key=SIM_KEY)[0] == 401
    st, first = sim.create(key="sk_test_exact", delay=5)
    assert st == 202
    st, busy = sim.create(key="sk_test_exact", delay=5)
    assert st == 202
    deadline = time.time() + 5
    while time.time() < deadline:
        st, _, p = sim.request("GET", "/v1/terminal/payments/" + busy["id"],
                               key="sk_test_exact")
        if p["status"] != "pending":
            break
        time.sleep(0.02)
    assert (p["status"], p["declineCode"]) == ("failed", "terminal_busy")
    st, p = sim.create(key="sk_test_exact", terminalId="term_2")
    assert st == 202 and p["terminalId"] == "term_2"


def test_sigterm_stops_cleanly_and_bad_usage_is_64(make_sim):
    sim = make_sim()
    st, p = sim.create(delay=5)
    assert st == 202
    assert sim.stop() == 0
    assert "stopping" in sim.log()
    for args in (["--bogus"], ["--drop-rate", "2"], ["--scheme", "md5"], ["extra"],
                 ["--webhook-url", "http://127.0.0.1:1/x"], ["--listen", "nope"],
                 ["--webhook-url", "ftp://x", "--webhook-secret-file", sim.secret_file],
                 ["--scheme", "standard", "--webhook-secret-file", sim.secret_file],
                 ["--capture-tolerance", "101"], ["--capture-tolerance", "x"],
                 ["--retrieve-limit", "5"], ["--retrieve-limit", "5/0"],
                 ["--retrieve-limit", "-1/1"], ["--retrieve-limit", "5/1x"]):
        r = subprocess.run([SIM, *args], env=clean_env(), capture_output=True, timeout=10)
        assert r.returncode == 64, (args, r.stderr)
    r = subprocess.run([SIM, "-h"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "--webhook-url" in r.stdout
    assert "--capture-tolerance" in r.stdout and "--retrieve-limit" in r.stdout
    # The secret may come from the environment instead.
    r = subprocess.run([SIM, "--webhook-url", "http://127.0.0.1:1/x", "--listen", "nope"],
                       env=clean_env({"VINR_WEBHOOK_SECRET": SECRET}), capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 64 and "--listen" in r.stderr


# ---------------------------------------------------------------------------
# Secrets reach the sim from a file or the environment, never its command
# line (SPEC §7).

def test_old_secret_flags_are_refused_and_say_what_to_use(tmp_path):
    for args, use in ((["--webhook-secret", "whsec_cmdline_0123"], "--webhook-secret-file"),
                      (["--webhook-secret=whsec_cmdline_0123"], "--webhook-secret-file"),
                      (["--api-key", "sk_test_cmdline_0123"], "--api-key-file"),
                      (["--api-key=sk_test_cmdline_0123"], "--api-key-file")):
        r = subprocess.run([SIM, "--listen", "127.0.0.1:1", *args], env=clean_env(),
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 64, (args, r.stderr)
        assert "refused" in r.stderr and use in r.stderr and "$VINR_" in r.stderr, r.stderr
        assert "cmdline_0123" not in r.stderr, r.stderr


def test_unusable_secret_files_exit_64_without_their_content(tmp_path):
    empty = write_secret_file(str(tmp_path / "empty"), ["# only a comment", ""])
    two = write_secret_file(str(tmp_path / "two"), ["sk_test_one_0123", "sk_test_two_0123"])
    bad = write_secret_file(str(tmp_path / "bad"), ["whsec_%%%_0123"])
    for args, want in ((["--webhook-secret-file", str(tmp_path / "missing")],
                        "No such file"),
                       (["--webhook-secret-file", empty], "holds no secret"),
                       (["--api-key-file", empty], "holds no key"),
                       (["--api-key-file", str(tmp_path)], "directory"),
                       (["--api-key-file", two], "2 keys"),
                       (["--scheme", "standard", "--webhook-secret-file", bad],
                        "not usable")):
        r = subprocess.run([SIM, *args], env=clean_env(), capture_output=True, text=True,
                           timeout=10)
        assert r.returncode == 64 and want in r.stderr, (args, r.stderr)
        assert "_0123" not in r.stderr, r.stderr


def test_api_key_from_the_environment_and_the_file_wins(make_sim):
    sim = make_sim(env={"VINR_SIM_API_KEY": " sk_test_from_env \n"})
    assert sim.create(key=SIM_KEY)[0] == 401
    assert sim.create(key="sk_test_from_env")[0] == 202
    assert "one fixed key" in sim.log()
    both = make_sim(name="sim2", api_key="sk_test_from_file",
                    env={"VINR_SIM_API_KEY": "sk_test_from_env"})
    assert both.create(key="sk_test_from_env")[0] == 401
    assert both.create(key="sk_test_from_file")[0] == 202


def test_webhook_secret_from_the_environment(make_daemon, make_sim):
    d = make_daemon()
    sim = make_sim(daemon=d, secrets=[], env={"VINR_WEBHOOK_SECRET": SECRET})
    assert "--webhook-secret-file" not in sim.argv
    st, p = sim.create(responseMode="sync")
    assert st == 200
    evs = sim.wait_sent()
    assert evs and all(e["delivery"] == "delivered" for e in evs), evs
    wait_daemon_status(d, p["id"], "completed")


def test_running_sim_never_shows_its_secrets(make_daemon, make_sim):
    """ps and /proc/PID/cmdline of a running sim hold neither its webhook
    secrets nor its API key; neither does its log."""
    d = make_daemon()
    rotated = "whsec_rotated_secret_never_on_argv_0123"
    key = "sk_test_key_never_on_argv_0123"
    sim = make_sim(daemon=d, secrets=[rotated, SECRET], api_key=key, args=["-v"])
    assert sim.create(key=key, responseMode="sync")[0] == 200
    assert oct(os.stat(sim.secret_file).st_mode & 0o777) == "0o600"
    with open("/proc/%d/cmdline" % sim.proc.pid, "rb") as f:
        cmdline = f.read().decode()
    assert "--webhook-secret-file" in cmdline and "--api-key-file" in cmdline
    ps = subprocess.run(["ps", "-ww", "-o", "args=", "-p", str(sim.proc.pid)],
                        capture_output=True, text=True, timeout=10).stdout
    assert "vinr-sim" in ps
    sim.wait_sent()
    for secret in (rotated, SECRET, key):
        assert secret not in cmdline and secret not in ps
        assert secret not in sim.log()
    # The same with the environment as the source.
    envsim = make_sim(name="sim2", daemon=d, secrets=[],
                      env={"VINR_WEBHOOK_SECRET": SECRET, "VINR_SIM_API_KEY": key})
    with open("/proc/%d/cmdline" % envsim.proc.pid, "rb") as f:
        cmdline = f.read().decode()
    assert SECRET not in cmdline and key not in cmdline
