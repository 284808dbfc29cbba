#!/usr/bin/env python3
"""sinkbench.py - the sink side of `make bench` (tests/bench/run.sh).

    sinkbench.py consume SOCKET N TIMEOUT
        Listens on the Unix socket SOCKET as the POS app of [forward] socket
        would, reads lines as fast as it can until N lines have come (or
        TIMEOUT seconds pass), and reports the rate from the first line to
        the Nth.
    sinkbench.py subscribe CONTROL N TIMEOUT
        Subscribes on the control socket with since = 0 and reads N outcome
        lines: the time from the subscribe to the Nth line, and the longest
        pause between two reads that brought lines.
    sinkbench.py hookrate CONTROL TOTAL SECONDS
        Watches the hook sink's cursor (the stats command) until it reaches
        TOTAL or SECONDS pass: outcomes delivered per second.
    sinkbench.py latency PORT SECRET_FILE CONTROL EVENT_LOG N RATE
        Light load: N events (each a new payment, so each one an outcome), one
        at a time, RATE per second, on one keep-alive connection, while it
        subscribes on the control socket and tails the event log.  For each
        event: its 200 (which the daemon sends only after COMMIT: the
        earliest moment the outside world knows it is committed) to its
        event-log line, and to its subscriber line.  A line that beats the
        200 counts as 0.

Each prints human lines, then one "RESULT key=value ..." line.  Exit 0 when
it saw everything it waited for, 1 when not.
"""
import hashlib
import hmac
import json
import os
import socket
import sys
import threading
import time


def result(**kv):
    print("RESULT " + " ".join("%s=%s" % (k, v) for k, v in kv.items()), flush=True)


def pct(values, p):
    if not values:
        return 0.0
    v = sorted(values)
    i = min(len(v) - 1, int(p / 100.0 * len(v)))
    return v[i]


def consume(path, n, timeout):
    """Reads lines as fast as it can from the daemon's socket sink."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(4)
    ls.settimeout(timeout)
    deadline = time.monotonic() + timeout
    lines = 0
    first = last = None
    gap = 0.0
    try:
        while lines < n and time.monotonic() < deadline:
            c, _ = ls.accept()
            c.settimeout(max(0.1, deadline - time.monotonic()))
            while lines < n:
                try:
                    b = c.recv(1 << 20)
                except socket.timeout:
                    break
                if not b:
                    break
                t = time.monotonic()
                k = b.count(b"\n")
                if k:
                    if first is None:
                        first = t
                    elif last is not None:
                        gap = max(gap, t - last)
                    last = t
                    lines += k
            c.close()
    except socket.timeout:
        pass
    secs = (last - first) if first is not None and last is not None else 0.0
    rate = lines / secs if secs > 0 else 0.0
    print("consume: %d lines in %.3f s: %.0f lines/s, longest pause %.1f ms" %
          (lines, secs, rate, gap * 1000))
    result(lines=lines, secs="%.3f" % secs, rate="%.0f" % rate, max_gap_ms="%.1f" % (gap * 1000))
    return 0 if lines >= n else 1


def control_connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def control_call(s, buf, req):
    """One request, one answer line; buf holds what came after it."""
    s.sendall((json.dumps(req) + "\n").encode())
    while b"\n" not in buf[0]:
        b = s.recv(65536)
        if not b:
            raise EOFError("control socket closed")
        buf[0] += b
    line, buf[0] = buf[0].split(b"\n", 1)
    return json.loads(line)


def subscribe(path, n, timeout):
    """A subscriber catching up a backlog from seq 0."""
    s = control_connect(path)
    buf = [b""]
    t0 = time.monotonic()
    ans = control_call(s, buf, {"cmd": "subscribe", "since": 0})
    if not ans.get("ok"):
        print("subscribe: %s" % ans)
        result(lines=0, secs=0, max_gap_ms=0, first_ms=0)
        return 1
    lines = buf[0].count(b"\n")
    last = t0 if lines == 0 else time.monotonic()
    first_ms = (last - t0) * 1000 if lines else None
    gap = 0.0
    s.settimeout(0.5)
    deadline = t0 + timeout
    while lines < n and time.monotonic() < deadline:
        try:
            b = s.recv(65536)	# what a POS app's read loop would ask for
        except socket.timeout:
            continue
        if not b:
            break
        k = b.count(b"\n")
        if k:
            t = time.monotonic()
            if first_ms is None:
                first_ms = (t - t0) * 1000
            gap = max(gap, t - last)
            last = t
            lines += k
    s.close()
    secs = last - t0
    print("subscribe: %d lines in %.3f s (first after %.1f ms), longest pause %.1f ms" %
          (lines, secs, first_ms or 0, gap * 1000))
    result(lines=lines, secs="%.3f" % secs, max_gap_ms="%.1f" % (gap * 1000),
           first_ms="%.1f" % (first_ms or 0))
    return 0 if lines >= n else 1


def hook_cursor(s, buf):
    st = control_call(s, buf, {"cmd": "stats"})["stats"]
    return int(st["sinks"]["hook"]["cursor"])


def hookrate(path, total, secs):
    """How fast the hook sink's cursor moves (events = all: one run per outcome)."""
    s = control_connect(path)
    buf = [b""]
    c0 = hook_cursor(s, buf)
    t0 = time.monotonic()
    c, t = c0, t0
    while c < total and t - t0 < secs:
        time.sleep(0.05)
        c = hook_cursor(s, buf)
        t = time.monotonic()
    s.close()
    rate = (c - c0) / (t - t0) if t > t0 else 0.0
    print("hookrate: cursor %d -> %d in %.2f s: %.1f runs/s" % (c0, c, t - t0, rate))
    result(delivered=c - c0, secs="%.3f" % (t - t0), rate="%.1f" % rate, cursor=c)
    return 0 if c > c0 else 1


def read_secret(path):
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                return line
    raise SystemExit("no secret in %s" % path)


BODY = ('{"id":"%(eid)s","object":"event","type":"terminal_payment.pending",'
        '"createdAt":"2026-06-11T09:00:12Z","livemode":false,"data":{"object":{'
        '"id":"%(pid)s","object":"terminal_payment","terminalId":"term_01HZ5QXYZ01",'
        '"amount":2500,"currency":"USD","reference":"order_%(pid)s","status":"pending",'
        '"captureMethod":"automatic","entryMethod":"contactless","last4":"4242",'
        '"brand":"visa","createdAt":"2026-06-11T09:00:10Z"}}}')


class Watcher:
    """Arrival times of lines by eventId, from a subscriber or the event log."""

    def __init__(self):
        self.seen = {}
        self.lock = threading.Lock()
        self.stop = False

    def lines(self, data, t):
        for line in data.split(b"\n"):
            if not line:
                continue
            try:
                eid = json.loads(line).get("eventId")
            except ValueError:
                continue
            if eid is not None:
                with self.lock:
                    self.seen.setdefault(eid, t)


def watch_subscriber(s, w, buf):
    s.settimeout(0.2)
    rest = buf
    while not w.stop:
        try:
            b = s.recv(1 << 16)
        except socket.timeout:
            continue
        if not b:
            return
        t = time.monotonic()
        rest += b
        done, _, rest = rest.rpartition(b"\n")
        w.lines(done, t)


def watch_log(path, w):
    """Tails the event log every 0.5 ms (the resolution of this figure)."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        rest = b""
        while not w.stop:
            b = f.read()
            if not b:
                time.sleep(0.0005)
                continue
            t = time.monotonic()
            rest += b
            done, _, rest = rest.rpartition(b"\n")
            w.lines(done, t)


def http_post(conn, port, body, secret):
    ts = str(int(time.time()))
    mac = hmac.new(secret.encode(), (ts + "." + body).encode(), hashlib.sha256).hexdigest()
    req = ("POST /webhooks/vinr HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
           "Content-Type: application/json\r\nVinr-Signature: t=%s,v1=%s\r\n"
           "Content-Length: %d\r\n\r\n%s" % (port, ts, mac, len(body), body)).encode()
    conn.sendall(req)
    data = b""
    while b"\r\n\r\n" not in data:
        b = conn.recv(65536)
        if not b:
            raise EOFError("HTTP connection closed")
        data += b
    head, _, rest = data.partition(b"\r\n\r\n")
    clen = 0
    for h in head.split(b"\r\n")[1:]:
        k, _, v = h.partition(b":")
        if k.strip().lower() == b"content-length":
            clen = int(v)
    while len(rest) < clen:
        rest += conn.recv(65536)
    return int(head.split()[1])


def latency(port, secret_file, control, event_log, n, rate):
    secret = read_secret(secret_file)
    run = "%x%x" % (int(time.time()) & 0xffffff, os.getpid() & 0xffff)
    sub, logw = Watcher(), Watcher()
    s = control_connect(control)
    buf = [b""]
    ans = control_call(s, buf, {"cmd": "subscribe"})
    if not ans.get("ok"):
        raise SystemExit("subscribe: %s" % ans)
    ts = [threading.Thread(target=watch_subscriber, args=(s, sub, buf[0])),
          threading.Thread(target=watch_log, args=(event_log, logw))]
    for t in ts:
        t.start()
    conn = socket.create_connection(("127.0.0.1", port))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    acked, rtt = {}, []
    t_next = time.monotonic()
    bad = 0
    for i in range(n):
        eid = "evt_lat_%s_%06d" % (run, i)
        body = BODY % {"eid": eid, "pid": "tpay_lat_%s_%06d" % (run, i)}
        t0 = time.monotonic()
        st = http_post(conn, port, body, secret)
        t1 = time.monotonic()
        if st != 200:
            bad += 1
            continue
        acked[eid] = t1
        rtt.append((t1 - t0) * 1000)
        t_next += 1.0 / rate
        time.sleep(max(0.0, t_next - time.monotonic()))
    conn.close()
    t_end = time.monotonic() + 3
    while time.monotonic() < t_end:
        with sub.lock, logw.lock:
            if all(e in sub.seen and e in logw.seen for e in acked):
                break
        time.sleep(0.01)
    sub.stop = logw.stop = True
    for t in ts:
        t.join()
    s.close()

    def lat(w):
        v = [max(0.0, (w.seen[e] - acked[e]) * 1000) for e in acked if e in w.seen]
        return v, sum(1 for e in acked if e not in w.seen)
    lv, lmiss = lat(logw)
    sv, smiss = lat(sub)
    print("latency: %d events at %d/s; 200 round trip p50 %.2f p99 %.2f ms" %
          (len(acked), rate, pct(rtt, 50), pct(rtt, 99)))
    print("  200 -> event-log line:  p50 %.2f  p90 %.2f  p99 %.2f  max %.2f ms (%d missing)" %
          (pct(lv, 50), pct(lv, 90), pct(lv, 99), max(lv or [0]), lmiss))
    print("  200 -> subscriber line: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f ms (%d missing)" %
          (pct(sv, 50), pct(sv, 90), pct(sv, 99), max(sv or [0]), smiss))
    result(events=len(acked), http_err=bad, rtt_p50="%.2f" % pct(rtt, 50),
           rtt_p99="%.2f" % pct(rtt, 99),
           log_p50="%.2f" % pct(lv, 50), log_p99="%.2f" % pct(lv, 99),
           log_max="%.2f" % max(lv or [0]), log_missing=lmiss,
           sub_p50="%.2f" % pct(sv, 50), sub_p99="%.2f" % pct(sv, 99),
           sub_max="%.2f" % max(sv or [0]), sub_missing=smiss)
    return 0 if bad == 0 and lmiss == 0 and smiss == 0 and acked else 1


def main(argv):
    cmds = {
        "consume": (consume, (str, int, float)),
        "subscribe": (subscribe, (str, int, float)),
        "hookrate": (hookrate, (str, int, float)),
        "latency": (latency, (int, str, str, str, int, float)),
    }
    if len(argv) < 2 or argv[1] not in cmds or len(argv) - 2 != len(cmds[argv[1]][1]):
        sys.stderr.write(__doc__)
        return 2
    fn, types = cmds[argv[1]]
    return fn(*[t(a) for t, a in zip(types, argv[2:])])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
