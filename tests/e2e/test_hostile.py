"""Hostile or broken clients (SPEC §1.4, §4; issue 12): slow clients, floods,
smuggling, idle control clients.  Each test names the defect it guards."""
import json
import os
import socket
import threading
import time

import pytest

from conftest import make_event, raw_http, sign_vinr


def _signed_request(d, body, extra=b""):
    head = ("POST /webhooks/vinr HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Vinr-Signature: %s\r\n" % sign_vinr(body)).encode()
    return head + extra


def _read_all(s, timeout=5):
    s.settimeout(timeout)
    buf = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            buf += b
    except (socket.timeout, ConnectionResetError):
        pass
    return buf


def test_content_length_and_transfer_encoding_refused_and_closed(daemon):
    """CL + TE: refused, connection closed, the smuggled request not served."""
    body = json.dumps(make_event()).encode()
    smuggled = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    req = _signed_request(daemon, body, b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n"
                          % len(chunked)) + chunked + smuggled
    s = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
    s.sendall(req)
    data = _read_all(s)
    s.close()
    assert data.startswith(b"HTTP/1.1 400"), data
    assert data.count(b"HTTP/1.1 ") == 1, data  # nothing served after it
    assert b'{"error":"bad_request"}' in data
    assert b"connection: close" in data.lower()
    assert daemon.query("SELECT count(*) FROM events") == [(0,)]


def test_two_different_content_lengths_refused(daemon):
    body = json.dumps(make_event()).encode()
    req = _signed_request(daemon, body, b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n"
                          % (len(body), len(body) - 1)) + body
    s = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
    s.sendall(req)
    data = _read_all(s)
    s.close()
    assert data.startswith(b"HTTP/1.1 400"), data
    assert b"application/json" in data
    assert daemon.query("SELECT count(*) FROM events") == [(0,)]


def _slowloris(port, n, stop, opened):
    socks = []
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.sendall(b"POST /webhooks/vinr HTTP/1.1\r\n")
            socks.append(s)
        except OSError:
            pass
    opened.set()
    while not stop.is_set():
        for s in list(socks):
            try:
                s.sendall(b"X")
            except OSError:
                socks.remove(s)
        time.sleep(0.5)
    for s in socks:
        s.close()
    return socks


def test_slowloris_does_not_starve_a_valid_delivery(make_daemon):
    """Connections that drip headers fill max_connections; the whole-request
    deadline closes them, so a valid delivery gets through within about
    request_timeout instead of never."""
    d = make_daemon(conf={"http": {"max_connections": "40", "request_timeout": "2"}})
    stop, opened = threading.Event(), threading.Event()
    t = threading.Thread(target=_slowloris, args=(d.port, 60, stop, opened))
    t.start()
    try:
        opened.wait(10)
        time.sleep(0.3)
        t0 = time.monotonic()
        st, body = None, None
        while time.monotonic() - t0 < 15:
            try:
                st, body = d.post_event(make_event(), headers=None)
                break
            except (OSError, ConnectionError, Exception):
                time.sleep(0.1)
        latency = time.monotonic() - t0
    finally:
        stop.set()
        t.join()
    print("valid-request latency under slowloris: %.2f s" % latency)
    assert st == 200, (st, body)
    assert latency < 6, latency


def test_slow_request_closed_after_request_timeout_from_first_byte(make_daemon):
    d = make_daemon(conf={"http": {"request_timeout": "2"}})
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s.sendall(b"POST /webhooks/vinr HTTP/1.1\r\n")
    t0 = time.monotonic()
    closed = None
    while time.monotonic() - t0 < 8:
        try:
            s.sendall(b"X")
            s.settimeout(0.4)
            if s.recv(1024) == b"":
                closed = time.monotonic() - t0
                break
        except socket.timeout:
            continue
        except OSError:
            closed = time.monotonic() - t0
            break
    s.close()
    assert closed is not None and closed < 4, closed


def _alive(s):
    """The server has not closed s (nothing to read yet)."""
    s.setblocking(False)
    try:
        return s.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        s.settimeout(5)


def test_per_ip_connections(make_daemon):
    d = make_daemon(conf={"http": {"per_ip_connections": "3"}})
    time.sleep(0.5)     # wait_ready's own connection is gone
    socks = []
    deadline = time.time() + 10
    while len(socks) < 3:
        assert time.time() < deadline
        s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        socks.append(s)
        time.sleep(0.3)
        socks = [x for x in socks if _alive(x)]
    extra = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _read_all(extra, 3) == b""  # closed without an answer
    extra.close()
    d.wait_log("has 3 connections open already", timeout=5)
    for s in socks:
        s.close()
    time.sleep(0.3)
    assert d.request("GET", "/healthz")[0] == 200


def test_rejection_log_is_rate_limited(daemon):
    """A flood of bad signatures: a bounded number of log lines."""
    body = json.dumps(make_event()).encode()
    before = daemon.log().count("\n")
    n = 2000
    s = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
    req = (b"POST /webhooks/vinr HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Vinr-Signature: t=%d,v1=00\r\nContent-Length: %d\r\n\r\n" % (int(time.time()), len(body))
           + body)
    done = 0
    for _ in range(n // 50):
        s.sendall(req * 50)
        got = b""
        while got.count(b"HTTP/1.1 401") < 50:
            got += s.recv(65536)
        done += 50
    s.close()
    time.sleep(0.2)
    lines = daemon.log().count("\n") - before
    print("log lines for %d bad requests: %d" % (done, lines))
    assert lines <= 4, daemon.log()
    assert "invalid_signature" in daemon.log()


@pytest.mark.parametrize("raw,status", [
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad header\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 70000 + b"\r\n\r\n", 431),
    (b"POST /webhooks/vinr HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
     b"Content-Type: application/json\r\n\r\nzz\r\n", 400),
], ids=["malformed_header", "header_too_big", "bad_chunk"])
def test_libmicrohttpd_errors_are_json(daemon, raw, status):
    """libmicrohttpd's own error pages were HTML; in its own words in the log."""
    st, h, body = raw_http(daemon.port, raw)
    assert st == status
    assert h.get("content-type") == "application/json"
    assert "error" in json.loads(body)
    time.sleep(0.2)
    assert "<html>" not in daemon.log()


def test_header_block_limit(daemon):
    """Each connection's buffer is 16 KiB: a webhook with a 12 KiB header
    block is stored; one of 20 KiB is 431 and stores nothing."""
    ev = make_event("completed")
    st, body = daemon.post_event(ev, headers={"X-Big": "a" * 12000})
    assert (st, body["duplicate"]) == (200, False)
    big = make_event("completed")
    data = json.dumps(big).encode()
    raw = (b"POST /webhooks/vinr HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Vinr-Signature: " + sign_vinr(data).encode() + b"\r\n"
           b"X-Big: " + b"a" * 20000 + b"\r\n"
           b"Content-Length: %d\r\n\r\n" % len(data)) + data
    st, h, body = raw_http(daemon.port, raw)
    assert st == 431 and json.loads(body) == {"error": "request_too_large"}
    ids = [r[0] for r in daemon.query("SELECT id FROM events")]
    assert ids == [ev["id"]]


def test_bind_failure_is_our_message(make_daemon):
    a = make_daemon("a")
    b = make_daemon("b", start=False, conf={"http": {"listen": "127.0.0.1:%d" % a.port}})
    b.start(wait=False)
    assert b.proc.wait(10) == 1
    log = b.log()
    assert "cannot listen on 127.0.0.1:%d" % a.port in log, log
    assert "Failed to bind" not in log, log


# ---------------------------------------------------------------------------
# The control socket

from conftest import ControlClient  # noqa: E402


def test_idle_control_clients_are_closed(make_daemon):
    """Clients that say nothing were kept forever: 512 of them locked POS
    apps out.  Now one idle for idle_timeout is closed; a wait or a
    subscription is not idle."""
    d = make_daemon(conf={"control": {"idle_timeout": "1"}})
    idle = ControlClient(d.control, timeout=5)
    waiting = ControlClient(d.control, timeout=10)
    waiting.send({"cmd": "wait", "paymentId": "tpay_x", "timeout": 3})
    sub = ControlClient(d.control, timeout=10)
    assert sub.request({"cmd": "subscribe"})["ok"] is True
    t0 = time.monotonic()
    assert idle.recv_line() is None            # closed by the daemon
    assert 0.8 < time.monotonic() - t0 < 3
    r = waiting.recv()                          # the wait ran its course
    assert r["error"] == "timeout"
    time.sleep(0.5)
    st, body = d.post_event(make_event("completed"))
    assert st == 200
    assert json.loads(sub.recv_line(timeout=5))["seq"] == 1   # still subscribed
    for c in (idle, waiting, sub):
        c.close()
    assert d.stop() == 0


def test_idle_clients_do_not_lock_out_a_pos(make_daemon):
    d = make_daemon(conf={"control": {"idle_timeout": "1"}})
    idle = []
    for _ in range(512):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(d.control)
        idle.append(s)
    time.sleep(1.5)
    t0 = time.monotonic()
    assert d.ctl({"cmd": "ping"}, timeout=5)["ok"] is True
    assert time.monotonic() - t0 < 3
    for s in idle:
        s.close()


def test_nul_escape_is_refused(daemon):
    """"a\\u0000b" was read as "a"."""
    with daemon.control_client() as c:
        r = c.request(b'{"cmd":"get","paymentId":"a\\u0000b","id":1}\n')
        assert r["ok"] is False and r["error"] == "bad_request"
        r = c.request(b'{"cmd":"get","paymentId":"a\\\\u0000b"}\n')   # backslash + text
        assert r["error"] == "not_found"
        r = c.request(b'{"cmd":"get","paymentId":"\xff\xfe"}\n')
        assert r["error"] == "bad_request"
        r = c.request({"cmd": "\u00e9" * 100})
        assert r["error"] == "unknown_command"
        r["message"].encode("utf-8")
    assert daemon.stop() == 0


def test_invalid_utf8_event_refused(daemon):
    """Invalid UTF-8 in a signed event reached the event log and control
    answers raw; it is refused as invalid_json (RFC 8259 §8.1)."""
    pid = "tpay_utf8"
    body = json.dumps(make_event("completed", payment_id=pid,
                                 reference="REF")).encode().replace(b"REF", b"R\xff\xfeF")
    st, _, parsed = daemon.post_raw(body, daemon.signed_headers(body))
    assert st == 400 and parsed == {"error": "invalid_json"}
    good = json.dumps(make_event("completed", payment_id=pid, reference="R\u00e9F")).encode()
    st, _, _ = daemon.post_raw(good, daemon.signed_headers(good))
    assert st == 200
    daemon.wait_event_log(1)
    daemon.event_log_bytes().decode("utf-8")           # strict: raises if invalid
    assert daemon.ctl({"cmd": "get", "paymentId": pid})["payment"]["reference"] == "R\u00e9F"
    assert daemon.stop() == 0


def _preload_outcomes(d, n, size=2000):
    """n outcomes written straight into the database of a stopped daemon."""
    import sqlite3
    c = sqlite3.connect(d.db_path)
    with c:
        for seq in range(1, n + 1):
            o = {"seq": seq, "type": "payment.completed", "paymentId": "tpay_%d" % seq,
                 "reference": "r" * size, "status": "completed"}
            c.execute("INSERT INTO outcomes (seq, payment_id, status, json, recorded_at) "
                      "VALUES (?, ?, ?, ?, ?)", (seq, o["paymentId"], "completed",
                                                 json.dumps(o), "2026-01-01T00:00:00.000Z"))
    c.close()


def _rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_never_reading_backlog_subscribers_get_lagging(make_daemon):
    """A subscriber that never caught up was never sent lagging; 400 of them
    not reading took RSS from 18 to 76 MB."""
    d = make_daemon(conf={"storage": {"event_log": ""}})
    assert d.stop() == 0
    _preload_outcomes(d, 3000)
    d.start()
    base = _rss_kib(d.proc.pid)
    subs = []
    for _ in range(400):
        c = ControlClient(d.control, timeout=30)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.send({"cmd": "subscribe", "since": 0})
        subs.append(c)
    peak = base
    t0 = time.monotonic()
    while time.monotonic() - t0 < 20 and "fell more than" not in d.log():
        peak = max(peak, _rss_kib(d.proc.pid))
        time.sleep(0.2)
    time.sleep(1)
    after = _rss_kib(d.proc.pid)
    print("RSS with 400 non-reading subscribers: base %d KiB, peak %d KiB, after %d KiB"
          % (base, peak, after))
    # ASan's shadow memory and quarantine make RSS meaningless under
    # `make asan`: the bound is checked on the normal build.
    if not os.environ.get("ASAN_OPTIONS"):
        assert peak - base < 16 * 1024
    # The first reads show whole lines in order, then lagging and EOF.
    c = subs[0]
    lines = []
    while True:
        line = c.recv_line(timeout=10)
        if line is None:
            break
        lines.append(json.loads(line))
    assert lines[0]["subscribed"] is True
    assert lines[-1]["error"] == "lagging"
    seqs = [o["seq"] for o in lines[1:-1]]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) < 3000
    for c in subs:
        c.close()
    assert d.ctl({"cmd": "ping"})["ok"] is True


# ---------------------------------------------------------------------------
# Configuration errors (SPEC §6)

from conftest import run_webhookd, write_conf  # noqa: E402


def _conf(tmp_path, **over):
    sf = tmp_path / "webhook-secret"
    sf.write_text("whsec_test_secret_0123456789\n")
    s = {"http": {"listen": "127.0.0.1:1"},
         "webhook": {"secret_file": str(sf)},
         "storage": {"database": str(tmp_path / "v.db"), "event_log": str(tmp_path / "e.log")},
         "control": {"socket": str(tmp_path / "c.sock")}}
    for sec, kv in over.items():
        s.setdefault(sec, {}).update(kv)
    path = str(tmp_path / "c.conf")
    write_conf(path, s)
    return path


SECRET_LIKE = "whsec_PASTEDxSECRETx0123456789"


@pytest.mark.parametrize("sec,key", [("webhook", "secret_file"),
                                     ("reconciler", "api_key_file"),
                                     ("webhook", "tolerance"),
                                     ("http", "max_body")])
def test_config_errors_never_echo_the_value(tmp_path, sec, key):
    path = _conf(tmp_path, **{sec: {key: SECRET_LIKE}})
    for args in (("-c", path), ("-t", "-c", path)):
        r = run_webhookd(*args)
        assert r.returncode == 78, r.stderr
        assert "[%s] %s" % (sec, key) in r.stderr, r.stderr
        assert "PASTED" not in r.stderr + r.stdout, r.stderr


def test_check_config_checks_the_hook(tmp_path):
    path = _conf(tmp_path, forward={"hook": str(tmp_path / "no-hook")})
    r = run_webhookd("-t", "-c", path)
    assert r.returncode == 78 and "[forward] hook: no such file" in r.stderr, r.stderr
    r = run_webhookd("-c", path)          # a real start: 78 too, not 1
    assert r.returncode == 78 and "[forward] hook: no such file" in r.stderr, r.stderr
    hook = tmp_path / "hook"
    hook.write_text("#!/bin/sh\nexit 0\n")
    hook.chmod(0o644)
    path = _conf(tmp_path, forward={"hook": str(hook)})
    r = run_webhookd("-t", "-c", path)
    assert r.returncode == 78 and "[forward] hook: not executable" in r.stderr, r.stderr
    hook.chmod(0o755)
    assert run_webhookd("-t", "-c", path).returncode == 0


def test_check_config_reports_every_problem(tmp_path):
    path = _conf(tmp_path, webhook={"tolerance": "forever"}, http={"max_body": "big"})
    r = run_webhookd("-t", "-c", path)
    assert r.returncode == 78
    assert "tolerance" in r.stderr and "max_body" in r.stderr, r.stderr
    path = _conf(tmp_path, forward={"hook": str(tmp_path / "nohook")},
                 webhook={"secret_file": str(tmp_path / "nosecret")},
                 storage={"database": str(tmp_path / "no" / "dir" / "v.db")})
    r = run_webhookd("-t", "-c", path)
    assert r.returncode == 78
    for want in ("[forward] hook: no such file", "[webhook] secret_file: no such file",
                 "[storage] database: its directory does not exist"):
        assert want in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 3


def test_keepalive_idle_is_not_request_time(make_daemon):
    """An idle keep-alive connection (nginx's upstream pool) is not a slow
    request: it is reused after more than request_timeout."""
    import http.client
    d = make_daemon(conf={"http": {"request_timeout": "1"}})
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=5)
    socks = []
    for _ in range(2):
        body = json.dumps(make_event()).encode()
        c.request("POST", "/webhooks/vinr", body, d.signed_headers(body))
        r = c.getresponse()
        r.read()
        assert r.status == 200 and r.getheader("connection", "").lower() != "close"
        socks.append(c.sock)
        time.sleep(2.5)
    assert socks[0] is socks[1]      # the same connection, reused
    c.close()
