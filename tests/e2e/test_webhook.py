"""SPEC §1.4 against the real binary over real HTTP, plus §2 outcomes in the
event log, and the signals of §6 that concern ingest.

Every refused delivery is checked for its status, its exact JSON body, its
Content-Type, and for leaving the database (events, payments, outcomes) and
the event log exactly as they were.
"""
import http.client
import json
import os
import re
import signal
import socket
import sqlite3
import threading
import time
import uuid

import pytest

from conftest import (SECRET, make_event, raw_http, sign_standard,
                      sign_vinr)

# Each test that starts a daemon runs on SQLite and on PostgreSQL (SPEC §8;
# conftest.py's backend fixture).
BACKENDS = ("sqlite", "postgres")

MAX_BODY = 1024
PATH = "/webhooks/vinr"
OUTCOME_KEYS = {
    "seq", "type", "paymentId", "terminalId", "reference", "status", "previousStatus",
    "amount", "amountCaptured", "currency", "captureMethod", "entryMethod", "brand",
    "last4", "authCode", "declineCode", "eventId", "source", "livemode", "occurredAt",
    "recordedAt",
}
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def body_of(ev):
    return json.dumps(ev).encode()


@pytest.fixture
def d(make_daemon):
    """A daemon with a small max_body that already holds one outcome, so that
    "unchanged" means something."""
    dm = make_daemon(conf={"http": {"max_body": str(MAX_BODY)}})
    st, resp = dm.post_event(make_event("completed", amount=100, currency="EUR"))
    assert st == 200 and resp["duplicate"] is False
    dm.wait_event_log(1)
    return dm


def assert_untouched(dm, before, log_before):
    assert dm.snapshot() == before
    assert dm.event_log_bytes() == log_before


def settled_state(dm):
    """The stored state once the event log has every committed outcome:
    the sink writes after the commit, so a snapshot taken earlier could see
    a line land during the check that follows."""
    n = dm.query("SELECT count(*) FROM outcomes")[0][0]
    if n:
        dm.wait_event_log(n)
    return dm.snapshot(), dm.event_log_bytes()


def check_rejected(dm, status, error, method="POST", path=PATH, body=None, headers=None,
                   allow=None):
    """One request that must be refused with nothing stored."""
    before, log_before = settled_state(dm)
    st, h, data = dm.request(method, path, body, headers or {})
    assert st == status, (st, data)
    assert h.get("content-type") == "application/json"
    assert json.loads(data) == {"error": error}
    if allow is not None:
        assert h.get("allow") == allow
    assert_untouched(dm, before, log_before)
    return h


def check_rejected_raw(dm, status, error, raw):
    before, log_before = settled_state(dm)
    st, h, data = raw_http(dm.port, raw)
    assert st == status, (st, data)
    assert h.get("content-type") == "application/json"
    assert json.loads(data) == {"error": error}
    assert_untouched(dm, before, log_before)


def accepted(resp, ev_id, ignored=False):
    want = {"received": True, "eventId": ev_id, "duplicate": False}
    if ignored:
        want["ignored"] = True
    assert resp == want


# ---------------------------------------------------------------- 404 / 405

@pytest.mark.parametrize("method,path", [
    ("GET", "/"), ("POST", "/"), ("POST", "/webhooks/vinr/extra"),
    ("GET", "/webhooks/vinr/extra"), ("POST", "/webhooks"), ("POST", "/webhooks/vinrx"),
    ("POST", "/WEBHOOKS/VINR"), ("POST", "//webhooks/vinr"), ("PUT", "/nothing"),
    ("POST", "/webhooks/vinr/"), ("POST", "/healthz/webhooks/vinr"),
])
def test_404_other_path(d, method, path):
    ev = make_event("completed")
    body = body_of(ev)
    check_rejected(d, 404, "not_found", method, path, body, d.signed_headers(body))


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
def test_405_on_webhook_path(d, method):
    ev = make_event("completed")
    body = body_of(ev) if method in ("PUT", "PATCH", "DELETE") else None
    headers = d.signed_headers(body) if body else {}
    before, log_before = settled_state(d)
    st, h, data = d.request(method, PATH, body, headers)
    assert st == 405
    assert h.get("allow") == "POST"
    assert h.get("content-type") == "application/json"
    if method != "HEAD":
        assert json.loads(data) == {"error": "method_not_allowed"}
    assert_untouched(d, before, log_before)


# ---------------------------------------------------------------------- 413

def padded_event(size, status="completed"):
    """A valid event whose JSON is exactly size bytes."""
    ev = make_event(status, pad="")
    n = len(body_of(ev))
    ev["data"]["object"]["pad"] = "p" * (size - n)
    body = body_of(ev)
    assert len(body) == size
    return ev, body


def test_413_content_length(d):
    ev, body = padded_event(MAX_BODY + 1)
    check_rejected(d, 413, "payload_too_large", body=body, headers=d.signed_headers(body))


def test_413_content_length_wins_over_content_type_and_signature(d):
    ev, body = padded_event(MAX_BODY + 1)
    check_rejected(d, 413, "payload_too_large", body=body,
                   headers={"Content-Type": "text/plain"})
    check_rejected(d, 413, "payload_too_large", body=body, headers={})


def test_413_declared_length_refused_before_body(d):
    """Only the headers are sent: the answer must come without the body."""
    check_rejected_raw(d, 413, "payload_too_large", (
        "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Vinr-Signature: t=1,v1=00\r\nContent-Length: 100000000\r\n\r\n" % PATH).encode())


def test_413_before_100_continue(d):
    """With Expect: 100-continue and a length over the cap, the first thing
    the client hears is the 413, not an invitation to send."""
    check_rejected_raw(d, 413, "payload_too_large", (
        "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % (PATH, MAX_BODY + 1)).encode())


def chunked_request(dm, body, headers, pieces=7):
    """POSTs body with Transfer-Encoding: chunked (no Content-Length)."""
    step = max(1, len(body) // pieces)
    parts = [body[i:i + step] for i in range(0, len(body), step)]
    c = http.client.HTTPConnection("127.0.0.1", dm.port, timeout=30)
    try:
        c.request("POST", PATH, body=iter(parts), headers=headers, encode_chunked=True)
        r = c.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        c.close()


def test_413_chunked(d):
    ev, body = padded_event(MAX_BODY + 1)
    before, log_before = settled_state(d)
    st, h, data = chunked_request(d, body, d.signed_headers(body))
    assert st == 413
    assert h["content-type"] == "application/json"
    assert "content-length" not in h or int(h["content-length"]) == len(data)
    assert json.loads(data) == {"error": "payload_too_large"}
    # Well over the limit too.
    big = b"x" * (8 * MAX_BODY)
    st, h, data = chunked_request(d, big, d.signed_headers(big), pieces=40)
    assert (st, json.loads(data)) == (413, {"error": "payload_too_large"})
    assert_untouched(d, before, log_before)
    # A small chunked event is then taken.
    small = make_event("pending")
    sb = body_of(small)
    st, h, data = chunked_request(d, sb, d.signed_headers(sb))
    assert st == 200
    accepted(json.loads(data), small["id"])


def test_413_chunked_wins_over_content_type(d):
    big = b"{" + b" " * (2 * MAX_BODY) + b"}"
    before, log_before = settled_state(d)
    for headers in ({"Content-Type": "text/plain"}, {}, {"Content-Type": "application/json"}):
        st, h, data = chunked_request(d, big, headers)
        assert st == 413, headers
        assert h["content-type"] == "application/json"
        assert json.loads(data) == {"error": "payload_too_large"}
    assert_untouched(d, before, log_before)


def test_exactly_max_body_is_accepted(d):
    ev, body = padded_event(MAX_BODY)
    st, _, resp = d.post_raw(body, d.signed_headers(body))
    assert st == 200
    accepted(resp, ev["id"])
    # Chunked, exactly at the limit, too.
    ev2, body2 = padded_event(MAX_BODY, "pending")
    st, _, data = chunked_request(d, body2, d.signed_headers(body2))
    assert st == 200
    accepted(json.loads(data), ev2["id"])
    assert {r[0] for r in d.query("SELECT id FROM events")} >= {ev["id"], ev2["id"]}


@pytest.mark.parametrize("size", [600, 4095, 4097, 20000])
def test_body_in_pieces_stored_byte_for_byte(make_daemon, size):
    """A Content-Length body that arrives in several pieces, below and above
    4 KiB (http.c sizes the body's buffer from the declared length, and grows
    it when more comes), is taken and stored exactly as sent."""
    dm = make_daemon()
    ev, body = padded_event(size)
    head = ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Vinr-Signature: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            % (PATH, sign_vinr(body), len(body))).encode()
    s = socket.create_connection(("127.0.0.1", dm.port), timeout=10)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(head)
        step = max(1, len(body) // 5)
        for i in range(0, len(body), step):
            s.sendall(body[i:i + step])
            time.sleep(0.02)
        resp = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            resp += b
    finally:
        s.close()
    assert resp.startswith(b"HTTP/1.1 200"), resp[:200]
    accepted(json.loads(resp.split(b"\r\n\r\n", 1)[1]), ev["id"])
    stored = dm.query("SELECT body FROM events WHERE id = ?", ev["id"])
    assert [r[0].encode() for r in stored] == [body]


# ---------------------------------------------------------------------- 415

@pytest.mark.parametrize("ctype", [
    "text/plain", None, "application/jsonx", "application/json-patch+json", "text/json",
    "application/x-www-form-urlencoded", "", "json", "application/ json",
])
def test_415(d, ctype):
    ev = make_event("completed")
    body = body_of(ev)
    check_rejected(d, 415, "unsupported_media_type", body=body,
                   headers=d.signed_headers(body, content_type=ctype))


def test_415_chunked(d):
    ev = make_event("completed")
    body = body_of(ev)
    before, log_before = settled_state(d)
    st, h, data = chunked_request(d, body, d.signed_headers(body, content_type="text/plain"))
    assert (st, json.loads(data)) == (415, {"error": "unsupported_media_type"})
    assert h["content-type"] == "application/json"
    assert_untouched(d, before, log_before)


@pytest.mark.parametrize("ctype", [
    "application/json; charset=utf-8", "application/json;charset=UTF-8",
    "Application/JSON", "application/json ; charset=utf-8",
])
def test_json_content_type_with_parameters_accepted(d, ctype):
    ev = make_event("completed")
    body = body_of(ev)
    st, h, resp = d.post_raw(body, d.signed_headers(body, content_type=ctype))
    assert st == 200
    assert h["content-type"] == "application/json"
    accepted(resp, ev["id"])


# ---------------------------------------------------------------------- 401

def now():
    return int(time.time())


def test_401_missing_signature(d):
    ev = make_event("completed")
    body = body_of(ev)
    good = sign_vinr(body)
    t_part, v1_part = good.split(",")
    cases = [
        None, "", " ", "garbage", v1_part, t_part, t_part + ",v0=" + "a" * 64,
        "t=abc," + v1_part, "t=12.5," + v1_part, "t=," + v1_part, "t=0x10," + v1_part,
        "t=%dx,%s" % (now(), v1_part), "v1=" + "a" * 64 + ",v1=" + "b" * 64,
    ]
    for sig in cases:
        h = {"Content-Type": "application/json"}
        if sig is not None:
            h["Vinr-Signature"] = sig
        check_rejected(d, 401, "missing_signature", body=body, headers=h)


def test_401_timestamp_out_of_tolerance(d):
    ev = make_event("completed")
    body = body_of(ev)
    for t in (now() - 400, now() + 400, 1, now() - 86400):
        check_rejected(d, 401, "timestamp_out_of_tolerance", body=body,
                       headers=d.signed_headers(body, t=t))
    # Inside the tolerance on either side: accepted.
    st, resp = d.post_event(ev, t=now() - 250)
    assert st == 200
    accepted(resp, ev["id"])
    ev2 = make_event("completed")
    st, resp = d.post_event(ev2, t=now() + 250)
    assert st == 200
    accepted(resp, ev2["id"])


def test_401_invalid_signature(d):
    ev = make_event("completed")
    body = body_of(ev)
    t = now()
    good = sign_vinr(body, t=t)
    mac = good.split("v1=")[1]
    tampered = body.replace(b'"completed"', b'"cancelled"', 1)
    assert tampered != body
    cases = [
        sign_vinr(body, secret="whsec_wrong"),              # wrong secret
        sign_vinr(body, secret=SECRET[len("whsec_"):]),     # the key includes whsec_
        "t=%d,v1=%s" % (t + 1, mac),                        # t is signed too
        "t=%d,v1=%s" % (t, "z" * 64),                       # v1 not hex
        "t=%d,v1=%s" % (t, mac[:-2]),                       # v1 too short
        "t=%d,v1=%s00" % (t, mac),                          # v1 too long
        "t=%d,v0=%s,v1=%s" % (t, mac, "0" * 64),            # v0 is not looked at
    ]
    for sig in cases:
        check_rejected(d, 401, "invalid_signature", body=body,
                       headers={"Content-Type": "application/json", "Vinr-Signature": sig})
    # Tampered body with the original signature.
    check_rejected(d, 401, "invalid_signature", body=tampered,
                   headers={"Content-Type": "application/json", "Vinr-Signature": good})
    # Items in any order, extra keys and other v1 values are fine.
    st, _, resp = d.post_raw(body, {"Content-Type": "application/json",
                                    "Vinr-Signature": "v1=%s,v0=abc,t=%d,v1=%s" %
                                    ("0" * 64, t, mac)})
    assert st == 200
    accepted(resp, ev["id"])


def test_401_checked_before_json(d):
    """Nothing unauthenticated is parsed: bad signature + bad JSON is a 401."""
    for body in (b"not json at all", b"{", b'{"type":"x"}', b"[]"):
        check_rejected(d, 401, "invalid_signature", body=body,
                       headers=d.signed_headers(body, secret="whsec_wrong"))
        check_rejected(d, 401, "missing_signature", body=body,
                       headers={"Content-Type": "application/json"})
        check_rejected(d, 401, "timestamp_out_of_tolerance", body=body,
                       headers=d.signed_headers(body, t=now() - 1000))
    # And the content type is checked before the signature.
    check_rejected(d, 415, "unsupported_media_type", body=b"{",
                   headers={"Content-Type": "text/plain", "Vinr-Signature": "x"})


def test_refused_delivery_is_logged_without_secret(d):
    ev = make_event("completed")
    body = body_of(ev)
    check_rejected(d, 401, "invalid_signature", body=body,
                   headers=d.signed_headers(body, secret="whsec_wrong"))
    log = d.wait_log("invalid_signature")
    assert SECRET not in log


# ---------------------------------------------------------------------- 400

@pytest.mark.parametrize("body", [
    b"not json", b"{", b"", b'{"id":"evt_x","type":"terminal_payment.completed"',
    b"\xff\xfe{}", b"{'id':'evt_x'}",
])
def test_400_invalid_json(d, body):
    check_rejected(d, 400, "invalid_json", body=body, headers=d.signed_headers(body))


def test_400_raw_nul_is_invalid_json(d):
    """JSON has no raw NUL (SQLite would keep it, PostgreSQL refuses it in
    text): refused before anything is stored, on both backends alike."""
    ev = make_event("completed")
    body = body_of(ev).replace(b'"' + ev["id"].encode(), b'"' + ev["id"].encode() + b"\x00", 1)
    assert b"\x00" in body
    check_rejected(d, 400, "invalid_json", body=body, headers=d.signed_headers(body))


def test_400_trailing_garbage_is_invalid_json(d):
    ev = make_event("completed")
    body = body_of(ev) + b"garbage"
    check_rejected(d, 400, "invalid_json", body=body, headers=d.signed_headers(body))


@pytest.mark.parametrize("mutate", [
    lambda e: e.pop("id"),
    lambda e: e.__setitem__("id", 12345),
    lambda e: e.__setitem__("id", ""),
    lambda e: e.__setitem__("id", None),
    lambda e: e.pop("type"),
    lambda e: e.__setitem__("type", 7),
    lambda e: e.__setitem__("type", ""),
], ids=["no-id", "numeric-id", "empty-id", "null-id", "no-type", "numeric-type",
        "empty-type"])
def test_400_invalid_event(d, mutate):
    ev = make_event("completed")
    mutate(ev)
    body = body_of(ev)
    check_rejected(d, 400, "invalid_event", body=body, headers=d.signed_headers(body))


@pytest.mark.parametrize("body", [b"[]", b'"evt_1"', b"42", b"null", b"{}"])
def test_400_invalid_event_not_an_object(d, body):
    check_rejected(d, 400, "invalid_event", body=body, headers=d.signed_headers(body))


# ----------------------------------------------------------- 200 ignored

def ignorable_events():
    a = make_event("completed", etype="payment_intent.succeeded")
    b = make_event("completed")
    del b["data"]["object"]["id"]
    c = make_event("completed")
    c["data"]["object"]["status"] = "refunded"
    e = make_event("completed")
    del e["data"]
    f = make_event("completed")
    f["data"]["object"]["status"] = 3
    return [a, b, c, e, f]


def test_200_ignored(d):
    before_payments = d.query("SELECT * FROM payments ORDER BY id")
    before_outcomes = d.query("SELECT seq, json FROM outcomes")
    log_before = d.event_log_bytes()
    for ev in ignorable_events():
        st, h, resp = d.post_raw(body_of(ev), d.signed_headers(body_of(ev)))
        assert st == 200
        assert h["content-type"] == "application/json"
        accepted(resp, ev["id"], ignored=True)
        rows = d.query("SELECT type, result, source, body FROM events WHERE id = ?", ev["id"])
        assert len(rows) == 1
        assert rows[0][0] == ev["type"]
        assert rows[0][1] == "ignored"
        assert rows[0][2] == "webhook"
        assert json.loads(rows[0][3]) == ev
        # A warning naming the event.
        log = d.wait_log(ev["id"])
        line = [ln for ln in log.splitlines() if ev["id"] in ln][-1]
        assert "warning" in line.lower()
        # Re-delivery of an ignored event is a plain duplicate.
        st, resp = d.post_event(ev)
        assert (st, resp) == (200, {"received": True, "eventId": ev["id"], "duplicate": True})
    time.sleep(0.2)
    assert d.query("SELECT * FROM payments ORDER BY id") == before_payments
    assert d.query("SELECT seq, json FROM outcomes") == before_outcomes
    assert d.event_log_bytes() == log_before


# ---------------------------------------------------------- 200 duplicate

def test_200_duplicate(d):
    ev = make_event("completed", amount=2500, currency="USD")
    st, resp = d.post_event(ev)
    assert st == 200
    accepted(resp, ev["id"])
    d.wait_event_log(2)
    time.sleep(0.1)
    snap, log_before = settled_state(d)
    # Same bytes, a fresh signature.
    st, resp = d.post_event(ev)
    assert (st, resp) == (200, {"received": True, "eventId": ev["id"], "duplicate": True})
    # Same id, different content (even another status): still the id that counts.
    ev2 = dict(ev, data={"object": {"id": ev["data"]["object"]["id"], "status": "failed"}})
    st, resp = d.post_event(ev2)
    assert (st, resp) == (200, {"received": True, "eventId": ev["id"], "duplicate": True})
    time.sleep(0.3)
    assert d.snapshot() == snap
    assert d.event_log_bytes() == log_before
    # The body stored is the first one.
    assert json.loads(d.query("SELECT body FROM events WHERE id = ?", ev["id"])[0][0]) == ev


def test_rejected_then_retried_is_not_duplicate(d):
    ev = make_event("completed")
    body = body_of(ev)
    check_rejected(d, 401, "invalid_signature", body=body,
                   headers=d.signed_headers(body, secret="whsec_wrong"))
    check_rejected(d, 401, "timestamp_out_of_tolerance", body=body,
                   headers=d.signed_headers(body, t=now() - 3600))
    check_rejected(d, 415, "unsupported_media_type", body=body,
                   headers=d.signed_headers(body, content_type="text/plain"))
    st, resp = d.post_event(ev)
    assert st == 200
    accepted(resp, ev["id"])
    st, resp = d.post_event(ev)
    assert resp["duplicate"] is True


# ----------------------------------------------------- state machine e2e

def outcomes_for(dm, pid):
    return [o for o in dm.outcomes() if o["paymentId"] == pid]


def event_result(dm, ev_id):
    return dm.query("SELECT result FROM events WHERE id = ?", ev_id)[0][0]


def payment_status(dm, pid):
    return dm.query("SELECT status FROM payments WHERE id = ?", pid)[0][0]


def test_out_of_order_final_first(d):
    pid = "tpay_" + uuid.uuid4().hex[:12]
    evs = [make_event(s, payment_id=pid, amount=500) for s in
           ("completed", "processing", "pending", "authorized", "completed")]
    for ev in evs:
        st, resp = d.post_event(ev)
        assert st == 200
        accepted(resp, ev["id"])
    assert [event_result(d, e["id"]) for e in evs] == \
        ["transition", "stale", "stale", "stale", "stale"]
    outs = outcomes_for(d, pid)
    assert len(outs) == 1
    assert outs[0]["status"] == "completed" and outs[0]["previousStatus"] is None
    assert payment_status(d, pid) == "completed"
    d.wait_event_log(2)
    time.sleep(0.2)
    assert [ln["eventId"] for ln in d.event_log_lines() if ln["paymentId"] == pid] == \
        [evs[0]["id"]]


def test_in_order_pending_then_completed(d):
    pid = "tpay_" + uuid.uuid4().hex[:12]
    e1 = make_event("pending", payment_id=pid, amount=700, currency="USD", reference="r1")
    e2 = make_event("completed", payment_id=pid, entryMethod="chip", last4="1111")
    for ev in (e1, e2):
        st, resp = d.post_event(ev)
        assert st == 200
    outs = outcomes_for(d, pid)
    assert [(o["status"], o["previousStatus"]) for o in outs] == \
        [("pending", None), ("completed", "pending")]
    assert outs[1]["seq"] == outs[0]["seq"] + 1
    # Fields merge: the completed event did not repeat amount/currency/reference.
    assert outs[1]["amount"] == 700 and outs[1]["currency"] == "USD"
    assert outs[1]["reference"] == "r1" and outs[1]["entryMethod"] == "chip"
    assert outs[1]["amountCaptured"] == 700
    assert outs[0]["amountCaptured"] is None
    row = d.query("SELECT status, amount, amount_captured, currency, reference, "
                  "entry_method, last4, last_event_id FROM payments WHERE id = ?", pid)
    assert row == [("completed", 700, 700, "USD", "r1", "chip", "1111", e2["id"])]
    lines = d.wait_event_log(3)
    assert [ln["eventId"] for ln in lines if ln["paymentId"] == pid] == [e1["id"], e2["id"]]


def test_conflicting_finals(d):
    pid = "tpay_" + uuid.uuid4().hex[:12]
    e1 = make_event("completed", payment_id=pid, amount=900)
    e2 = make_event("failed", payment_id=pid, declineCode="do_not_honor")
    e3 = make_event("cancelled", payment_id=pid)
    for ev in (e1, e2, e3):
        st, resp = d.post_event(ev)
        assert st == 200
        accepted(resp, ev["id"])
    assert payment_status(d, pid) == "completed"
    assert d.query("SELECT decline_code FROM payments WHERE id = ?", pid) == [(None,)]
    assert event_result(d, e2["id"]) == "conflict"
    assert event_result(d, e3["id"]) == "conflict"
    assert len(outcomes_for(d, pid)) == 1
    for ev in (e2, e3):
        log = d.wait_log(ev["id"])
        line = [ln for ln in log.splitlines() if ev["id"] in ln][-1]
        assert "warning" in line.lower()
        assert pid in line


def test_capture_authorized_to_completed(d):
    pid = "tpay_" + uuid.uuid4().hex[:12]
    e1 = make_event("authorized", payment_id=pid, amount=2500, currency="USD",
                    captureMethod="manual", authorizedAt="2026-06-11T09:00:01Z")
    e2 = make_event("completed", payment_id=pid, amountCaptured=2000,
                    completedAt="2026-06-11T09:05:00Z")
    for ev in (e1, e2):
        st, resp = d.post_event(ev)
        assert st == 200
    outs = outcomes_for(d, pid)
    assert [o["type"] for o in outs] == ["payment.authorized", "payment.completed"]
    assert outs[0]["amountCaptured"] is None
    assert outs[0]["occurredAt"] == "2026-06-11T09:00:01Z"
    cap = outs[1]
    assert cap["previousStatus"] == "authorized"
    assert cap["amount"] == 2500 and cap["amountCaptured"] == 2000
    assert cap["captureMethod"] == "manual"
    assert cap["occurredAt"] == "2026-06-11T09:05:00Z"
    # Without amountCaptured in the object: the amount.
    pid2 = "tpay_" + uuid.uuid4().hex[:12]
    for ev in (make_event("authorized", payment_id=pid2, amount=1234),
               make_event("completed", payment_id=pid2)):
        assert d.post_event(ev)[0] == 200
    assert outcomes_for(d, pid2)[1]["amountCaptured"] == 1234


def test_large_amount_exact_in_outcome(d):
    ev = make_event("completed", amount=9007199254740991, amountCaptured=10 ** 15)
    assert d.post_event(ev)[0] == 200
    d.wait_event_log(2)
    raw = d.event_log_bytes().decode().splitlines()[-1]
    assert '"amount":9007199254740991,' in raw
    assert '"amountCaptured":1000000000000000,' in raw


# --------------------------------------------------- standard webhooks

@pytest.fixture
def std(make_daemon):
    return make_daemon(scheme="standard", conf={"http": {"max_body": str(MAX_BODY)}})


def test_standard_scheme(std):
    ev = make_event("completed", amount=100)
    body = body_of(ev)
    st, resp = std.post_event(ev)
    assert st == 200
    accepted(resp, ev["id"])
    base = sign_standard(body, "msg_abc")
    h = {"Content-Type": "application/json", **base}
    # Wrong secret.
    wrong = sign_standard(body, "msg_abc",
                          secret="whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=")
    check_rejected(std, 401, "invalid_signature", body=body,
                   headers={"Content-Type": "application/json", **wrong})
    # The webhook-id is signed.
    check_rejected(std, 401, "invalid_signature", body=body,
                   headers=dict(h, **{"webhook-id": "msg_other"}))
    # A Vinr-Signature means nothing under this scheme.
    check_rejected(std, 401, "missing_signature", body=body,
                   headers={"Content-Type": "application/json",
                            "Vinr-Signature": sign_vinr(body)})
    for missing in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        hh = dict(h)
        del hh[missing]
        check_rejected(std, 401, "missing_signature", body=body, headers=hh)
    old = sign_standard(body, "msg_abc", t=now() - 400)
    check_rejected(std, 401, "timestamp_out_of_tolerance", body=body,
                   headers={"Content-Type": "application/json", **old})
    # Several signatures, other versions ignored.
    ev2 = make_event("pending")
    b2 = body_of(ev2)
    s2 = sign_standard(b2, "msg_multi")
    s2["webhook-signature"] = "v2,AAAA v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= " + \
        s2["webhook-signature"]
    st, _, resp = std.post_raw(b2, {"Content-Type": "application/json", **s2})
    assert st == 200
    accepted(resp, ev2["id"])


def test_standard_body_without_id_uses_webhook_id(std):
    ev = make_event("completed", amount=300)
    del ev["id"]
    body = body_of(ev)
    msg_id = "msg_" + uuid.uuid4().hex
    st, _, resp = std.post_raw(body, {"Content-Type": "application/json",
                                      **sign_standard(body, msg_id)})
    assert st == 200
    accepted(resp, msg_id)
    assert std.query("SELECT id, result FROM events WHERE id = ?", msg_id) == \
        [(msg_id, "transition")]
    assert std.outcomes()[-1]["eventId"] == msg_id
    # Re-delivered under the same webhook-id: duplicate.
    st, _, resp = std.post_raw(body, {"Content-Type": "application/json",
                                      **sign_standard(body, msg_id)})
    assert (st, resp) == (200, {"received": True, "eventId": msg_id, "duplicate": True})
    # A body id wins over webhook-id: two webhook-ids, one event.
    ev2 = make_event("pending")
    b2 = body_of(ev2)
    for i, mid in enumerate(("msg_a_" + uuid.uuid4().hex, "msg_b_" + uuid.uuid4().hex)):
        st, _, resp = std.post_raw(b2, {"Content-Type": "application/json",
                                        **sign_standard(b2, mid)})
        assert (st, resp) == (200, {"received": True, "eventId": ev2["id"],
                                    "duplicate": i == 1})
    assert len(std.outcomes()) == 2


def test_standard_published_vector(make_daemon):
    """SPEC §1.3's published vector: its 2021 timestamp is out of any
    tolerance, so the daemon must get as far as the time check (headers and
    secret understood); the harness's signer must reproduce the vector."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    dm = make_daemon(scheme="standard", secrets=[secret],
                     conf={"webhook": {"tolerance": "86400"}})
    body = b'{"test": 2432232314}'
    h = {"Content-Type": "application/json", "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
         "webhook-timestamp": "1614265330",
         "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}
    # Far out of tolerance: this proves the headers parse and the MAC is not
    # what decides.
    check_rejected(dm, 401, "timestamp_out_of_tolerance", body=body, headers=h)
    ours = sign_standard(body, "msg_p5jXN8AQM9LWM0D4loKWxJek", secret=secret, t=1614265330)
    assert ours["webhook-signature"] == h["webhook-signature"]


# ------------------------------------------------------------ rotation

def test_secret_rotation(make_daemon):
    a, b = "whsec_old_secret_aaaa", "whsec_new_secret_bbbb"
    dm = make_daemon(secrets=[a, "", "# comment", "  " + b + " \r"])
    for secret in (a, b):
        ev = make_event("completed")
        st, resp = dm.post_event(ev, secret=secret)
        assert st == 200
        accepted(resp, ev["id"])
    ev = make_event("completed")
    body = body_of(ev)
    check_rejected(dm, 401, "invalid_signature", body=body,
                   headers=dm.signed_headers(body, secret="whsec_third"))
    # One header, several v1: one of them matching is enough.
    t = now()
    sa = sign_vinr(body, a, t).split("v1=")[1]
    st, _, resp = dm.post_raw(body, {"Content-Type": "application/json",
                                     "Vinr-Signature": "t=%d,v1=%s,v1=%s" % (t, "1" * 64, sa)})
    assert st == 200
    accepted(resp, ev["id"])
    # A secret file emptied by mistake: SIGHUP keeps the secrets in use.
    dm.set_secrets(["# nothing"])
    dm.signal(signal.SIGHUP)
    time.sleep(0.5)
    assert dm.proc.poll() is None
    assert dm.post_event(make_event("pending"), secret=b)[0] == 200
    # SIGHUP re-reads the secret file: a goes away, c comes in.
    c = "whsec_newest_cccc"
    dm.set_secrets([b, c])
    dm.signal(signal.SIGHUP)
    deadline = time.time() + 5
    while time.time() < deadline:
        e = make_event("pending")
        st, _, _ = dm.post_raw(body_of(e), dm.signed_headers(body_of(e), secret=c))
        if st == 200:
            break
        time.sleep(0.05)
    assert st == 200
    ev = make_event("completed")
    check_rejected(dm, 401, "invalid_signature", body=body_of(ev),
                   headers=dm.signed_headers(body_of(ev), secret=a))
    assert dm.post_event(ev, secret=b)[0] == 200


# --------------------------------------------------------- connections

def test_keep_alive_connection(d):
    """Several deliveries on one HTTP/1.1 connection, refused ones between."""
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    try:
        evs = [make_event("pending"), make_event("completed")]
        results = []
        for i, ev in enumerate(evs):
            body = body_of(ev)
            c.request("POST", PATH, body=body, headers=d.signed_headers(body))
            r = c.getresponse()
            results.append((r.status, json.loads(r.read())))
            bad = body_of(make_event("failed"))
            c.request("POST", PATH, body=bad, headers=d.signed_headers(bad, secret="whsec_x"))
            r = c.getresponse()
            results.append((r.status, json.loads(r.read())))
        c.request("GET", "/healthz")
        r = c.getresponse()
        results.append((r.status, json.loads(r.read())["status"]))
    finally:
        c.close()
    assert results == [
        (200, {"received": True, "eventId": evs[0]["id"], "duplicate": False}),
        (401, {"error": "invalid_signature"}),
        (200, {"received": True, "eventId": evs[1]["id"], "duplicate": False}),
        (401, {"error": "invalid_signature"}),
        (200, "ok"),
    ]


def test_concurrent_redeliveries_of_one_event(d):
    """The same new event posted 12 times at once: one is new, the rest are
    duplicates, and there is one outcome."""
    ev = make_event("completed", amount=55)
    body = body_of(ev)
    results, start = [], threading.Barrier(12)

    def one():
        start.wait()
        st, _, resp = d.post_raw(body, d.signed_headers(body))
        results.append((st, resp))

    ts = [threading.Thread(target=one) for _ in range(12)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert all(st == 200 for st, _ in results), results
    assert sorted(r["duplicate"] for _, r in results) == [False] + [True] * 11
    assert len([o for o in d.outcomes() if o["eventId"] == ev["id"]]) == 1
    assert len(d.query("SELECT id FROM events WHERE id = ?", ev["id"])) == 1


# ------------------------------------------------------------------ 503

@pytest.mark.sqlite_only("takes SQLite's write lock itself; test_pg_cluster.py stops "
                        "the PostgreSQL server instead")
def test_503_storage_unavailable_leaves_no_trace(d):
    ev = make_event("completed", amount=4200)
    before, log_before = settled_state(d)
    lock = sqlite3.connect(d.db_path, isolation_level=None, timeout=10)
    try:
        lock.execute("BEGIN IMMEDIATE")
        t0 = time.monotonic()
        st, h, data = d.request("POST", PATH, body_of(ev), d.signed_headers(body_of(ev)))
        elapsed = time.monotonic() - t0
        # The lock is still ours: the daemon gave up on its own after ~5 s.
        assert lock.in_transaction
        assert st == 503, data
        assert h["content-type"] == "application/json"
        assert json.loads(data) == {"error": "storage_unavailable"}
        assert 4.5 <= elapsed <= 12, elapsed
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert_untouched(d, before, log_before)
    st, resp = d.post_event(ev)
    assert st == 200
    accepted(resp, ev["id"])
    assert len(d.query("SELECT id FROM events WHERE id = ?", ev["id"])) == 1
    outs = d.outcomes()
    assert len(outs) == len(before[2]) + 1
    assert outs[-1]["eventId"] == ev["id"] and outs[-1]["seq"] == len(outs)
    lines = d.wait_event_log(len(outs))
    assert [ln["seq"] for ln in lines] == list(range(1, len(outs) + 1))


@pytest.mark.sqlite_only("takes SQLite's write lock itself; test_pg_cluster.py stops "
                        "the PostgreSQL server instead")
def test_healthz_recovers_after_transient_storage_error(d):
    ev = make_event("completed")
    # A quiet daemon: the event log's cursor is saved, nothing is queued.
    deadline = time.time() + 5
    while d.query("SELECT seq FROM cursors WHERE sink = 'eventlog'") != [(1,)]:
        assert time.time() < deadline
        time.sleep(0.05)
    time.sleep(0.2)
    lock = sqlite3.connect(d.db_path, isolation_level=None, timeout=10)
    try:
        lock.execute("BEGIN IMMEDIATE")
        st, _, _ = d.request("POST", PATH, body_of(ev), d.signed_headers(body_of(ev)))
        assert st == 503
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    deadline = time.time() + 2.5
    while time.time() < deadline:
        st, _, data = d.request("GET", "/healthz")
        if st == 200:
            break
        time.sleep(0.1)
    assert st == 200, data


# ------------------------------------------------------ healthz / metrics

def test_healthz(d):
    st, h, data = d.request("GET", "/healthz")
    assert st == 200
    assert h["content-type"] == "application/json"
    body = json.loads(data)
    assert set(body) == {"status", "warnings"}
    assert body["status"] == "ok"
    assert isinstance(body["warnings"], list)
    assert all(isinstance(w, str) for w in body["warnings"])


def test_metrics(d):
    ev = make_event("completed")
    d.post_event(ev)
    d.post_event(ev)
    body = body_of(make_event("pending"))
    d.post_raw(body, d.signed_headers(body, secret="whsec_wrong"))
    st, h, data = d.request("GET", "/metrics")
    assert st == 200
    assert h["content-type"].startswith("text/plain")
    text = data.decode()
    assert "vinr_webhooks_total" in text
    sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"'
                        r'(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? -?[0-9.eE+]+$')
    values = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        assert sample.match(line), line
        k, v = line.rsplit(" ", 1)
        values[k] = float(v)
    # The fixture's event + ev accepted, one duplicate, one bad signature.
    assert values['vinr_webhooks_total{result="accepted"}'] == 2
    assert values['vinr_webhooks_total{result="duplicate"}'] == 1
    assert values['vinr_webhooks_total{result="rejected",reason="invalid_signature"}'] == 1


# ------------------------------------------------------ event log lines

def test_outcome_lines(make_daemon):
    dm = make_daemon()
    p = ["tpay_" + uuid.uuid4().hex[:12] for _ in range(5)]
    evs = [
        make_event("completed", payment_id=p[0], completedAt="2026-06-11T08:00:00Z",
                   amount=100, currency="USD", terminalId="term_1", reference="o1",
                   captureMethod="automatic", entryMethod="contactless", brand="visa",
                   last4="4242", authCode="A1"),
        make_event("failed", payment_id=p[1], failedAt="2026-06-11T08:01:00Z",
                   declineCode="insufficient_funds"),
        make_event("authorized", payment_id=p[2], authorizedAt="2026-06-11T08:02:00Z"),
        make_event("cancelled", payment_id=p[2]),
        make_event("pending", payment_id=p[3], completedAt="2026-06-11T08:03:00Z"),
        make_event("completed", payment_id=p[4]),
        make_event("processing", payment_id=p[3]),
    ]
    evs[3]["createdAt"] = "2026-06-11T09:30:00Z"
    del evs[5]["createdAt"]
    evs[1]["livemode"] = True
    del evs[2]["livemode"]
    for ev in evs:
        st, resp = dm.post_event(ev)
        assert st == 200
        accepted(resp, ev["id"])
    lines = dm.wait_event_log(len(evs))
    time.sleep(0.2)
    raw = dm.event_log_bytes()
    assert raw.endswith(b"\n")
    lines = [json.loads(x) for x in raw.decode().splitlines()]
    assert len(lines) == len(evs)
    for ln in lines:
        assert set(ln) == OUTCOME_KEYS, set(ln) ^ OUTCOME_KEYS
        assert ln["type"] == "payment." + ln["status"]
        assert ln["source"] == "webhook"
        assert RFC3339_MS.match(ln["recordedAt"]), ln["recordedAt"]
    assert [ln["seq"] for ln in lines] == list(range(1, len(evs) + 1))
    assert [ln["eventId"] for ln in lines] == [e["id"] for e in evs]
    # The event log holds what the database holds.
    assert lines == dm.outcomes()
    occurred = [ln["occurredAt"] for ln in lines]
    assert occurred[0] == "2026-06-11T08:00:00Z"
    assert occurred[1] == "2026-06-11T08:01:00Z"
    assert occurred[2] == "2026-06-11T08:02:00Z"
    assert occurred[3] == "2026-06-11T09:30:00Z"      # no cancelledAt: createdAt
    assert occurred[4] == "2026-06-11T09:00:12Z"      # completedAt is not pending's
    assert occurred[5] == lines[5]["recordedAt"]       # neither: recordedAt
    assert occurred[6] == "2026-06-11T09:00:12Z"
    assert [ln["livemode"] for ln in lines[:3]] == [False, True, None]
    first = lines[0]
    assert (first["paymentId"], first["terminalId"], first["reference"], first["amount"],
            first["amountCaptured"], first["currency"], first["captureMethod"],
            first["entryMethod"], first["brand"], first["last4"], first["authCode"],
            first["declineCode"], first["previousStatus"]) == \
        (p[0], "term_1", "o1", 100, 100, "USD", "automatic", "contactless", "visa",
         "4242", "A1", None, None)
    assert lines[1]["declineCode"] == "insufficient_funds"
    assert lines[1]["amount"] is None and lines[1]["amountCaptured"] is None
    assert (lines[3]["previousStatus"], lines[6]["previousStatus"]) == \
        ("authorized", "pending")
    # Nothing more comes.
    time.sleep(0.3)
    assert dm.event_log_bytes() == raw


# -------------------------------------------------------------- signals

def test_sighup_reopens_event_log(make_daemon):
    dm = make_daemon()
    e1 = make_event("completed")
    assert dm.post_event(e1)[0] == 200
    dm.wait_event_log(1)
    rotated = dm.event_log + ".1"
    os.rename(dm.event_log, rotated)
    dm.signal(signal.SIGHUP)
    time.sleep(0.5)
    assert dm.proc.poll() is None
    e2 = make_event("failed")
    assert dm.post_event(e2)[0] == 200
    lines = dm.wait_event_log(1)
    assert [(ln["seq"], ln["eventId"]) for ln in lines] == [(2, e2["id"])]
    with open(rotated) as f:
        old = [json.loads(x) for x in f]
    assert [(ln["seq"], ln["eventId"]) for ln in old] == [(1, e1["id"])]
    assert dm.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_exits_0(make_daemon, sig):
    dm = make_daemon()
    assert dm.post_event(make_event("completed"))[0] == 200
    dm.signal(sig)
    assert dm.proc.wait(timeout=15) == 0
    # The port is released.
    with pytest.raises(OSError):
        dm.request("GET", "/healthz", timeout=1)


def test_sigterm_does_not_wait_for_idle_connections(make_daemon):
    dm = make_daemon()
    idle = socket.create_connection(("127.0.0.1", dm.port))
    partial = socket.create_connection(("127.0.0.1", dm.port))
    partial.sendall(b"POST /webhooks/vinr HTTP/1.1\r\nHost: x\r\n")
    ka = http.client.HTTPConnection("127.0.0.1", dm.port, timeout=5)
    ka.request("GET", "/healthz")
    assert ka.getresponse().read()
    time.sleep(0.1)
    t0 = time.monotonic()
    dm.signal(signal.SIGTERM)
    assert dm.proc.wait(timeout=15) == 0
    assert time.monotonic() - t0 < 5
    for s in (idle, partial):
        s.close()
    ka.close()


def test_secret_never_logged(make_daemon, tmp_path):
    dm = make_daemon(start=False, secrets=[SECRET, "whsec_second_secret_value"])
    dm.start(args=("-d",))
    evs = [make_event(s) for s in ("pending", "authorized", "completed")]
    for ev in evs:
        dm.post_event(ev)
        dm.post_event(ev)
    body = body_of(make_event("failed"))
    dm.post_raw(body, dm.signed_headers(body, secret="whsec_wrong"))
    dm.post_raw(body, {"Content-Type": "application/json"})
    dm.post_raw(b"junk", dm.signed_headers(b"junk"))
    dm.signal(signal.SIGHUP)
    time.sleep(0.3)
    assert dm.stop() == 0
    log = dm.log()
    assert "debug" in log            # -d did log more: the check means something
    for s in (SECRET, "whsec_second_secret_value", SECRET[len("whsec_"):]):
        assert s not in log
