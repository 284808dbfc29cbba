"""SPEC §3: the sinks that outcomes go to (GitHub issue 3).

The shell hook ([forward] hook): its exact environment and stdin, the
events = outcomes|all filter, failures retried with backoff in seq order,
dead letters after max_attempts, hook_timeout, hooks that flood their output
or never read their input, a crash while a hook is failing.  The Unix socket
([forward] socket): order, a consumer that goes away and comes back, acks
(socket_ack = true) across a reconnect and a clean restart, no acks.  The
cursors table.  The examples in config/examples, run for real.

The hooks here are /bin/sh scripts (one is Python) that write what they saw
into files of a directory named at their top: a hook gets no environment of
ours.  The socket consumers are a Python Unix socket server in this process
(Consumer), and the example consumer run as a program.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import ROOT, make_event

# Each test that starts a daemon runs on SQLite and on PostgreSQL (SPEC §8;
# conftest.py's backend fixture).
BACKENDS = ("sqlite", "postgres")
from conftest import wait_for

EXAMPLES = os.path.join(ROOT, "config", "examples")
HOOK_PATH = "/usr/local/bin:/usr/bin:/bin"
# SPEC §3: the hook's variables and the outcome key each one comes from.
HOOK_VARS = [
    ("VINR_SEQ", "seq"), ("VINR_TYPE", "type"), ("VINR_PAYMENT_ID", "paymentId"),
    ("VINR_TERMINAL_ID", "terminalId"), ("VINR_REFERENCE", "reference"),
    ("VINR_STATUS", "status"), ("VINR_PREVIOUS_STATUS", "previousStatus"),
    ("VINR_AMOUNT", "amount"), ("VINR_CURRENCY", "currency"),
    ("VINR_DECLINE_CODE", "declineCode"), ("VINR_SOURCE", "source"),
    ("VINR_EVENT_ID", "eventId"),
]


# ---------------------------------------------------------------------------
# helpers

@pytest.fixture
def sockdir():
    """A short directory for Unix sockets (sun_path is 108 bytes)."""
    d = tempfile.mkdtemp(prefix="vs", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def post(d, status="completed", pid=None, **fields):
    """Posts a signed event for payment pid; it must be newly accepted."""
    ev = make_event(status, payment_id=pid, **fields)
    st, resp = d.post_event(ev)
    assert st == 200 and resp.get("duplicate") is False and "ignored" not in resp, resp
    return ev


def outcome_lines(d):
    """{seq: the outcome line exactly as stored, without its newline}."""
    return {seq: j.encode() for seq, j in d.query("SELECT seq, json FROM outcomes")}


def cursor(d, sink):
    rows = d.query("SELECT seq FROM cursors WHERE sink = ?", d.cursor_sink(sink))
    return rows[0][0] if rows else 0


def wait_cursor(d, sink, seq, timeout=15):
    wait_for(lambda: cursor(d, sink) >= seq, timeout, "cursor %s >= %d (is %d)"
             % (sink, seq, cursor(d, sink)))
    assert cursor(d, sink) == seq


def dead_letters(d):
    return d.query("SELECT sink, seq, attempts, last_error FROM dead_letters ORDER BY seq")


def healthz(d):
    st, _, body = d.request("GET", "/healthz", timeout=10)
    return st, json.loads(body)


class HookDir:
    """A hook script plus the directory it records into.

    body is /bin/sh text run after a common prologue that sets D (the
    directory), N (this run's number, from 1, over all runs) and appends
    "seq time run pid" to D/runs.  A run that reaches `ok` appends the seq
    to D/delivered and exits 0.
    """

    def __init__(self, base, body, name="hook"):
        self.dir = os.path.join(str(base), name + ".d")
        os.makedirs(self.dir, exist_ok=True)
        self.path = os.path.join(str(base), name)
        prologue = (
            "#!/bin/sh\n"
            "D='%s'\n"
            "N=$(cat \"$D/count\" 2>/dev/null || echo 0); N=$((N + 1))\n"
            "echo $N > \"$D/count\"\n"
            "echo \"$VINR_SEQ $(date +%%s.%%N) $N $$\" >> \"$D/runs\"\n"
            "ok() { echo \"$VINR_SEQ\" >> \"$D/delivered\"; exit 0; }\n" % self.dir)
        with open(self.path, "w") as f:
            f.write(prologue + body + "\n")
        os.chmod(self.path, 0o755)

    def file(self, name):
        return os.path.join(self.dir, name)

    def read(self, name, mode="r"):
        try:
            with open(self.file(name), mode) as f:
                return f.read()
        except FileNotFoundError:
            return b"" if "b" in mode else ""

    def runs(self):
        """[(seq, start time, run number, pid)] in the order they ran."""
        out = []
        for line in self.read("runs").splitlines():
            seq, t, n, pid = line.split()
            out.append((int(seq), float(t), int(n), int(pid)))
        return out

    def delivered(self):
        return [int(x) for x in self.read("delivered").split()]

    def wait_delivered(self, n, timeout=15):
        return wait_for(lambda: len(self.delivered()) >= n and self.delivered(), timeout,
                        "%d hook deliveries (have %r)" % (n, self.delivered()))


def hook_conf(hook, **kw):
    forward = {"hook": hook.path}
    forward.update({k: str(v) for k, v in kw.items()})
    return {"forward": forward}


def process_gone(pid):
    """True when pid no longer runs (absent, or a zombie nobody reaped)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


class Consumer:
    """A POS app's Unix socket: listens on path, reads outcome lines and,
    if ack(seq) says so, writes "<seq>\\n" back.  One connection at a time,
    as the daemon makes; every connection's lines are kept apart."""

    def __init__(self, path, ack=None):
        self.path = path
        self.ack = ack or (lambda seq: False)
        self.conns = []		# one list of (seq, line bytes) per connection
        self.cv = threading.Condition()
        self.srv = None
        self.thread = None
        self.stopping = False
        self.drop_now = False

    def start(self):
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.path)
        self.srv.listen(8)
        self.srv.settimeout(0.05)
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        """Goes away: closes the connection and the listening socket."""
        self.stopping = True
        self.thread.join(10)
        self.srv.close()
        if os.path.exists(self.path):
            os.unlink(self.path)

    def drop(self):
        """Closes the current connection but keeps listening."""
        self.drop_now = True
        wait_for(lambda: not self.drop_now, 5, "the consumer to drop its connection")

    def _send(self, c, data):
        while data and not self.stopping and not self.drop_now:
            try:
                data = data[c.send(data):]
            except socket.timeout:
                continue

    def _run(self):
        while not self.stopping:
            try:
                c, _ = self.srv.accept()
            except socket.timeout:
                self.drop_now = False
                continue
            except OSError:
                return
            c.settimeout(0.05)
            with self.cv:
                self.conns.append([])
                lines = self.conns[-1]
            buf = b""
            try:
                while not self.stopping and not self.drop_now:
                    try:
                        data = c.recv(65536)
                    except socket.timeout:
                        continue
                    if not data:
                        break
                    buf += data
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        seq = json.loads(line)["seq"]
                        with self.cv:
                            lines.append((seq, line))
                            self.cv.notify_all()
                        if self.ack(seq):
                            self._send(c, b"%d\n" % seq)
            except OSError:
                pass
            finally:
                c.close()
                self.drop_now = False

    def seqs(self, conn=None):
        with self.cv:
            conns = self.conns if conn is None else [self.conns[conn]]
            return [seq for lines in conns for seq, _ in lines]

    def lines(self):
        with self.cv:
            return [line for lines in self.conns for _, line in lines]

    def wait_seq(self, seq, timeout=15):
        """Waits until a line with this seq has arrived."""
        with self.cv:
            if not self.cv.wait_for(lambda: seq in [s for ls in self.conns for s, _ in ls],
                                    timeout):
                raise AssertionError("seq %d never reached the consumer (got %r)"
                                     % (seq, self.conns))


def socket_conf(path, **kw):
    forward = {"socket": path}
    forward.update({k: str(v).lower() if isinstance(v, bool) else str(v)
                    for k, v in kw.items()})
    return {"forward": forward}


# ---------------------------------------------------------------------------
# the hook: environment, stdin

LEAKS = {
    "VINR_WEBHOOK_SECRET": "whsec_env_secret_must_not_leak",
    "VINR_API_KEY": "sk_test_key_must_not_leak",
    "VINR_SEQ": "999999",		# the daemon's own VINR_* do not pass either
    "VINR_EXTRA": "leak-extra",
    "AWS_SECRET_ACCESS_KEY": "leak-aws",
    "HOME": "/leak/home",
    "PATH": "/leak/bin:" + os.environ.get("PATH", "/usr/bin:/bin"),
    "LANG": "C.UTF-8",
    "TZ": "Leak/Zone",
}


def test_hook_environment_is_exactly_the_promised_one(make_daemon, tmp_path):
    hook = HookDir(tmp_path, """
cp /proc/$$/environ "$D/env.$VINR_SEQ"
cat > "$D/stdin.$VINR_SEQ"
grep -E '^SigIgn:' /proc/self/status > "$D/sig.$VINR_SEQ"
ls -l /proc/$$/fd/ > "$D/fd.$VINR_SEQ"
ok
""")
    d = make_daemon(conf=hook_conf(hook), env=LEAKS)
    a = "tpay_env_a_" + os.urandom(4).hex()
    b = "tpay_env_b_" + os.urandom(4).hex()
    common = dict(terminalId="term_01HZ5QXYZ", reference="order_8821", amount=2500,
                  currency="USD", brand="visa", last4="4242", authCode="A12345",
                  entryMethod="contactless")
    ev1 = post(d, "authorized", a, **common)
    ev2 = post(d, "completed", a, **common)
    ev3 = post(d, "failed", b, declineCode="insufficient_funds")
    hook.wait_delivered(3)
    assert hook.delivered() == [1, 2, 3]

    stored = outcome_lines(d)
    for seq in (1, 2, 3):
        raw = hook.read("env.%d" % seq, "rb")
        assert raw.endswith(b"\0")
        items = raw[:-1].split(b"\0")
        names = [i.split(b"=", 1)[0].decode() for i in items]
        assert len(names) == len(set(names)), names
        env = dict(i.decode().split("=", 1) for i in items)
        # Nothing but the twelve variables and PATH.
        assert set(env) == {n for n, _ in HOOK_VARS} | {"PATH"}, sorted(env)
        assert env["PATH"] == HOOK_PATH
        for leak in LEAKS.values():
            if leak != "C.UTF-8":
                assert leak.encode() not in raw
        # No card detail travels (a random id may contain 4242: look at
        # whole values).
        assert not any(i.endswith(b"=4242") or i.endswith(b"=A12345") for i in items), raw
        # Each one is the outcome's value; null is empty; numbers integers.
        outcome = json.loads(stored[seq])
        for name, key in HOOK_VARS:
            v = outcome[key]
            want = "" if v is None else str(v) if not isinstance(v, str) else v
            assert env[name] == want, (seq, name, env[name], v)
        # stdin: the outcome line, byte for byte, with its newline.
        assert hook.read("stdin.%d" % seq, "rb") == stored[seq] + b"\n"
        # No signal ignored (the daemon ignores SIGPIPE): sh hands on to
        # its children what it got ignored.
        sig = hook.read("sig.%d" % seq)
        assert sig.startswith("SigIgn:") and int(sig.split(":")[1], 16) == 0, sig
        # No descriptor of the daemon's: besides 0-2 only what sh opened
        # itself (its script, a copy of its stdin).
        fds = {}
        for line in hook.read("fd.%d" % seq).splitlines()[1:]:
            name, _, target = line.partition(" -> ")
            fds[int(name.split()[-1])] = target
        std = {fds[0], fds[1], fds[2]}
        for fd, target in fds.items():
            assert fd <= 2 or target == hook.path or target in std, fds

    env1 = dict(i.decode().split("=", 1) for i in hook.read("env.1", "rb")[:-1].split(b"\0"))
    env2 = dict(i.decode().split("=", 1) for i in hook.read("env.2", "rb")[:-1].split(b"\0"))
    env3 = dict(i.decode().split("=", 1) for i in hook.read("env.3", "rb")[:-1].split(b"\0"))
    assert env1 == {
        "VINR_SEQ": "1", "VINR_TYPE": "payment.authorized", "VINR_PAYMENT_ID": a,
        "VINR_TERMINAL_ID": "term_01HZ5QXYZ", "VINR_REFERENCE": "order_8821",
        "VINR_STATUS": "authorized", "VINR_PREVIOUS_STATUS": "", "VINR_AMOUNT": "2500",
        "VINR_CURRENCY": "USD", "VINR_DECLINE_CODE": "", "VINR_SOURCE": "webhook",
        "VINR_EVENT_ID": ev1["id"], "PATH": HOOK_PATH}
    assert env2["VINR_PREVIOUS_STATUS"] == "authorized"
    assert env2["VINR_STATUS"] == "completed" and env2["VINR_EVENT_ID"] == ev2["id"]
    assert env3 == {
        "VINR_SEQ": "3", "VINR_TYPE": "payment.failed", "VINR_PAYMENT_ID": b,
        "VINR_TERMINAL_ID": "", "VINR_REFERENCE": "", "VINR_STATUS": "failed",
        "VINR_PREVIOUS_STATUS": "", "VINR_AMOUNT": "", "VINR_CURRENCY": "",
        "VINR_DECLINE_CODE": "insufficient_funds", "VINR_SOURCE": "webhook",
        "VINR_EVENT_ID": ev3["id"], "PATH": HOOK_PATH}
    wait_cursor(d, "hook", 3)


def test_hook_starts_with_no_signal_blocked(make_daemon, tmp_path):
    """The daemon blocks SIGTERM, SIGINT, SIGHUP in its threads; a hook must
    not inherit that mask, or hook_timeout's SIGTERM would not stop it.
    (dash clears its mask at start, so this hook is Python, which does not.)"""
    out = tmp_path / "sigblk"
    hook = tmp_path / "hook.py"
    hook.write_text("#!%s -I\n"
                    "import sys\n"
                    "status = open('/proc/self/status').read()\n"
                    "blk = [l for l in status.splitlines() if l.startswith('SigBlk:')][0]\n"
                    "open('%s', 'a').write(blk.split()[1] + '\\n')\n"
                    "sys.stdin.read()\n" % (sys.executable, out))
    hook.chmod(0o755)
    d = make_daemon(conf={"forward": {"hook": str(hook)}})
    post(d, "completed", amount=100, currency="USD")
    wait_cursor(d, "hook", 1)
    assert out.read_text().split() == ["0000000000000000"]


# ---------------------------------------------------------------------------
# events = outcomes | all

@pytest.mark.parametrize("events", [None, "outcomes", "all"],
                         ids=["default", "outcomes", "all"])
def test_events_filter(make_daemon, tmp_path, sockdir, events):
    hook = HookDir(tmp_path, 'cat > "$D/stdin.$VINR_SEQ"\nok')
    conf = hook_conf(hook)
    sock = os.path.join(sockdir, "pos.sock")
    conf["forward"]["socket"] = sock
    if events is not None:
        conf["forward"]["events"] = events
    consumer = Consumer(sock).start()
    d = make_daemon(conf=conf)
    p = "tpay_filter_" + os.urandom(4).hex()
    post(d, "pending", p, amount=700, currency="EUR")
    post(d, "processing", p)
    post(d, "completed", p)
    wait_cursor(d, "hook", 3)
    wait_cursor(d, "socket", 3)
    want = [1, 2, 3] if events == "all" else [3]
    assert hook.delivered() == want
    assert [json.loads(hook.read("stdin.%d" % s))["status"] for s in want] == \
        (["pending", "processing", "completed"] if events == "all" else ["completed"])
    assert consumer.seqs() == want
    # The event log always gets every transition.
    assert [(o["seq"], o["status"]) for o in d.wait_event_log(3)] == \
        [(1, "pending"), (2, "processing"), (3, "completed")]
    wait_cursor(d, "eventlog", 3)
    consumer.stop()


# ---------------------------------------------------------------------------
# failures, retries, dead letters

def test_hook_failures_are_retried_with_backoff_in_seq_order(make_daemon, tmp_path):
    hook = HookDir(tmp_path, """
cat >/dev/null
[ "$N" -le 2 ] && { echo "failing run $N" >&2; exit 1; }
ok""")
    d = make_daemon(conf=hook_conf(hook))
    for i in range(3):
        post(d, "completed", amount=100 + i, currency="USD")
    hook.wait_delivered(3)
    # Successful deliveries strictly in seq order; the later ones waited.
    assert hook.delivered() == [1, 2, 3]
    runs = hook.runs()
    assert [r[0] for r in runs] == [1, 1, 1, 2, 3], runs
    # Backoff: 1 s after the first failure, 2 s after the second.
    gap1, gap2 = runs[1][1] - runs[0][1], runs[2][1] - runs[1][1]
    assert 0.9 <= gap1 <= 1.8, runs
    assert 1.9 <= gap2 <= 3.5, runs
    log = d.log()
    assert "hook: seq 1 failed (attempt 1 of 12): exit status 1" in log
    assert "hook: seq 1 failed (attempt 2 of 12): exit status 1" in log
    assert "failing run 1" in log		# its output, in the log
    wait_cursor(d, "hook", 3)
    assert dead_letters(d) == []


def test_hook_dead_letter_after_max_attempts(make_daemon, tmp_path):
    bad = "tpay_poison_" + os.urandom(4).hex()
    hook = HookDir(tmp_path, """
cat >/dev/null
[ "$VINR_PAYMENT_ID" = '%s' ] && { echo "cannot print it" >&2; exit 3; }
ok""" % bad)
    d = make_daemon(conf=hook_conf(hook, max_attempts=2))
    post(d, "completed", bad, amount=100, currency="USD")	# seq 1: always fails
    post(d, "completed", amount=200, currency="USD")		# seq 2
    hook.wait_delivered(1)
    # The next outcome went out once seq 1 was given up.
    assert hook.delivered() == [2]
    assert [r[0] for r in hook.runs()] == [1, 1, 2]
    rows = wait_for(lambda: dead_letters(d), 10, "a dead letter")
    assert len(rows) == 1
    sink, seq, attempts, last_error = rows[0]
    assert (sink, seq, attempts) == ("hook", 1, 2)
    assert "exit status 3" in last_error
    assert d.query("SELECT at FROM dead_letters")[0][0]
    wait_cursor(d, "hook", 2)
    assert "hook: seq 1 dead-lettered after 2 attempts" in d.log()

    # A restart does not try the dead letter again.
    assert d.stop() == 0
    d.start()
    post(d, "completed", amount=300, currency="USD")		# seq 3
    hook.wait_delivered(2)
    assert hook.delivered() == [2, 3]
    assert [r[0] for r in hook.runs()] == [1, 1, 2, 3]
    assert dead_letters(d) == rows
    wait_cursor(d, "hook", 3)


def test_hook_dead_letter_moves_the_saved_cursor(make_daemon, tmp_path):
    """The dead letter alone (no later outcome) moves the saved cursor."""
    hook = HookDir(tmp_path, "exit 9")
    d = make_daemon(conf=hook_conf(hook, max_attempts=1))
    post(d, "completed", amount=100, currency="USD")
    wait_for(lambda: dead_letters(d), 10, "a dead letter")
    assert dead_letters(d)[0][:3] == ("hook", 1, 1)
    wait_cursor(d, "hook", 1)
    assert d.stop() == 0
    d.start()
    time.sleep(0.5)
    assert len(hook.runs()) == 1		# not run again after the restart
    wait_cursor(d, "hook", 1)


def control(d, req, timeout=10):
    """One request on the control socket (SPEC §4); the parsed response."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(timeout)
        c.connect(d.control)
        c.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = c.recv(65536)
            assert chunk, buf
            buf += chunk
        return json.loads(buf)


def test_hook_dead_letter_replayed_once_mended(make_daemon, tmp_path):
    # Only seq 1 fails, until the hook is mended; seq 2 goes out meanwhile.
    hook = HookDir(tmp_path, '[ "$VINR_SEQ" != 1 ] || [ -e "$D/fixed" ] || exit 4\nok')
    d = make_daemon(conf=hook_conf(hook, max_attempts=1))
    post(d, "completed", amount=100, currency="USD")		# seq 1
    wait_for(lambda: dead_letters(d), 10, "a dead letter")
    post(d, "completed", amount=200, currency="USD")		# seq 2
    wait_cursor(d, "hook", 2)
    assert dead_letters(d)[0][:2] == ("hook", 1)
    open(hook.file("fixed"), "w").close()			# the hook is mended
    assert control(d, {"cmd": "replay", "sink": "hook", "seq": 1}) == {"ok": True}
    wait_for(lambda: 1 in hook.delivered(), 6, "the replayed seq 1 delivered")
    assert hook.delivered() == [2, 1]
    wait_for(lambda: dead_letters(d) == [], 6, "the dead letter to leave the list")
    assert control(d, {"cmd": "dead"}) == {"ok": True, "dead": []}
    assert cursor(d, "hook") == 2


def test_clean_stop_while_a_hook_runs(make_daemon, tmp_path):
    """A stop interrupts a running hook at once and does not count it as a
    failed attempt (max_attempts = 1 here): after the start it runs again."""
    hook = HookDir(tmp_path, """
cat >/dev/null
[ "$N" -eq 1 ] && { sleep 30 & wait $!; }
ok""")
    d = make_daemon(conf=hook_conf(hook, max_attempts=1, hook_timeout=60))
    post(d, "completed", amount=100, currency="USD")
    wait_for(lambda: hook.runs(), 10, "the hook to start")
    t0 = time.time()
    assert d.stop() == 0
    assert time.time() - t0 < 4.5			# no wait for the hook
    assert process_gone(hook.runs()[0][3])
    assert dead_letters(d) == [] and cursor(d, "hook") == 0
    d.start()
    hook.wait_delivered(1)
    assert [r[0] for r in hook.runs()] == [1, 1]
    wait_cursor(d, "hook", 1)
    assert dead_letters(d) == []


@pytest.mark.parametrize("ignores_term", [False, True], ids=["sigterm", "sigkill"])
def test_hook_timeout_kills_and_retries(make_daemon, tmp_path, ignores_term):
    """hook_timeout = 1: the first run sleeps 30 s and is killed (with its
    child), then retried; the second run succeeds.  A hook that ignores
    SIGTERM gets SIGKILL 5 s later."""
    hook = HookDir(tmp_path, """
cat >/dev/null
if [ "$N" -eq 1 ]; then
    %s
    sleep 30 &
    echo $! > "$D/sleeper"
    wait $!
    wait $!
    echo "survived" >> "$D/survived"
fi
ok""" % ("trap '' TERM" if ignores_term else ":"))
    d = make_daemon(conf=hook_conf(hook, hook_timeout=1))
    post(d, "completed", amount=100, currency="USD")
    hook.wait_delivered(1, timeout=20)
    assert hook.delivered() == [1]
    runs = hook.runs()
    assert len(runs) == 2 and runs[0][0] == runs[1][0] == 1, runs
    # timeout (1 s) + backoff (1 s), plus the 5 s grace for SIGKILL.
    gap = runs[1][1] - runs[0][1]
    if ignores_term:
        assert 6.8 <= gap <= 10, runs
    else:
        assert 1.9 <= gap <= 4.5, runs
    # The first run and its child are gone, and did not go on to succeed.
    assert process_gone(runs[0][3])
    assert process_gone(int(hook.read("sleeper")))
    assert hook.read("survived") == ""
    assert "hook: seq 1 failed (attempt 1 of 12): timed out after 1 s" in d.log()
    wait_cursor(d, "hook", 1)


# ---------------------------------------------------------------------------
# misbehaving hooks

FLOOD = 20 * 1000 * 1000


@pytest.mark.parametrize("kind", ["flood", "no_stdin", "closed_stdin"])
def test_misbehaving_hook_still_completes(make_daemon, tmp_path, kind):
    body = {
        # 20 MB on stdout and 5 MB on stderr, then success.
        "flood": "yes 'flood output line' | head -c %d\n"
                 "yes 'flood error' | head -c 5000000 >&2\nok" % FLOOD,
        # Never reads its stdin.
        "no_stdin": "sleep 0.2\nok",
        # Closes its stdin at once.
        "closed_stdin": "exec 0<&-\nsleep 0.2\nok",
    }[kind]
    hook = HookDir(tmp_path, body)
    d = make_daemon(conf=hook_conf(hook))
    log_before = len(d.log().encode())
    for i in range(3):
        post(d, "completed", amount=100 + i, currency="USD")
    hook.wait_delivered(3, timeout=30)
    assert hook.delivered() == [1, 2, 3]
    wait_cursor(d, "hook", 3)
    assert healthz(d)[0] == 200
    post(d, "completed", amount=999, currency="USD")	# still ingesting
    hook.wait_delivered(4, timeout=30)
    wait_cursor(d, "hook", 4)		# moved after the output was logged
    assert d.proc.poll() is None
    log = d.log().encode()[log_before:]
    if kind == "flood":
        # A capped excerpt per run, marked as cut; nowhere near 20 MB.
        assert log.count(b"[cut]") == 4
        assert len(log) < 4 * 3000, len(log)
        for line in log.splitlines():
            assert len(line) < 1500, line[:200]
    assert len(hook.runs()) == 4				# no retries needed
    assert dead_letters(d) == []


def test_hook_restart_after_sigkill_while_retrying(make_daemon, tmp_path):
    hook = HookDir(tmp_path, """
cat >/dev/null
[ -e "$D/fixed" ] || exit 1
ok""")
    d = make_daemon(conf=hook_conf(hook))
    post(d, "completed", amount=100, currency="USD")
    wait_for(lambda: len(hook.runs()) >= 2, 10, "two failed runs")
    d.kill()					# SIGKILL, mid-backoff
    assert d.proc.returncode == -signal.SIGKILL
    assert hook.delivered() == [] and cursor(d, "hook") == 0
    open(hook.file("fixed"), "w").close()	# the hook is mended
    d.start()
    hook.wait_delivered(1, timeout=20)
    assert hook.delivered() == [1]
    wait_cursor(d, "hook", 1)
    assert dead_letters(d) == []


# ---------------------------------------------------------------------------
# the socket sink

def test_socket_lines_in_seq_order(make_daemon, sockdir):
    sock = os.path.join(sockdir, "pos.sock")
    consumer = Consumer(sock).start()
    d = make_daemon(conf=socket_conf(sock))
    for i in range(20):
        post(d, ("completed", "failed", "cancelled", "authorized")[i % 4],
             amount=100 + i, currency="USD")
    consumer.wait_seq(20)
    assert consumer.seqs() == list(range(1, 21))
    assert len(consumer.conns) == 1
    stored = outcome_lines(d)
    assert consumer.lines() == [stored[s] for s in range(1, 21)]	# whole lines
    wait_cursor(d, "socket", 20)
    consumer.stop()


def test_socket_consumer_away_and_back(make_daemon, sockdir):
    """socket_ack = false: the consumer goes away (listening socket and
    connection closed) while outcomes are produced; when it listens again it
    gets what it missed, in order, nothing skipped."""
    sock = os.path.join(sockdir, "pos.sock")
    consumer = Consumer(sock).start()
    d = make_daemon(conf=socket_conf(sock))
    for _ in range(3):
        post(d, "completed", amount=100, currency="USD")
    consumer.wait_seq(3)
    consumer.stop()
    for _ in range(3):
        post(d, "completed", amount=200, currency="USD")	# seq 4-6, while away
    d.wait_log("connection lost", timeout=10)
    time.sleep(2)					# away ~2 s
    post(d, "completed", amount=300, currency="USD")		# seq 7
    consumer.start()
    consumer.wait_seq(7, timeout=40)			# reconnect backoff: 1, 2, 4 s ...
    assert consumer.seqs(0) == [1, 2, 3]
    later = [s for i in range(1, len(consumer.conns)) for s in consumer.seqs(i)]
    # In order, from the cursor: nothing skipped, nothing after a gap.
    assert later == list(range(later[0], 8)) and later[0] <= 4, consumer.conns
    assert sorted(set(consumer.seqs())) == list(range(1, 8))
    wait_cursor(d, "socket", 7)
    consumer.stop()


def test_socket_ack_unacked_line_resent_after_reconnect(make_daemon, sockdir):
    sock = os.path.join(sockdir, "pos.sock")
    hold = {3}
    consumer = Consumer(sock, ack=lambda seq: seq not in hold).start()
    d = make_daemon(conf=socket_conf(sock, socket_ack=True))
    for _ in range(4):
        post(d, "completed", amount=100, currency="USD")
    consumer.wait_seq(3)
    time.sleep(0.5)
    # One line at a time: 4 waits for the ack of 3.
    assert consumer.seqs() == [1, 2, 3]
    wait_cursor(d, "socket", 2)
    consumer.drop()					# connection lost, 3 not acked
    hold.clear()
    wait_for(lambda: len(consumer.conns) >= 2 and 4 in consumer.seqs(1), 40,
             "the resend after the reconnect")
    # 3 again (it was never acked), then 4; not 1 or 2 (acked).
    assert consumer.seqs(1) == [3, 4]
    assert "connection lost (closed by the consumer)" in d.log()
    wait_cursor(d, "socket", 4)
    consumer.stop()


def test_socket_ack_clean_restart_does_not_resend_acked(make_daemon, sockdir):
    """A clean stop saves the acks already received, even in the middle of
    a batch (1, 2, 3 are read together: the consumer is away when they are
    produced); after the start only the unacked line is sent again."""
    sock = os.path.join(sockdir, "pos.sock")
    hold = {3}
    consumer = Consumer(sock, ack=lambda seq: seq not in hold)
    d = make_daemon(conf=socket_conf(sock, socket_ack=True))
    for _ in range(3):
        post(d, "completed", amount=100, currency="USD")
    consumer.start()
    consumer.wait_seq(3, timeout=40)		# 1, 2 acked; 3 waits for its ack
    assert consumer.seqs() == [1, 2, 3]
    assert d.stop() == 0			# no wait for the cursor: saved at stop
    assert cursor(d, "socket") == 2
    hold.clear()
    d.start()
    post(d, "completed", amount=200, currency="USD")		# seq 4
    consumer.wait_seq(4)
    assert consumer.seqs(0) == [1, 2, 3]
    assert consumer.seqs(len(consumer.conns) - 1) == [3, 4]	# 3 never acked
    wait_cursor(d, "socket", 4)

    # All acked now: another clean restart resends nothing.
    assert d.stop() == 0
    assert cursor(d, "socket") == 4
    d.start()
    post(d, "completed", amount=300, currency="USD")		# seq 5
    consumer.wait_seq(5)
    assert consumer.seqs(len(consumer.conns) - 1) == [5]
    consumer.stop()


def test_socket_no_ack_consumer_that_never_acks(make_daemon, sockdir):
    sock = os.path.join(sockdir, "pos.sock")
    consumer = Consumer(sock, ack=None).start()
    d = make_daemon(conf=socket_conf(sock, socket_ack=False))
    for _ in range(5):
        post(d, "completed", amount=100, currency="USD")
    consumer.wait_seq(5, timeout=10)
    assert consumer.seqs() == [1, 2, 3, 4, 5]
    assert len(consumer.conns) == 1
    wait_cursor(d, "socket", 5)
    consumer.stop()


def test_socket_no_ack_consumer_that_acks_anyway(make_daemon, sockdir):
    sock = os.path.join(sockdir, "pos.sock")
    consumer = Consumer(sock, ack=lambda seq: True).start()
    d = make_daemon(conf=socket_conf(sock, socket_ack=False))
    n = 600
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda i: post(d, "completed", amount=i, currency="USD"), range(n)))
    # Lines keep coming: fail as soon as none arrives for 3 s.
    last, since = -1, time.time()
    while len(consumer.seqs()) < n:
        got = len(consumer.seqs())
        if got != last:
            last, since = got, time.time()
        assert time.time() - since < 3, "delivery stalled at %d of %d lines" % (got, n)
        time.sleep(0.05)
    assert consumer.seqs() == list(range(1, n + 1))
    consumer.stop()


# ---------------------------------------------------------------------------
# cursors

def test_cursors_table_after_delivery(make_daemon, tmp_path, sockdir):
    hook = HookDir(tmp_path, "ok")
    sock = os.path.join(sockdir, "pos.sock")
    consumer = Consumer(sock, ack=lambda seq: True).start()
    conf = hook_conf(hook)
    conf["forward"].update(socket=sock, socket_ack="true")
    d = make_daemon(conf=conf)
    post(d, "completed", amount=100, currency="USD")			# 1
    post(d, "failed", amount=100, currency="USD")			# 2
    post(d, "processing", "tpay_last_" + os.urandom(4).hex())		# 3: filtered
    for sink in ("eventlog", "hook", "socket"):
        wait_cursor(d, sink, 3)		# the filtered last one moves it too
    want = sorted((d.cursor_sink(s), 3) for s in ("eventlog", "hook", "socket"))
    assert sorted(d.query("SELECT sink, seq FROM cursors")) == want
    assert hook.delivered() == [1, 2] and consumer.seqs() == [1, 2]
    assert d.stop() == 0
    assert sorted(d.query("SELECT sink, seq FROM cursors")) == want
    consumer.stop()


def test_event_log_cursor_covers_every_line_at_stop(make_daemon):
    """Under load the event log is synced (and its cursor saved) at most
    every 10 ms, its lines written at once: a clean stop in the middle of a
    load saves a cursor that covers every line written, so a restart
    repeats none; each seq is in the log exactly once (a batch written but
    not yet synced is never read and written again)."""
    d = make_daemon()
    stored = []

    def poster():
        while len(stored) < 3000:
            try:
                ev = make_event("completed")
                st, _ = d.post_event(ev)
            except OSError:
                return
            if st != 200:
                return
            stored.append(ev["id"])

    threads = [threading.Thread(target=poster) for _ in range(16)]
    for t in threads:
        t.start()
    wait_for(lambda: len(stored) >= 300, 30, "300 events stored")
    assert d.stop() == 0
    for t in threads:
        t.join()
    seqs = [line["seq"] for line in d.event_log_lines()]
    assert seqs == list(range(1, len(seqs) + 1))
    assert cursor(d, "eventlog") == len(seqs)
    n = d.query("SELECT count(*) FROM outcomes")[0][0]
    assert n >= len(stored) >= 300
    d.start()
    d.wait_event_log(n)
    time.sleep(0.5)
    assert [line["seq"] for line in d.event_log_lines()] == list(range(1, n + 1))
    wait_cursor(d, "eventlog", n)


# ---------------------------------------------------------------------------
# the examples in config/examples

def test_example_receipt_hook(make_daemon, tmp_path):
    src = os.path.join(EXAMPLES, "receipt-hook")
    assert os.access(src, os.X_OK)
    with open(src) as f:
        text = f.read()
    assert text.startswith("#!/bin/sh\n")
    assert subprocess.run(["sh", "-n", src]).returncode == 0
    receipts = str(tmp_path / "receipts.txt")
    lines = text.split("\n")
    at = [i for i, line in enumerate(lines) if line.startswith("RECEIPTS=")]
    assert len(at) == 1
    lines[at[0]] = "RECEIPTS='%s'" % receipts
    hook = str(tmp_path / "receipt-hook")
    with open(hook, "w") as f:
        f.write("\n".join(lines))
    os.chmod(hook, 0o755)

    d = make_daemon(conf={"forward": {"hook": hook, "events": "all"}})
    p1, p3 = "tpay_rcpt_1_" + os.urandom(3).hex(), "tpay_rcpt_3_" + os.urandom(3).hex()
    post(d, "completed", p1, terminalId="term_01", reference="order_8821",
         amount=2500, currency="USD", brand="visa", last4="4242")		# 1
    post(d, "failed", amount=900, currency="USD", declineCode="do_not_honor")  # 2
    post(d, "processing", p3, amount=1500, currency="JPY")			# 3
    post(d, "completed", p3)							# 4
    post(d, "completed", amount=5, currency="EUR", reference="r5", last4="0005")  # 5
    wait_cursor(d, "hook", 5)
    with open(receipts) as f:
        got = f.read().splitlines()
    assert got == [
        "RECEIPT order_8821 25.00 USD card ****4242 payment=%s terminal=term_01 seq=1" % p1,
        "RECEIPT %s 1500 JPY payment=%s terminal=- seq=4" % (p3, p3),
        "RECEIPT r5 0.05 EUR card ****0005 payment=%s terminal=- seq=5"
        % d.outcomes()[4]["paymentId"],
    ]
    assert "hook: seq 1: output: RECEIPT order_8821 25.00 USD" in d.log()
    assert dead_letters(d) == []

    # Run again for seq 1 (at least once): no second receipt.
    outcome = d.outcomes()[0]
    env = {name: "" if outcome[key] is None else str(outcome[key])
           for name, key in HOOK_VARS}
    env["PATH"] = HOOK_PATH
    line = json.dumps(outcome).encode() + b"\n"
    r = subprocess.run([hook], input=line, env=env, capture_output=True, timeout=10)
    assert r.returncode == 0, r
    with open(receipts) as f:
        assert f.read().splitlines() == got


def test_example_pos_consumer(make_daemon, sockdir, tmp_path):
    src = os.path.join(EXAMPLES, "pos-consumer.py")
    assert os.access(src, os.X_OK)
    sock = os.path.join(sockdir, "pos.sock")
    state = str(tmp_path / "pos.state")
    out = str(tmp_path / "pos.out")
    procs = []

    def listening():
        """Someone listens on sock (a leftover file alone does not count)."""
        with open("/proc/net/unix") as f:
            return any(line.split()[-1] == sock and int(line.split()[3], 16) & 0x10000
                       for line in f.readlines()[1:] if len(line.split()) == 8)

    def run_consumer():
        with open(out, "ab") as f:
            p = subprocess.Popen([sys.executable, src, sock, state], stdout=f,
                                 stderr=subprocess.STDOUT)
        procs.append(p)
        wait_for(listening, 10, "the consumer to listen")
        return p

    def printed():
        with open(out, "rb") as f:
            return [json.loads(x)["seq"] for x in f.read().splitlines()]

    try:
        c = run_consumer()
        d = make_daemon(conf=socket_conf(sock, socket_ack=True))
        for _ in range(3):
            post(d, "completed", amount=100, currency="USD")
        wait_cursor(d, "socket", 3)		# acked by the consumer
        assert printed() == [1, 2, 3]
        with open(out, "rb") as f:
            stored = outcome_lines(d)
            assert f.read().splitlines() == [stored[s] for s in (1, 2, 3)]
        with open(state) as f:
            assert f.read().strip() == "3"

        # Killed; outcomes come meanwhile; back: it gets them, once each.
        c.kill()
        c.wait()
        for _ in range(2):
            post(d, "completed", amount=200, currency="USD")	# 4, 5
        run_consumer()
        wait_cursor(d, "socket", 5, timeout=40)
        assert printed() == [1, 2, 3, 4, 5]

        # A repeat (seq <= the one in its state file) is acked, not printed.
        assert d.stop() == 0			# the daemon lets go of the socket
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(sock)
        s.sendall(stored[2] + b"\n" + b'{"seq":6,"type":"payment.completed"}\n')
        acks = b""
        while acks.count(b"\n") < 2:
            chunk = s.recv(100)
            assert chunk, acks
            acks += chunk
        s.close()
        assert acks == b"2\n6\n"
        wait_for(lambda: printed() == [1, 2, 3, 4, 5, 6], 5, "seq 6 printed")
        with open(state) as f:
            assert f.read().strip() == "6"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
