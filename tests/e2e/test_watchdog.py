"""The watchdog pings only while every thread is alive (issue 6): a sink
stuck in write(2) stops them, and /healthz says why; once it moves again,
the pings come back."""
import json
import os
import socket
import threading
import time
import uuid

from conftest import make_event


def test_stuck_sink_stops_the_watchdog_pings(make_daemon, tmp_path):
    fifo = str(tmp_path / "events.fifo")
    os.mkfifo(fifo)
    # A reader that never reads: the daemon can open the pipe, and its
    # writes block once the pipe buffer (64 KiB) is full.
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    name = "vinr-wd-%s" % uuid.uuid4().hex
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(0.2)
    pings = []
    stop = threading.Event()

    def listen():
        while not stop.is_set():
            try:
                data = sock.recv(4096).decode()
            except socket.timeout:
                continue
            if "WATCHDOG=1" in data:
                pings.append(time.monotonic())

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    try:
        d = make_daemon(start=False, env={"NOTIFY_SOCKET": "@" + name,
                                          "WATCHDOG_USEC": "1000000"},
                        conf={"storage": {"event_log": fifo}})
        d.start()
        time.sleep(1.5)
        assert pings, "no WATCHDOG=1 while healthy"
        # About 300 outcome lines: far more than the pipe holds.
        for _ in range(300):
            assert d.post_event(make_event("completed", reference="x" * 200))[0] == 200
        # The sink thread is now blocked in write(2).  Within its 15 s
        # liveness window the pings stop, and /healthz names the sink.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if pings and time.monotonic() - pings[-1] > 3:
                break
            time.sleep(0.2)
        assert pings and time.monotonic() - pings[-1] > 3, "pings went on"
        st, _, body = d.request("GET", "/healthz")
        h = json.loads(body)
        assert st == 503 and "eventlog_stalled" in h["reasons"], h
        # Webhooks are still accepted meanwhile: ingest does not wait for sinks.
        assert d.post_event(make_event("completed"))[0] == 200

        # Drain the pipe: the sink moves, the pings come back.
        drained = threading.Event()

        def drain():
            while not drained.is_set():
                try:
                    if not os.read(reader, 65536):
                        time.sleep(0.05)
                except BlockingIOError:
                    time.sleep(0.05)
        dt = threading.Thread(target=drain, daemon=True)
        dt.start()
        n = len(pings)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(pings) == n:
            time.sleep(0.1)
        assert len(pings) > n, "pings did not come back"
        assert d.request("GET", "/healthz")[0] == 200
        assert d.stop() == 0
        drained.set()
    finally:
        stop.set()
        t.join()
        sock.close()
        os.close(reader)
