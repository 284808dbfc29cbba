"""Exact integers end to end (issue 9): an amount beyond 2^53 comes out as
the very literal it came in as, everywhere the daemon writes it.

cJSON keeps numbers as doubles: read through one, 9007199254740993 becomes
9007199254740992, and printed through one it becomes 9.00719925474099e+15
(2000000000000000 becomes 2e+15).  A signed event carries such amounts; the
control socket's get, find, wait and pending, vinrctl, the event log, and the
shell hook's VINR_AMOUNT and stdin must all show the same literals.  Python's
json reads big integers exactly, and every check also looks at the raw bytes.
"""
import json
import os
import time
import uuid

from conftest import make_event
from conftest import wait_for

# Each test that starts a daemon runs on SQLite and on PostgreSQL (SPEC §8;
# conftest.py's backend fixture).
BACKENDS = ("sqlite", "postgres")

BIG = 9007199254740993          # 2^53 + 1: no double holds it
MAX = 9223372036854775807       # int64's largest
ROUND = 2000000000000000        # cJSON would print 2e+15

HOOK = """#!/bin/sh
D='%s'
env > "$D/env.$VINR_SEQ.tmp" && mv "$D/env.$VINR_SEQ.tmp" "$D/env.$VINR_SEQ"
cat > "$D/stdin.$VINR_SEQ.tmp" && mv "$D/stdin.$VINR_SEQ.tmp" "$D/stdin.$VINR_SEQ"
exit 0
"""


def pid():
    return "tpay_" + uuid.uuid4().hex[:12]


def hook_daemon(make_daemon, tmp_path):
    """A daemon whose hook records each run's environment and stdin."""
    d = tmp_path / "hook.d"
    d.mkdir()
    path = tmp_path / "hook"
    path.write_text(HOOK % d)
    path.chmod(0o755)
    daemon = make_daemon(conf={"forward": {"hook": str(path), "events": "all"}})
    return daemon, str(d)


def post(daemon, status, payment_id, **fields):
    st, body = daemon.post_event(make_event(status, payment_id=payment_id, **fields))
    assert st == 200 and body.get("duplicate") is False and "ignored" not in body, body
    return body


def request_raw(daemon, req):
    """One control request; the answer's raw line and its parse."""
    with daemon.control_client() as c:
        c.send(req)
        line = c.recv_line(timeout=20)
    assert line is not None
    return line, json.loads(line)


def assert_literals(raw, amount, captured):
    assert b'"amount":%d,' % amount in raw, raw
    assert b'"amountCaptured":%d,' % captured in raw, raw
    assert b"e+" not in raw, raw


def test_exact_amounts_everywhere(make_daemon, tmp_path):
    daemon, hookdir = hook_daemon(make_daemon, tmp_path)
    p, ref = pid(), "order_" + uuid.uuid4().hex[:8]
    post(daemon, "completed", p, amount=BIG, amountCaptured=MAX, currency="USD",
         reference=ref)

    # The stored outcome line, the source of every sink.
    (seq, stored), = daemon.query("SELECT seq, json FROM outcomes WHERE payment_id = ?", p)
    assert_literals(stored.encode(), BIG, MAX)

    # get
    raw, r = request_raw(daemon, {"cmd": "get", "paymentId": p})
    assert r["ok"] is True
    assert_literals(raw, BIG, MAX)
    assert (r["payment"]["amount"], r["payment"]["amountCaptured"]) == (BIG, MAX)

    # find
    raw, r = request_raw(daemon, {"cmd": "find", "reference": ref})
    assert r["ok"] is True and [x["paymentId"] for x in r["payments"]] == [p]
    assert_literals(raw, BIG, MAX)

    # wait on a payment that already has its outcome
    raw, r = request_raw(daemon, {"cmd": "wait", "paymentId": p, "timeout": 5})
    assert r["ok"] is True and r["payment"]["amount"] == BIG
    assert_literals(raw, BIG, MAX)

    # vinrctl prints the daemon's answer as it came
    cp = daemon.vinrctl("get", p)
    assert cp.returncode == 0, cp.stderr
    assert_literals(cp.stdout.encode(), BIG, MAX)

    # the event log
    lines = daemon.wait_event_log(1)
    assert (lines[0]["amount"], lines[0]["amountCaptured"]) == (BIG, MAX)
    assert_literals(daemon.event_log_bytes(), BIG, MAX)

    # the hook: its variable and its stdin, byte for byte the stored line
    env_path = os.path.join(hookdir, "env.%d" % seq)
    stdin_path = os.path.join(hookdir, "stdin.%d" % seq)   # the hook writes it last
    wait_for(lambda: os.path.exists(stdin_path), what="the hook's run")
    with open(env_path) as f:
        env = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
    assert env["VINR_AMOUNT"] == str(BIG)
    assert env["VINR_SEQ"] == str(seq)
    with open(stdin_path, "rb") as f:
        assert f.read().rstrip(b"\n") == stored.encode()
    assert daemon.stop() == 0


def test_wait_wakes_with_exact_amount(make_daemon, tmp_path):
    """A wait that is answered by the event arriving, and a round amount
    that cJSON would print as 2e+15."""
    daemon, hookdir = hook_daemon(make_daemon, tmp_path)
    p = pid()
    with daemon.control_client() as c:
        c.send({"cmd": "wait", "paymentId": p, "timeout": 20})
        time.sleep(0.3)
        post(daemon, "authorized", p, amount=ROUND, amountCaptured=0, currency="EUR")
        raw = c.recv_line(timeout=20)
    r = json.loads(raw)
    assert r["ok"] is True and r["payment"]["status"] == "authorized"
    assert_literals(raw, ROUND, 0)
    assert r["payment"]["amount"] == ROUND
    raw, _ = request_raw(daemon, {"cmd": "get", "paymentId": p})
    assert_literals(raw, ROUND, 0)
    daemon.wait_event_log(1)   # the answer comes at COMMIT; the line after it
    assert_literals(daemon.event_log_bytes(), ROUND, 0)
    (seq,), = daemon.query("SELECT seq FROM outcomes WHERE payment_id = ?", p)
    env_path = os.path.join(hookdir, "env.%d" % seq)
    wait_for(lambda: os.path.exists(env_path), what="the hook's run")
    with open(env_path) as f:
        assert "VINR_AMOUNT=%d\n" % ROUND in f.read()
    assert daemon.stop() == 0


def test_pending_and_ends_of_int64(daemon):
    """pending shows exact amounts too; int64's ends pass, one beyond is no
    amount (null), never a rounded one."""
    p, q = pid(), pid()
    post(daemon, "pending", p, amount=MAX, amountCaptured=-MAX - 1)
    post(daemon, "pending", q, amount=MAX + 1, amountCaptured=BIG)
    raw, r = request_raw(daemon, {"cmd": "pending", "olderThan": 0})
    assert r["ok"] is True
    by_id = {x["paymentId"]: x for x in r["payments"]}
    assert (by_id[p]["amount"], by_id[p]["amountCaptured"]) == (MAX, -MAX - 1)
    assert (by_id[q]["amount"], by_id[q]["amountCaptured"]) == (None, BIG)
    assert b'"amount":%d,"amountCaptured":%d,' % (MAX, -MAX - 1) in raw
    assert b'"amount":null,"amountCaptured":%d,' % BIG in raw
    assert daemon.stop() == 0


def test_track_replay_subscribe_and_request_ids_are_exact(daemon):
    """The control socket reads integers from the request's text: track's
    amount, and an integer request id echoed as the literal sent."""
    p = pid()
    raw, r = request_raw(daemon, {"cmd": "track", "paymentId": p, "amount": BIG,
                                  "id": MAX})
    assert r["ok"] is True and r["payment"]["amount"] == BIG, r
    assert b'"id":%d,' % MAX in raw and b'"amount":%d,' % BIG in raw, raw
    raw, r = request_raw(daemon, {"cmd": "get", "paymentId": p, "id": BIG})
    assert r["id"] == BIG and r["payment"]["amount"] == BIG
    # One past int64, or a fraction: refused, not rounded.
    for bad in (MAX + 1, 12.5):
        _, r = request_raw(daemon, {"cmd": "track", "paymentId": pid(), "amount": bad})
        assert r["ok"] is False and r["error"] == "bad_request", r
    # A huge replay seq is simply not found (not a rounded seq).
    _, r = request_raw(daemon, {"cmd": "replay", "sink": "hook", "seq": BIG})
    assert r["ok"] is False and r["error"] == "not_found", r
    assert str(BIG) in r["message"], r
    assert daemon.stop() == 0


def test_reconciler_keeps_vinrs_literal(make_daemon):
    """The reconciler hands VINR's object to the store as VINR sent it: an
    amount past 2^53 that a retrieve returns is stored exactly."""
    import http.server
    import threading
    p = pid()
    body = (b'{"id":"%s","status":"completed","terminalId":"term_x","amount":%d,'
            b'"amountCaptured":%d,"currency":"EUR","livemode":false}' % (p.encode(), BIG, BIG))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        d = make_daemon(env={"VINR_API_KEY": "sk_test_exact"},
                        conf={"api": {"base": "http://127.0.0.1:%d" % srv.server_address[1]},
                              "reconciler": {"stale_after": 3600}})
        raw, r = request_raw(d, {"cmd": "reconcile", "paymentId": p})
        assert r["ok"] is True and r["changed"] is True, r
        assert_literals(raw, BIG, BIG)
        d.wait_event_log(1)
        assert_literals(d.event_log_bytes(), BIG, BIG)
        assert d.stop() == 0
    finally:
        srv.shutdown()
