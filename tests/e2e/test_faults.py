"""Crashes and failures (issue 12), sized for CI: a hook dies with its
daemon, a huge field cannot wedge the hook, an execve failure is reported as
it is; I/O errors injected under SQLite and the event log; the per-request
storage deadline; a bounded WAL; a real full disk; SIGKILL cycles under load
with every sink."""
import json
import os
import signal
import time

from conftest import make_event, write_conf
from test_sinks import HookDir, hook_conf, process_gone, wait_for


def test_hook_dies_with_a_sigkilled_daemon(make_daemon, tmp_path):
    """A hook outlived a SIGKILLed daemon, and the restarted daemon ran the
    same seq alongside it."""
    hook = HookDir(tmp_path, 'echo $$ > "$D/pid.$N"; sleep 30; ok')
    d = make_daemon(conf=hook_conf(hook))
    assert d.post_event(make_event("completed"))[0] == 200
    wait_for(lambda: hook.read("pid.1").strip(), what="the hook to run")
    pid = int(hook.read("pid.1"))
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    wait_for(lambda: process_gone(pid), timeout=3, what="the hook to die with the daemon")
    d.start()
    wait_for(lambda: hook.read("pid.2").strip(), what="the hook to run again")
    runs = hook.runs()
    assert [r[0] for r in runs] == [1, 1]


def test_huge_field_does_not_wedge_the_hook(make_daemon, tmp_path):
    """A 200 KiB reference made execve fail with E2BIG ("not executable?")
    and blocked every later outcome through 12 retries."""
    hook = HookDir(tmp_path, 'printf %s "$VINR_REFERENCE" > "$D/ref.$VINR_SEQ"; '
                             'cat > "$D/stdin.$VINR_SEQ"; ok')
    d = make_daemon(conf=hook_conf(hook))
    ref = "R" * (200 * 1024)
    assert d.post_event(make_event("completed", reference=ref))[0] == 200
    assert d.post_event(make_event("completed", reference="small"))[0] == 200
    hook.wait_delivered(2, timeout=10)
    assert hook.read("ref.1") == "R" * 4096
    assert json.loads(hook.read("stdin.1"))["reference"] == ref
    assert hook.read("ref.2") == "small"
    assert "E2BIG" not in d.log() and "Argument list too long" not in d.log()


def test_execve_failure_reported_truthfully(make_daemon, tmp_path):
    hook = tmp_path / "hook"
    hook.write_text("#!/nonexistent/interpreter\n")
    hook.chmod(0o755)
    d = make_daemon(conf={"forward": {"hook": str(hook), "max_attempts": "1"}})
    assert d.post_event(make_event("completed"))[0] == 200
    log = d.wait_log("cannot run %s: No such file or directory" % hook)
    assert "not executable?" not in log


# ---------------------------------------------------------------------------
# I/O faults injected under SQLite and the sinks (tests/e2e/shim/faultshim.c)

import subprocess  # noqa: E402

import pytest  # noqa: E402

SHIM_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim", "faultshim.c")


@pytest.fixture(scope="session")
def faultshim(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("shim") / "faultshim.so")
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", out, SHIM_SRC, "-ldl"], check=True)
    return out


def shim_env(shim, on, ops, paths, errno_=5):
    env = {"LD_PRELOAD": shim, "FAULT_ON": str(on), "FAULT_OPS": ops,
           "FAULT_PATHS": paths, "FAULT_ERRNO": str(errno_)}
    # Under `make asan` the preloaded shim comes before ASan's runtime in
    # the library list, which ASan refuses unless told that it is meant.
    if os.environ.get("ASAN_OPTIONS"):
        env["ASAN_OPTIONS"] = os.environ["ASAN_OPTIONS"] + ":verify_asan_link_order=0"
    return env


def health(d):
    st, _, body = d.request("GET", "/healthz")
    return st, json.loads(body)


def test_healthz_warns_while_the_event_log_cannot_be_flushed(make_daemon, tmp_path, faultshim):
    """/healthz said ok, with no warning, while the event log could not be
    written durably (its fdatasync failing): the lines were written again and
    again and the sink never counted as failing."""
    on = tmp_path / "fault-on"
    d = make_daemon(env=shim_env(faultshim, on, "fdatasync", "events.log"))
    on.write_text("")
    assert d.post_event(make_event("completed"))[0] == 200
    wait_for(lambda: "sink_failing:eventlog" in health(d)[1].get("warnings", []),
             what="the eventlog warning")
    st, body = health(d)
    assert st == 200 and body["status"] == "ok"     # ingest still works
    assert d.post_event(make_event("completed"))[0] == 200
    on.unlink()
    wait_for(lambda: "sink_failing:eventlog" not in health(d)[1].get("warnings", []),
             timeout=20, what="the warning to clear")
    seqs = sorted({line["seq"] for line in d.event_log_lines()})
    assert seqs == [1, 2]


def test_event_log_write_failure_in_a_large_batch_loses_no_line(make_daemon, tmp_path,
                                                               faultshim):
    """A batch over 1 MiB is written in pieces while it is gathered; a
    failed piece dropped the lines gathered before it while the sink
    counted them as delivered, and the cursor moved past them."""
    on = tmp_path / "fault-on"
    d = make_daemon(env=shim_env(faultshim, on, "write", "events.log"))
    on.write_text("")
    for _ in range(300):
        assert d.post_event(make_event("completed", reference="r" * 5000))[0] == 200
    # The sink retries with a backlog of 256 lines of ~5 KiB: its buffer
    # passes 1 MiB and that write fails too.
    time.sleep(3)
    on.unlink()
    wait_for(lambda: len({line["seq"] for line in d.event_log_lines()}) >= 300, timeout=30,
             what="300 lines")
    seqs = sorted({line["seq"] for line in d.event_log_lines()})
    assert seqs == list(range(1, 301))


def test_sqlite_io_error_gives_503_and_loses_nothing(make_daemon, tmp_path, faultshim):
    """fsync failing under SQLite: 503, never a false 200; once it heals,
    every event answered 200 is there and the refused ones are not
    duplicates when retried."""
    on = tmp_path / "fault-on"
    d = make_daemon(env=shim_env(faultshim, on, "fsync,fdatasync", "vinr.db,vinr.db-wal"))
    acked, refused = [], []
    for _ in range(5):
        ev = make_event("completed")
        assert d.post_event(ev)[0] == 200
        acked.append(ev)
    on.write_text("")
    for _ in range(5):
        ev = make_event("completed")
        st, body = d.post_event(ev)
        assert st == 503 and body == {"error": "storage_unavailable"}, (st, body)
        refused.append(ev)
    on.unlink()
    deadline = time.time() + 20
    for ev in refused:
        while True:
            st, body = d.post_event(ev)
            if st == 200 or time.time() > deadline:
                break
            time.sleep(0.2)
        assert st == 200 and body["duplicate"] is False, (st, body)
        acked.append(ev)
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    ids = {r[0] for r in d.query("SELECT id FROM events")}
    assert {ev["id"] for ev in acked} <= ids
    seqs = [r[0] for r in d.query("SELECT seq FROM outcomes ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) == len(acked)


# ---------------------------------------------------------------------------
# The storage deadline (SPEC §1.4) holds per request

import sqlite3  # noqa: E402
import threading  # noqa: E402


def test_storage_deadline_is_per_request(make_daemon):
    """An operator holding the write lock made a request queued behind a
    waiting batch wait about 2 x 5 s; each request gets 503 within ~5 s of
    its own arrival."""
    d = make_daemon()
    assert d.post_event(make_event("completed"))[0] == 200
    lock = sqlite3.connect(d.db_path, timeout=1)
    lock.execute("BEGIN IMMEDIATE")
    results = {}

    def post(name):
        t0 = time.monotonic()
        st, _ = d.post_event(make_event("completed"))
        results[name] = (st, time.monotonic() - t0)

    first = threading.Thread(target=post, args=("first",))
    first.start()
    time.sleep(1.5)          # the first batch is now waiting for the lock
    second = threading.Thread(target=post, args=("second",))
    second.start()
    first.join(20)
    second.join(20)
    lock.rollback()
    lock.close()
    print("storage deadline: %r" % results)
    # Without a per-request deadline the second would wait about 3.5 + 5 s;
    # the bounds leave room for a loaded machine and still tell the two apart.
    assert results["first"][0] == 503 and 4 < results["first"][1] < 7.5
    assert results["second"][0] == 503 and results["second"][1] < 7.5, results
    assert d.post_event(make_event("completed"))[0] == 200


# ---------------------------------------------------------------------------
# The WAL stays bounded; a real full disk (a loop-mounted ext4 image)


def test_wal_stays_bounded_under_sustained_load(make_daemon):
    """The WAL grew to 32 MiB; it is checkpointed every 4 MiB and cut back
    to 8 MiB at most."""
    d = make_daemon(conf={"storage": {"synchronous": "normal", "event_log": ""}})
    wal = d.db_path + "-wal"
    biggest = 0
    for i in range(2500):
        st, _ = d.post_event(make_event("completed", reference="r" * 4000))
        assert st == 200
        if i % 50 == 0 and os.path.exists(wal):
            biggest = max(biggest, os.path.getsize(wal))
    biggest = max(biggest, os.path.getsize(wal))
    print("largest WAL seen: %.1f MiB" % (biggest / 1048576))
    assert biggest <= 9 * 1024 * 1024, biggest


def _mount_small_fs(tmp_path, mib=12):
    if os.geteuid() != 0:
        pytest.skip("disk-full test needs root to loop-mount an ext4 image (CI runs as root)")
    img, mnt = str(tmp_path / "fs.img"), str(tmp_path / "mnt")
    os.makedirs(mnt)
    with open(img, "wb") as f:
        f.truncate(mib * 1024 * 1024)
    r = subprocess.run(["mkfs.ext4", "-q", "-F", img], capture_output=True)
    if r.returncode == 0:
        r = subprocess.run(["mount", "-o", "loop", img, mnt], capture_output=True)
    if r.returncode != 0:
        os.unlink(img)
        pytest.skip("cannot loop-mount an ext4 image here: %s" % r.stderr.decode().strip())
    return img, mnt


def _fill(path):
    """Writes a file until the disk is full; returns its path."""
    try:
        with open(path, "wb") as f:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
                os.fsync(f.fileno())
    except OSError:
        pass
    return path


def test_disk_full_on_a_real_filesystem(make_daemon, tmp_path):
    """A full disk: 503, never a false 200; it recovers without a restart;
    after a SIGKILL every acknowledged event is there, seq gap-free, and the
    event log has no torn line."""
    img, mnt = _mount_small_fs(tmp_path)
    try:
        d = make_daemon(start=False)
        d.db_path = os.path.join(mnt, "vinr.db")
        d.event_log = os.path.join(mnt, "events.log")
        d.sections["storage"].update({"database": d.db_path, "event_log": d.event_log})
        write_conf(d.conf_path, d.sections)
        d.start()
        acked = []
        for _ in range(20):
            ev = make_event("completed", reference="x" * 1000)
            assert d.post_event(ev)[0] == 200
            acked.append(ev["id"])
        filler = _fill(os.path.join(mnt, "filler"))
        statuses = []
        for _ in range(60):
            ev = make_event("completed", reference="x" * 1000)
            st, _ = d.post_event(ev)
            statuses.append(st)
            if st == 200:
                acked.append(ev["id"])
            else:
                assert st == 503
        assert 503 in statuses, statuses
        log = d.log()
        assert log.count("transaction not committed") <= 4, log
        os.unlink(filler)
        deadline = time.time() + 20
        while True:
            ev = make_event("completed")
            st, _ = d.post_event(ev)
            if st == 200:
                acked.append(ev["id"])
                break
            assert time.time() < deadline, "no recovery after the disk was freed"
            time.sleep(0.3)
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        ids = {r[0] for r in d.query("SELECT id FROM events")}
        assert set(acked) <= ids
        seqs = [r[0] for r in d.query("SELECT seq FROM outcomes ORDER BY seq")]
        assert seqs == list(range(1, len(seqs) + 1))
        with open(d.event_log, "rb") as f:
            for line in f.read().splitlines():
                json.loads(line)
    finally:
        subprocess.run(["umount", "-l", mnt])
        os.unlink(img)


# ---------------------------------------------------------------------------
# SIGKILL cycles under concurrent load, with the hook and socket sinks

import http.client  # noqa: E402

from conftest import sign_vinr  # noqa: E402
from test_sinks import Consumer, sockdir  # noqa: E402


def _poster(port, stop, acked, lock):
    while not stop.is_set():
        ev = make_event("completed", reference="k" * 200)
        body = json.dumps(ev).encode()
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("POST", "/webhooks/vinr", body=body,
                      headers={"Content-Type": "application/json",
                               "Vinr-Signature": sign_vinr(body)})
            r = c.getresponse()
            if r.status == 200 and json.loads(r.read())["received"]:
                with lock:
                    acked.append(ev["id"])
            c.close()
            time.sleep(0.04)     # a hook runs a process per outcome: keep up
        except (OSError, http.client.HTTPException, ValueError):
            time.sleep(0.05)     # the daemon is down: until it is back


def test_sigkill_cycles_under_load_with_every_sink(make_daemon, tmp_path, sockdir):
    """Every acknowledged event and its outcome survive repeated SIGKILLs;
    seq stays gap-free; every sink gets every seq, with no torn line."""
    hook = HookDir(tmp_path, 'cat > /dev/null; echo "$VINR_SEQ" >> "$D/seqs"; ok')
    sock = os.path.join(sockdir, "pos.sock")
    consumer = Consumer(sock).start()
    conf = hook_conf(hook, events="all")
    conf["forward"]["socket"] = sock
    d = make_daemon(conf=conf)
    acked, lock, stop = [], threading.Lock(), threading.Event()
    threads = [threading.Thread(target=_poster, args=(d.port, stop, acked, lock))
               for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for cycle in range(5):
            time.sleep(1.0)
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait()
            d.start()
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(20)
    ids = {r[0] for r in d.query("SELECT id FROM events")}
    with lock:
        assert acked and set(acked) <= ids, "an acknowledged event was lost"
    seqs = [r[0] for r in d.query("SELECT seq FROM outcomes ORDER BY seq")]
    n = len(seqs)
    assert seqs == list(range(1, n + 1))
    assert n >= len(acked)
    wait_for(lambda: {line["seq"] for line in d.event_log_lines()} == set(seqs),
             timeout=60, what="the event log to cover every seq")
    wait_for(lambda: set(consumer.seqs()) >= set(seqs), timeout=60,
             what="the socket consumer to get every seq")
    wait_for(lambda: {int(x) for x in hook.read("seqs").split()} >= set(seqs),
             timeout=120, what="the hook to get every seq")
    assert d.stop() == 0
    consumer.stop()
    print("SIGKILL cycles: %d acknowledged, %d outcomes" % (len(acked), n))


# ---------------------------------------------------------------------------
# Readiness: /healthz and READY=1 only once every socket listens


def test_ready_only_once_every_socket_listens(make_daemon, tmp_path, sockdir):
    import socket as so
    notify = os.path.join(sockdir, "notify")
    ns = so.socket(so.AF_UNIX, so.SOCK_DGRAM)
    ns.bind(notify)
    ns.settimeout(15)
    d = make_daemon(start=False, env={"NOTIFY_SOCKET": notify})
    d.start(wait=False)
    # The first /healthz that answers finds the control socket listening.
    deadline = time.time() + 15
    while True:
        try:
            st = d.request("GET", "/healthz", timeout=1)[0]
            break
        except OSError:
            assert time.time() < deadline
            time.sleep(0.002)
    assert st == 200
    c = so.socket(so.AF_UNIX, so.SOCK_STREAM)
    c.connect(d.control)
    c.close()
    msg = b""
    while b"READY=1" not in msg:
        msg = ns.recv(4096)
    ns.close()
    assert d.ctl({"cmd": "ping"})["ok"] is True
    assert d.stop() == 0
