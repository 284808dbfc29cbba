"""The control socket (SPEC §4) and vinrctl, end to end.

Every command through the socket and through vinrctl, their errors and exit
codes, wait and subscribe against live webhooks, the socket file's life
(stale file, live daemon, mode), and clients that misbehave.  Each test that
ends with d.stop() == 0 also proves, under `make asan`, that nothing leaked.
"""
import json
import os
import select
import socket
import stat
import subprocess
import threading
import time
import uuid

import pytest

from conftest import ControlClient, make_event, run_vinrctl, run_webhookd, VINRCTL

# Each test that starts a daemon runs on SQLite and on PostgreSQL (SPEC §8;
# conftest.py's backend fixture).
BACKENDS = ("sqlite", "postgres")

PAYMENT_KEYS = ["paymentId", "terminalId", "reference", "status", "amount", "amountCaptured",
                "currency", "captureMethod", "entryMethod", "brand", "last4", "authCode",
                "declineCode", "livemode", "createdAt", "updatedAt", "lastEventId", "tracked",
                "reconcile"]
REJECT_REASONS = ["not_found", "method_not_allowed", "payload_too_large",
                  "unsupported_media_type", "missing_signature", "timestamp_out_of_tolerance",
                  "invalid_signature", "invalid_json", "invalid_event", "storage_unavailable"]


def pid():
    return "tpay_" + uuid.uuid4().hex[:12]


def post(d, status, payment_id, **fields):
    st, body = d.post_event(make_event(status, payment_id=payment_id, **fields))
    assert st == 200, body
    return body


def post_many(d, n, threads=16, **fields):
    """Posts n completed payments concurrently."""
    evs = [json.dumps(make_event("completed", **fields)).encode() for _ in range(n)]
    it = iter(evs)
    lock = threading.Lock()
    errors = []

    def worker():
        while True:
            with lock:
                ev = next(it, None)
            if ev is None:
                return
            try:
                st, _ = d.post_event(ev)
                assert st == 200
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
                return

    ths = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    assert not errors, errors[:3]


def assert_payment(p):
    assert list(p.keys()) == PAYMENT_KEYS
    assert set(p["reconcile"].keys()) == {"attempts", "nextAt", "state"}
    assert isinstance(p["tracked"], bool)


def stats_clients(d):
    return d.ctl({"cmd": "stats"})["stats"]["control"]["clients"]


def wait_until(pred, timeout=10, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


# ---------------------------------------------------------------------------
# Commands through the socket

def test_ping_and_id_echo(daemon):
    with daemon.control_client() as c:
        r = c.request({"cmd": "ping"})
        assert r["ok"] is True and isinstance(r["version"], str) and r["version"]
        assert "id" not in r
        assert c.request({"cmd": "ping", "id": 7})["id"] == 7
        assert c.request({"cmd": "ping", "id": "abc"})["id"] == "abc"
        assert c.request({"cmd": "ping", "id": {"n": [1, 2]}})["id"] == {"n": [1, 2]}
        # Errors echo it too.
        r = c.request({"cmd": "get", "paymentId": "nope", "id": 9})
        assert r == {"ok": False, "id": 9, "error": "not_found", "message": r["message"]}
    assert daemon.stop() == 0


def test_get_payment_shape(daemon):
    p = pid()
    post(daemon, "completed", p, amount=2500, currency="USD", reference="order_1",
         terminalId="term_1", brand="visa", last4="4242", createdAt="2026-06-11T09:00:00Z")
    r = daemon.ctl({"cmd": "get", "paymentId": p})
    assert r["ok"] is True
    pay = r["payment"]
    assert_payment(pay)
    assert pay["paymentId"] == p and pay["status"] == "completed"
    assert pay["amount"] == 2500 and pay["amountCaptured"] == 2500
    assert pay["currency"] == "USD" and pay["reference"] == "order_1"
    assert pay["terminalId"] == "term_1" and pay["brand"] == "visa"
    assert pay["livemode"] is False and pay["tracked"] is False
    assert pay["createdAt"] == "2026-06-11T09:00:00Z"
    assert pay["updatedAt"].endswith("Z") and len(pay["updatedAt"]) == 24
    assert pay["lastEventId"].startswith("evt_")
    assert pay["reconcile"] == {"attempts": 0, "nextAt": None, "state": "idle"}
    r = daemon.ctl({"cmd": "get", "paymentId": "tpay_unknown"})
    assert r["ok"] is False and r["error"] == "not_found" and r["message"]
    assert daemon.stop() == 0


def test_find_newest_first(daemon):
    ref = "order_" + uuid.uuid4().hex[:6]
    ids = [pid() for _ in range(3)]
    for i, created in [(1, "2026-06-11T09:00:02Z"), (0, "2026-06-11T09:00:01Z"),
                       (2, "2026-06-11T09:00:03Z")]:
        post(daemon, "pending", ids[i], reference=ref, createdAt=created)
    post(daemon, "pending", pid(), reference="other")
    r = daemon.ctl({"cmd": "find", "reference": ref})
    assert r["ok"] is True
    assert [p["paymentId"] for p in r["payments"]] == [ids[2], ids[1], ids[0]]
    for p in r["payments"]:
        assert_payment(p)
    assert daemon.ctl({"cmd": "find", "reference": "none_such"}) == {"ok": True, "payments": []}
    assert daemon.ctl({"cmd": "find"})["error"] == "bad_request"
    assert daemon.stop() == 0


def test_track_unknown_then_known(daemon):
    p = pid()
    r = daemon.ctl({"cmd": "track", "paymentId": p, "terminalId": "term_9",
                    "reference": "order_9", "amount": 1234, "currency": "EUR", "id": 1})
    assert r["ok"] is True and r["id"] == 1
    pay = r["payment"]
    assert_payment(pay)
    assert pay["status"] == "pending" and pay["tracked"] is True
    assert (pay["terminalId"], pay["reference"], pay["amount"], pay["currency"]) == \
        ("term_9", "order_9", 1234, "EUR")
    # No outcome for a track.
    assert daemon.query("SELECT count(*) FROM outcomes") == [(0,)]
    # Tracking again changes nothing it already has.
    r = daemon.ctl({"cmd": "track", "paymentId": p, "amount": 1, "reference": "x"})
    assert r["payment"]["amount"] == 1234 and r["payment"]["reference"] == "order_9"

    # A known payment keeps its status and gets the fields it lacks.
    q = pid()
    post(daemon, "completed", q, amount=500)
    r = daemon.ctl({"cmd": "track", "paymentId": q, "reference": "order_q", "amount": 9,
                    "currency": "GBP"})
    pay = r["payment"]
    assert pay["status"] == "completed" and pay["tracked"] is True
    assert pay["amount"] == 500 and pay["reference"] == "order_q" and pay["currency"] == "GBP"
    assert daemon.query("SELECT count(*) FROM outcomes") == [(1,)]
    # A later webhook does not untrack it.
    post(daemon, "completed", p)
    assert daemon.ctl({"cmd": "get", "paymentId": p})["payment"]["tracked"] is True
    for bad in [{"cmd": "track"}, {"cmd": "track", "paymentId": ""},
                {"cmd": "track", "paymentId": 5}, {"cmd": "track", "paymentId": p, "amount": "1"},
                {"cmd": "track", "paymentId": p, "amount": 1.5},
                {"cmd": "track", "paymentId": p, "amount": -1},
                {"cmd": "track", "paymentId": p, "reference": 7}]:
        r = daemon.ctl(bad)
        assert r["ok"] is False and r["error"] == "bad_request", bad
    assert daemon.stop() == 0


def test_pending_older_than(daemon):
    a, b, c = pid(), pid(), pid()
    daemon.ctl({"cmd": "track", "paymentId": a})
    post(daemon, "processing", b)
    post(daemon, "completed", c)
    ids = {p["paymentId"] for p in daemon.ctl({"cmd": "pending"})["payments"]}
    assert ids == {a, b}
    ids = {p["paymentId"] for p in daemon.ctl({"cmd": "pending", "olderThan": 0})["payments"]}
    assert ids == {a, b}
    assert daemon.ctl({"cmd": "pending", "olderThan": 3600}) == {"ok": True, "payments": []}
    time.sleep(1.1)
    ids = {p["paymentId"] for p in daemon.ctl({"cmd": "pending", "olderThan": 1})["payments"]}
    assert ids == {a, b}
    for p in daemon.ctl({"cmd": "pending"})["payments"]:
        assert_payment(p)
    assert daemon.ctl({"cmd": "pending", "olderThan": -1})["error"] == "bad_request"
    assert daemon.ctl({"cmd": "pending", "olderThan": "1"})["error"] == "bad_request"
    assert daemon.stop() == 0


def add_dead_letter(d, sink="eventlog", seq=1, replay=0):
    """Stops d, writes a dead letter row as the sink would have, restarts."""
    assert d.stop() == 0
    d.write("INSERT INTO dead_letters (sink, seq, attempts, last_error, at, replay) "
            "VALUES (?, ?, 12, 'exit status 1', '2026-06-11T09:00:12.345Z', ?)",
            sink, seq, replay)
    d.start()


def test_dead_and_replay(daemon):
    assert daemon.ctl({"cmd": "dead"}) == {"ok": True, "dead": []}
    post(daemon, "completed", pid())
    add_dead_letter(daemon, "hook", 1)
    r = daemon.ctl({"cmd": "dead"})
    assert r == {"ok": True, "dead": [{"sink": "hook", "seq": 1, "attempts": 12,
                                       "lastError": "exit status 1",
                                       "at": "2026-06-11T09:00:12.345Z"}]}
    assert daemon.ctl({"cmd": "replay", "sink": "hook", "seq": 1, "id": 3}) == \
        {"ok": True, "id": 3}
    assert daemon.query("SELECT replay FROM dead_letters") == [(1,)]
    r = daemon.ctl({"cmd": "replay", "sink": "hook", "seq": 2})
    assert r["ok"] is False and r["error"] == "not_found"
    r = daemon.ctl({"cmd": "replay", "sink": "socket", "seq": 1})
    assert r["error"] == "not_found"
    for bad in [{"cmd": "replay"}, {"cmd": "replay", "sink": "hook"},
                {"cmd": "replay", "sink": "hook", "seq": 0},
                {"cmd": "replay", "sink": "hook", "seq": "1"},
                {"cmd": "replay", "seq": 1}]:
        assert daemon.ctl(bad)["error"] == "bad_request", bad
    assert daemon.stop() == 0


def test_stats(daemon):
    post(daemon, "completed", pid())
    post(daemon, "completed", pid())
    daemon.request("GET", "/nope")
    st, _ = daemon.post_event(make_event("completed"), secret="whsec_wrong")
    assert st == 401
    with daemon.control_client() as other:
        other.request({"cmd": "ping"})
        wait_until(lambda: daemon.ctl({"cmd": "stats"})["stats"]["sinks"]["eventlog"]["cursor"]
                   == 2, what="the event log to catch up")
        r = daemon.ctl({"cmd": "stats", "id": "s"})
    assert r["ok"] is True and r["id"] == "s"
    s = r["stats"]
    assert set(s.keys()) == {"webhooks", "lastSeq", "sinks", "reconciler", "api",
                             "control", "uptimeSeconds"}
    assert s["webhooks"]["accepted"] == 2 and s["webhooks"]["duplicate"] == 0
    assert s["webhooks"]["ignored"] == 0
    assert sorted(s["webhooks"]["rejected"].keys()) == sorted(REJECT_REASONS)
    assert s["webhooks"]["rejected"]["not_found"] == 1
    assert s["webhooks"]["rejected"]["invalid_signature"] == 1
    assert s["lastSeq"] == 2
    # Only the event log is configured: the hook and socket sinks are absent.
    assert s["sinks"] == {"eventlog": {"cursor": 2, "lag": 0, "dead": 0}}
    assert s["reconciler"] == {"state": "disabled", "requests": 0, "errors": 0}
    assert s["api"] == {"requests": 0, "errors": 0, "unknown": 0}
    assert s["control"] == {"clients": 2}
    assert isinstance(s["uptimeSeconds"], int) and s["uptimeSeconds"] >= 0
    assert daemon.stop() == 0


def test_reconcile_disabled(daemon):
    r = daemon.ctl({"cmd": "reconcile", "paymentId": pid(), "id": 1})
    assert r["ok"] is False and r["error"] == "reconciler_disabled" and r["id"] == 1
    assert daemon.ctl({"cmd": "reconcile"})["error"] == "bad_request"
    assert daemon.stop() == 0


# ---------------------------------------------------------------------------
# wait

def test_wait_already_has_outcome(daemon):
    p = pid()
    post(daemon, "authorized", p)
    t0 = time.time()
    r = daemon.ctl({"cmd": "wait", "paymentId": p, "timeout": 30})
    assert time.time() - t0 < 1
    assert r["ok"] is True and r["payment"]["status"] == "authorized"
    assert daemon.stop() == 0


def test_wait_unknown_returns_on_webhook(daemon):
    p = pid()
    with daemon.control_client(timeout=20) as c:
        c.send({"cmd": "wait", "paymentId": p, "timeout": 30, "id": "w"})
        time.sleep(0.3)
        # A status that is not an outcome does not end the wait.
        post(daemon, "processing", p)
        c.sock.settimeout(0.5)
        with pytest.raises(socket.timeout):
            c.recv_line()
        post(daemon, "completed", p, amount=700)
        t_hook = time.time()
        r = c.recv(timeout=5)
        assert time.time() - t_hook < 1
    assert r["ok"] is True and r["id"] == "w"
    assert r["payment"]["paymentId"] == p and r["payment"]["status"] == "completed"
    assert_payment(r["payment"])
    assert daemon.stop() == 0


def test_wait_timeout(daemon):
    p = pid()
    t0 = time.time()
    r = daemon.ctl({"cmd": "wait", "paymentId": p, "timeout": 0.5})
    assert 0.4 <= time.time() - t0 < 2
    assert r == {"ok": False, "error": "timeout", "message": r["message"], "payment": None}
    daemon.ctl({"cmd": "track", "paymentId": p})
    r = daemon.ctl({"cmd": "wait", "paymentId": p, "timeout": 0})
    assert r["ok"] is False and r["error"] == "timeout"
    assert r["payment"]["paymentId"] == p and r["payment"]["status"] == "pending"
    for bad in [3601, -1, "5", True]:
        r = daemon.ctl({"cmd": "wait", "paymentId": p, "timeout": bad})
        assert r["ok"] is False and r["error"] == "bad_request", bad
    assert daemon.ctl({"cmd": "wait", "timeout": 1})["error"] == "bad_request"
    assert daemon.stop() == 0


def test_wait_50_clients(daemon):
    ids = [pid() for _ in range(10)]
    clients = []
    for i in range(50):
        c = daemon.control_client(timeout=20)
        c.send({"cmd": "wait", "paymentId": ids[i % 10], "timeout": 60, "id": i})
        clients.append(c)
    wait_until(lambda: stats_clients(daemon) == 51, what="50 waiting clients")
    statuses = ["completed", "failed", "cancelled", "authorized", "completed"] * 2
    for p, s in zip(ids, statuses):
        post(daemon, s, p)
    for i, c in enumerate(clients):
        r = c.recv(timeout=10)
        assert r["ok"] is True and r["id"] == i
        assert r["payment"]["paymentId"] == ids[i % 10]
        assert r["payment"]["status"] == statuses[i % 10]
        c.close()
    assert daemon.stop() == 0


def test_wait_client_disconnects(daemon):
    """Clients that hang up mid-wait are dropped and leak nothing (asan)."""
    p = pid()
    for _ in range(20):
        c = daemon.control_client()
        c.send({"cmd": "wait", "paymentId": p, "timeout": 60})
        c.close()
    # Half of them hang up while the answer is on its way.
    cs = [daemon.control_client() for _ in range(10)]
    for c in cs:
        c.send({"cmd": "wait", "paymentId": p, "timeout": 60})
    wait_until(lambda: stats_clients(daemon) <= 11, what="the hung-up clients to go")
    for c in cs[:5]:
        c.close()
    post(daemon, "completed", p)
    for c in cs[5:]:
        assert c.recv()["ok"] is True
        c.close()
    wait_until(lambda: stats_clients(daemon) == 1, what="every client to go")
    # A client that disconnects while a track is in flight: the track holds.
    q = pid()
    c = daemon.control_client()
    c.send({"cmd": "track", "paymentId": q})
    c.close()
    wait_until(lambda: daemon.ctl({"cmd": "get", "paymentId": q})["ok"], what="the track")
    assert daemon.stop() == 0


def test_stop_with_clients_busy(daemon):
    """A clean stop with waiters, subscribers and half-read lines frees them
    all (asan) and ends their connections."""
    for _ in range(5):
        post(daemon, "completed", pid())
    waiters = [daemon.control_client() for _ in range(5)]
    for c in waiters:
        c.send({"cmd": "wait", "paymentId": pid(), "timeout": 600})
    sub = daemon.control_client()
    assert sub.request({"cmd": "subscribe", "since": 0})["ok"] is True
    partial = daemon.control_client()
    partial.send(b'{"cmd":"pi')
    wait_until(lambda: stats_clients(daemon) == 8, what="the clients")
    assert daemon.stop() == 0
    for c in waiters + [partial]:
        assert c.recv_line(timeout=5) is None
        c.close()
    assert [sub.recv(timeout=5)["seq"] for _ in range(5)] == [1, 2, 3, 4, 5]
    assert sub.recv_line(timeout=5) is None
    sub.close()


# ---------------------------------------------------------------------------
# subscribe

def read_outcomes(c, until_seq, timeout=20):
    got = []
    deadline = time.time() + timeout
    while not got or got[-1]["seq"] < until_seq:
        assert time.time() < deadline, "got %d lines" % len(got)
        line = c.recv(timeout=10)
        assert line is not None, "connection closed"
        assert "ok" not in line, line
        got.append(line)
    return got


def test_subscribe_backlog_then_live_no_gap(daemon):
    for _ in range(20):
        post(daemon, "completed", pid())
    total = 20 + 150
    with daemon.control_client(timeout=20) as c:
        # Events keep coming while we subscribe and read the backlog.
        poster = threading.Thread(target=post_many, args=(daemon, 150), kwargs={"threads": 4})
        poster.start()
        time.sleep(0.05)
        r = c.request({"cmd": "subscribe", "since": 5, "id": "sub"})
        assert r["ok"] is True and r["subscribed"] is True and r["id"] == "sub"
        assert r["lastSeq"] >= 20
        got = read_outcomes(c, total)
        poster.join()
        assert [o["seq"] for o in got] == list(range(6, total + 1))
        # Live lines are whole outcomes, as stored.
        stored = daemon.outcomes()
        assert got == stored[5:]
        # And the stream stays live.
        post(daemon, "failed", pid())
        assert c.recv(timeout=5)["seq"] == total + 1
    assert daemon.stop() == 0


def test_subscribe_without_since_gets_only_new(daemon):
    for _ in range(3):
        post(daemon, "completed", pid())
    with daemon.control_client() as c:
        r = c.request({"cmd": "subscribe"})
        assert r == {"ok": True, "subscribed": True, "lastSeq": 3}
        p = pid()
        post(daemon, "pending", p)
        post(daemon, "completed", p)
        a, b = c.recv(timeout=5), c.recv(timeout=5)
        assert (a["seq"], a["status"]) == (4, "pending")     # every transition
        assert (b["seq"], b["status"], b["previousStatus"]) == (5, "completed", "pending")
        # Other requests still work on a subscribed connection.
        assert c.request({"cmd": "subscribe"})["error"] == "bad_request"
        assert c.request({"cmd": "ping"})["ok"] is True
    for bad in [-1, 1.5, "3"]:
        assert daemon.ctl({"cmd": "subscribe", "since": bad})["error"] == "bad_request"
    assert daemon.stop() == 0


def test_subscribe_lagging(make_daemon):
    d = make_daemon(conf={"storage": {"synchronous": "normal"}})
    c = d.control_client(timeout=30)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    assert c.request({"cmd": "subscribe"})["ok"] is True
    # Big outcomes fill the buffers sooner; the lag is counted in outcomes.
    # How many the kernel's socket buffer holds varies: post until dropped.
    posted = 0
    while "fell more than" not in d.log():
        assert posted < 8000, "never lagging"
        post_many(d, 400, reference="r" * 2000)
        posted += 400
    other = d.ctl({"cmd": "ping"})        # the daemon serves others meanwhile
    assert other["ok"] is True
    lines = []
    while True:
        line = c.recv_line(timeout=10)
        if line is None:
            break
        lines.append(json.loads(line))
    c.close()
    assert lines[-1]["ok"] is False and lines[-1]["error"] == "lagging"
    seqs = [o["seq"] for o in lines[:-1]]
    assert seqs == list(range(1, len(seqs) + 1))     # whole lines, in order
    assert len(seqs) < posted
    wait_until(lambda: stats_clients(d) == 1, what="the lagging client to go")
    assert d.stop() == 0


# ---------------------------------------------------------------------------
# Misbehaving clients

def test_bad_lines_keep_the_connection(daemon):
    with daemon.control_client() as c:
        for bad in [b"garbage\n", b"[1,2]\n", b"\"ping\"\n", b"{\"cmd\":\"ping\"} x\n",
                    b"{\"cmd\":5}\n", b"{}\n", b"{\"cmd\":\"ping\"\n",
                    b"{\"cmd\":\"ping\"}\x00{}\n"]:
            c.send(bad)
            r = c.recv()
            assert r["ok"] is False and r["error"] == "bad_request" and r["message"], bad
        r = c.request({"cmd": "launch", "id": 1})
        assert r["ok"] is False and r["error"] == "unknown_command" and r["id"] == 1
        # Blank lines ask nothing; CRLF is fine.
        c.send(b"\n  \n{\"cmd\":\"ping\",\"id\":2}\r\n")
        assert c.recv() == {"ok": True, "id": 2, "version": c.request({"cmd": "ping"})["version"]}
        # Pipelined requests are answered in order.
        c.send(b"".join(json.dumps({"cmd": "ping", "id": i}).encode() + b"\n"
                        for i in range(100)))
        assert [c.recv()["id"] for _ in range(100)] == list(range(100))
    assert daemon.stop() == 0


def test_oversized_line_closes_only_that_connection(daemon):
    with daemon.control_client() as good, daemon.control_client() as bad:
        assert good.request({"cmd": "ping"})["ok"] is True
        # A line of exactly 64 KiB is still a line.
        pad = 65536 - len(b'{"cmd":"ping","pad":""}')
        r = bad.request(b'{"cmd":"ping","pad":"' + b"x" * pad + b'"}\n')
        assert r["ok"] is True
        try:
            bad.send(b"{" + b"x" * 70000)
        except (BrokenPipeError, ConnectionResetError):
            pass
        lines = []
        while True:
            try:
                line = bad.recv_line(timeout=5)
            except ConnectionResetError:
                break
            if line is None:
                break
            lines.append(json.loads(line))
        assert lines == [] or lines[0]["error"] == "bad_request"
        assert good.request({"cmd": "ping"})["ok"] is True
    assert daemon.stop() == 0


def test_half_closed_client_gets_its_answers(daemon):
    p = pid()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(daemon.control)
    s.sendall(b'{"cmd":"ping","id":1}\n{"cmd":"wait","paymentId":"%s","timeout":0.3}' %
              p.encode())
    s.shutdown(socket.SHUT_WR)         # the last line has no newline: still a request
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    lines = [json.loads(x) for x in data.splitlines()]
    assert lines[0]["id"] == 1 and lines[1]["error"] == "timeout"
    assert daemon.stop() == 0



def test_pipelined_blocking_requests_do_not_stall(daemon):
    """Lines sent in one write behind blocking requests (waits that time out, tracks the
    writer commits) are held until each is answered, then read: every answer comes, in
    order, each with its own id, and none waits for anything but its own work."""
    reqs = [{"cmd": "wait", "paymentId": pid(), "timeout": 0.1, "id": i} for i in range(5)]
    reqs += [{"cmd": "track", "paymentId": pid(), "id": 5 + i} for i in range(20)]
    reqs.append({"cmd": "ping", "id": 25})
    with daemon.control_client(timeout=30) as c:
        t0 = time.time()
        c.send(b"".join(json.dumps(r).encode() + b"\n" for r in reqs))
        answers = [c.recv() for _ in reqs]
        took = time.time() - t0
    assert [a["id"] for a in answers] == list(range(26))
    assert all(a["error"] == "timeout" for a in answers[:5])
    assert all(a["ok"] is True and a["payment"]["tracked"] is True for a in answers[5:25])
    assert took < 5, took
    assert daemon.stop() == 0

def test_many_clients_at_once(daemon):
    clients = [daemon.control_client() for _ in range(200)]
    for i, c in enumerate(clients):
        c.send({"cmd": "ping", "id": i})
    for i, c in enumerate(clients):
        assert c.recv()["id"] == i
    assert stats_clients(daemon) == 201
    for c in clients:
        c.close()
    assert daemon.stop() == 0


# ---------------------------------------------------------------------------
# The socket file

def test_socket_mode_and_removed_at_stop(make_daemon):
    d = make_daemon()
    st = os.stat(d.control)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
    assert d.stop() == 0
    assert not os.path.exists(d.control)
    d2 = make_daemon("d2", conf={"control": {"mode": "0600"}})
    assert stat.S_IMODE(os.stat(d2.control).st_mode) == 0o600
    assert d2.stop() == 0


def test_stale_socket_is_removed(make_daemon):
    d = make_daemon(start=False)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(d.control)                  # a socket file nobody listens on: a crash's
    s.close()
    assert os.path.exists(d.control)
    d.start()
    assert d.ctl({"cmd": "ping"})["ok"] is True
    assert "stale" in d.log()
    # The same after a real crash.
    d.kill()
    assert os.path.exists(d.control)
    d.start()
    assert d.ctl({"cmd": "ping"})["ok"] is True
    assert d.stop() == 0


def test_live_daemon_on_the_socket_is_an_error(make_daemon):
    a = make_daemon("a")
    b = make_daemon("b", start=False, conf={"control": {"socket": a.control}})
    b.start(wait=False)
    assert b.proc.wait(timeout=15) != 0
    assert "another process is listening" in b.log()
    # The first one is unharmed.
    assert a.ctl({"cmd": "ping"})["ok"] is True
    assert os.path.exists(a.control)
    assert a.stop() == 0


def test_socket_path_problems(make_daemon, tmp_path):
    d = make_daemon(start=False, conf={"control": {"socket": str(tmp_path / "no" / "c.sock")}})
    r = run_webhookd("-c", d.conf_path)
    assert r.returncode == 78 and "does not exist" in r.stderr
    r = run_webhookd("-t", "-c", d.conf_path)
    assert r.returncode == 78 and "does not exist" in r.stderr
    # A file that is not a socket is never removed.
    reg = tmp_path / "regular"
    reg.write_text("keep me")
    d2 = make_daemon("d2", start=False, conf={"control": {"socket": str(reg)}})
    r = run_webhookd("-c", d2.conf_path, env=d2.pg_env)
    assert r.returncode != 0 and "not a socket" in r.stderr
    assert reg.read_text() == "keep me"


def test_control_socket_unset(make_daemon):
    d = make_daemon(conf={"control": {"socket": ""}})
    assert not os.path.exists(d.control)
    post(d, "completed", pid())
    assert d.stop() == 0


# ---------------------------------------------------------------------------
# vinrctl

def test_vinrctl_commands(daemon):
    p = pid()
    r = daemon.vinrctl("ping")
    assert r.returncode == 0 and json.loads(r.stdout)["ok"] is True and r.stderr == ""
    assert r.stdout.count("\n") == 1
    r = daemon.vinrctl("get", p)
    assert r.returncode == 1 and json.loads(r.stdout)["error"] == "not_found"
    r = daemon.vinrctl("track", p, "--terminal", "term_1", "--reference=order_7",
                       "--amount", "990", "--currency", "USD")
    assert r.returncode == 0, r.stderr
    pay = json.loads(r.stdout)["payment"]
    assert (pay["terminalId"], pay["reference"], pay["amount"], pay["currency"],
            pay["tracked"]) == ("term_1", "order_7", 990, "USD", True)
    r = daemon.vinrctl("get", p)
    assert r.returncode == 0 and json.loads(r.stdout)["payment"]["paymentId"] == p
    r = daemon.vinrctl("find", "order_7")
    assert r.returncode == 0 and [x["paymentId"] for x in json.loads(r.stdout)["payments"]] == [p]
    r = daemon.vinrctl("pending", "--older-than", "0")
    assert r.returncode == 0 and p in r.stdout
    r = daemon.vinrctl("pending", "--older-than", "3600")
    assert r.returncode == 0 and json.loads(r.stdout)["payments"] == []
    r = daemon.vinrctl("wait", p, "--timeout", "0.3")
    assert r.returncode == 3 and json.loads(r.stdout)["error"] == "timeout"
    post(daemon, "completed", p)
    r = daemon.vinrctl("wait", p)
    assert r.returncode == 0 and json.loads(r.stdout)["payment"]["status"] == "completed"
    r = daemon.vinrctl("stats")
    assert r.returncode == 0 and json.loads(r.stdout)["stats"]["lastSeq"] == 1
    r = daemon.vinrctl("dead")
    assert r.returncode == 0 and json.loads(r.stdout) == {"ok": True, "dead": []}
    r = daemon.vinrctl("replay", "hook", "1")
    assert r.returncode == 1 and json.loads(r.stdout)["error"] == "not_found"
    r = daemon.vinrctl("reconcile", p)
    assert r.returncode == 1 and json.loads(r.stdout)["error"] == "reconciler_disabled"
    r = daemon.vinrctl("wait", p, "--timeout", "4000")
    assert r.returncode == 1 and json.loads(r.stdout)["error"] == "bad_request"
    add_dead_letter(daemon, "hook", 1)
    r = daemon.vinrctl("dead")
    assert json.loads(r.stdout)["dead"][0]["seq"] == 1
    r = daemon.vinrctl("replay", "hook", "1")
    assert r.returncode == 0 and json.loads(r.stdout) == {"ok": True}
    assert daemon.stop() == 0


def test_vinrctl_wait_returns_on_webhook(daemon):
    p = pid()
    proc = subprocess.Popen([VINRCTL, "-s", daemon.control, "wait", p, "--timeout", "30"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: stats_clients(daemon) == 2, what="vinrctl to connect")
    post(daemon, "failed", p, declineCode="insufficient_funds")
    t0 = time.time()
    out, err = proc.communicate(timeout=10)
    assert time.time() - t0 < 1
    assert proc.returncode == 0, err
    pay = json.loads(out)["payment"]
    assert pay["status"] == "failed" and pay["declineCode"] == "insufficient_funds"
    assert daemon.stop() == 0


def test_vinrctl_tail(daemon):
    for _ in range(3):
        post(daemon, "completed", pid())
    proc = subprocess.Popen([VINRCTL, "-s", daemon.control, "tail", "--since", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Backlog first, one outcome per line, flushed as it comes.
        assert json.loads(proc.stdout.readline())["seq"] == 2
        assert json.loads(proc.stdout.readline())["seq"] == 3
        post(daemon, "cancelled", pid())
        line = json.loads(proc.stdout.readline())
        assert line["seq"] == 4 and line["status"] == "cancelled" and "ok" not in line
    finally:
        proc.terminate()
        proc.wait(timeout=5)
    # Without --since: only new ones (post until the subscription has begun).
    proc = subprocess.Popen([VINRCTL, "-s", daemon.control, "tail"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(50):
            post(daemon, "completed", pid())
            if select.select([proc.stdout], [], [], 0.2)[0]:
                break
        first = json.loads(proc.stdout.readline())["seq"]
        assert first >= 5
        post(daemon, "completed", pid())
        assert json.loads(proc.stdout.readline())["seq"] == first + 1
    finally:
        proc.terminate()
        proc.wait(timeout=5)
    # The daemon stopping ends tail with status 2.
    last = daemon.ctl({"cmd": "stats"})["stats"]["lastSeq"]
    proc = subprocess.Popen([VINRCTL, "-s", daemon.control, "tail", "--since", str(last)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    post(daemon, "completed", pid())
    assert json.loads(proc.stdout.readline())["seq"] == last + 1   # subscribed for sure
    assert daemon.stop() == 0
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 2 and out == "" and "closed" in err
    r = run_vinrctl("tail", "--since", "x", socket_path=daemon.control)
    assert r.returncode == 2


def test_vinrctl_usage_and_connection(daemon, tmp_path):
    ctl = daemon.control
    for args in [[], ["frobnicate"], ["get"], ["get", "a", "b"], ["wait", "p", "--timeout"],
                 ["wait", "p", "--timeout", "soon"], ["track", "p", "--amount", "1.5"],
                 ["track", "p", "--colour", "red"], ["replay", "hook"],
                 ["replay", "hook", "x"], ["pending", "--older-than", "-1"], ["-x", "ping"]]:
        r = run_vinrctl(*args, socket_path=ctl)
        assert r.returncode == 2, args
        assert r.stdout == "" and "usage" in r.stderr, args
    r = run_vinrctl("ping", socket_path=str(tmp_path / "nothing.sock"))
    assert r.returncode == 2 and r.stdout == "" and "cannot connect" in r.stderr
    # The socket from the environment, and -s over it.
    r = run_vinrctl("ping", env={"VINR_CONTROL_SOCKET": ctl})
    assert r.returncode == 0 and json.loads(r.stdout)["ok"] is True
    r = run_vinrctl("-s", ctl, "ping", env={"VINR_CONTROL_SOCKET": "/nonexistent"})
    assert r.returncode == 0
    r = run_vinrctl("ping", env={"VINR_CONTROL_SOCKET": str(tmp_path / "x.sock")})
    assert r.returncode == 2 and "x.sock" in r.stderr
    # Help for everything, on stdout, status 0.
    r = run_vinrctl("--help")
    assert r.returncode == 0 and "usage" in r.stdout
    cmds = ["ping", "get", "find", "track", "wait", "pending", "tail", "reconcile", "stats",
            "dead", "replay"]
    for c in cmds:
        assert c in r.stdout
        h1, h2 = run_vinrctl("help", c), run_vinrctl(c, "--help")
        assert h1.returncode == 0 and h2.returncode == 0 and h1.stdout == h2.stdout
        assert ("vinrctl [-s SOCKET] " + c) in h1.stdout
    assert "--terminal" in run_vinrctl("help", "track").stdout
    assert run_vinrctl("help", "nope").returncode == 2
    assert daemon.stop() == 0
