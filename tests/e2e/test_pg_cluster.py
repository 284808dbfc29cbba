"""Several instances on one PostgreSQL database (SPEC §8, issue 14).

Two daemons with their own instance names, ports, control sockets and
event logs share one fresh database of the suite's cluster (conftest.py's
pg_cluster, scripts/pg-scratch.sh): under concurrent load, with some
deliveries sent to both, every acknowledged event is stored once, seq stays
gap-free, no payment gets two finals, and each event log is complete; wait
and subscribe on one are woken by a webhook on the other; the hook runs on
one instance at a time and is taken over after a SIGKILL; the database
stopped under load gives 503 and never a false 200, and the same daemons
recover by themselves; a SIGKILL of one instance loses nothing acknowledged.

The first tests check the cluster fixture itself, with no daemon.
"""
import json
import os
import random
import signal
import subprocess
import threading
import time
import uuid

import pytest

from conftest import PostgresBackend, make_event, wait_for
from pg import PgError
from test_crash import FINALS, RANK, check_event_log, make_workload, post
from test_sinks import HookDir

# Every daemon test here is a postgres one (and is skipped like the rest of
# the postgres half while the daemon refuses the backend).
BACKENDS = ("postgres",)


# ---------------------------------------------------------------------------
# the fixture itself

def test_cluster_gives_fresh_databases_on_loopback(pg_cluster):
    backend = PostgresBackend(pg_cluster)
    try:
        check_fresh_databases(pg_cluster, backend)
    finally:
        backend.close()
    assert pg_cluster.query("SELECT count(*) FROM pg_database WHERE datname IN (?, ?)",
                            backend.databases["/x/one"].name,
                            backend.databases["/x/two"].name) == [(0,)]


def check_fresh_databases(pg_cluster, backend):
    one = backend.database_for("/x/one")
    two = backend.database_for("/x/two")
    assert backend.database_for("/x/one") is one        # a restart finds its data
    assert one.name != two.name
    assert pg_cluster.query("SHOW listen_addresses") == [("127.0.0.1",)]
    assert os.stat(os.path.join(pg_cluster.dir, "data")).st_uid != 0
    owner = pg_cluster.query("SELECT pg_get_userbyid(datdba) FROM pg_database "
                             "WHERE datname = ?", one.name)
    assert owner == [("vinr",)]
    # The daemons' way in: role vinr over TCP with the password.
    psql = os.path.join(pg_cluster.bindir, "psql")
    env = {"PATH": "/usr/bin:/bin", "PGPASSWORD": one.password}
    r = subprocess.run([psql, "-X", "-At", one.dsn, "-c",
                        "CREATE TABLE t (a bigint, b text); "
                        "INSERT INTO t VALUES (9223372036854775807, 'it''s')"],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([psql, "-X", "-At", one.dsn, "-c", "SELECT 1"],
                       env=dict(env, PGPASSWORD="wrong"), capture_output=True,
                       text=True, timeout=30)
    assert r.returncode != 0 and "password authentication failed" in r.stderr
    assert one.query("SELECT a, b, NULL, count(*) OVER () FROM t WHERE b = ?", "it's") == \
        [(9223372036854775807, "it's", None, 1)]
    assert two.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]


def test_cluster_stop_kill_start_and_terminate(pg_cluster):
    backend = PostgresBackend(pg_cluster)
    try:
        check_stop_kill_start_and_terminate(pg_cluster, backend.new_database())
    finally:
        backend.close()


def check_stop_kill_start_and_terminate(pg_cluster, db):
    db.query("CREATE TABLE t (a int); INSERT INTO t VALUES (1)")
    for how in (pg_cluster.stop, pg_cluster.kill):
        how()
        assert not pg_cluster.running()
        with pytest.raises(OSError):
            db.query("SELECT 1")
        pg_cluster.start()
        assert db.query("SELECT a FROM t") == [(1,)]
    # A session of the daemons' role is ended by terminate_backends().
    sleeper = subprocess.Popen(
        [os.path.join(pg_cluster.bindir, "psql"), "-X", db.dsn, "-c", "SELECT pg_sleep(30)"],
        env={"PATH": "/usr/bin:/bin", "PGPASSWORD": db.password},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: db.query("SELECT count(*) FROM pg_stat_activity WHERE "
                                  "usename = 'vinr' AND datname = ?", db.name)[0][0] == 1,
                 what="the vinr session")
        assert db.terminate_backends() == 1
        assert sleeper.wait(timeout=10) != 0
    finally:
        sleeper.kill()
        sleeper.wait()
    with pytest.raises(PgError):
        db.query("SELECT nope")


# ---------------------------------------------------------------------------
# helpers

@pytest.fixture
def pair(make_daemon, backend):
    """factory(conf=None, names=("a", "b"), start=True): daemons on one fresh
    database, each its own instance (named as its directory) with its own
    port, control socket and event log.  conf: a dict for all, or a function
    of the instance name returning one."""
    def factory(conf=None, names=("a", "b"), start=True):
        db = backend.new_database()
        made = []
        for name in names:
            c = conf(name) if callable(conf) else conf
            made.append(make_daemon(name, pg=db, instance=name, conf=c, start=start))
        return made
    return factory


def post_event(d, ev, timeout=30):
    return post(d.port, json.dumps(ev).encode(), timeout=timeout)


class Loader:
    """Threads that post jobs (event, daemon) from a list, or fresh events
    (make) until stopped, recording (event, daemon, status, body, time);
    a failed request is recorded with status None and the exception."""

    def __init__(self, jobs=None, make=None, threads=8):
        self.jobs = iter(jobs or ())
        self.make = make
        self.results = []
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _next(self):
        with self.lock:
            job = next(self.jobs, None)
        if job is None and self.make is not None and not self.halt.is_set():
            job = self.make()
        return job

    def _run(self):
        while not self.halt.is_set():
            job = self._next()
            if job is None:
                return
            ev, d = job
            try:
                st, body = post_event(d, ev)
            except (OSError, ValueError) as exc:
                st, body = None, repr(exc)
            with self.lock:
                self.results.append((ev, d, st, body, time.time()))

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.halt.set()
        self.join()

    def join(self):
        for t in self.threads:
            t.join(timeout=120)
            assert not t.is_alive(), "a loader thread hangs"

    def acked(self):
        """The events answered 200 for them (once each)."""
        seen = {}
        for ev, _, st, body, _ in self.results:
            if st == 200 and body.get("eventId") == ev["id"]:
                seen[ev["id"]] = ev
        return list(seen.values())


def fresh_events(daemons):
    """make() for Loader: a new payment's event, to each daemon in turn."""
    rnd, lock, n = random.Random(5), threading.Lock(), [0]

    def make():
        with lock:
            n[0] += 1
            d = daemons[n[0] % len(daemons)]
        st = rnd.choice(("pending", "authorized", "completed", "failed"))
        return make_event(st, amount=n[0], currency="USD"), d
    return make


def check_store(dm, acked):
    """What must hold in the shared database: every acknowledged event
    stored (once: events are keyed by id), one outcome per transition with
    seq 1..N gap-free and the counter at N, and per payment rising ranks,
    a chained previousStatus, at most one final, the stored status the last
    outcome's.  Returns the outcomes."""
    ids = dict(dm.query("SELECT id, result FROM events"))
    missing = [e["id"] for e in acked if e["id"] not in ids]
    assert not missing, "acknowledged but not stored: %s" % missing[:5]
    seqs = [r[0] for r in dm.query("SELECT seq FROM outcomes ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1)), "seq has holes"
    assert dm.query("SELECT last_seq FROM seq_counter") == [(len(seqs),)]
    outs = dm.outcomes()
    assert [o["seq"] for o in outs] == seqs
    event_ids = [o["eventId"] for o in outs]
    assert len(set(event_ids)) == len(event_ids), "an event made two outcomes"
    assert set(event_ids) == {i for i, r in ids.items() if r == "transition"}
    by_pid = {}
    for o in outs:
        by_pid.setdefault(o["paymentId"], []).append(o)
    stored = dict(dm.query("SELECT id, status FROM payments"))
    for pid, chain in by_pid.items():
        finals = [o["seq"] for o in chain if o["status"] in FINALS]
        assert len(finals) <= 1, "payment %s has two finals: seq %s" % (pid, finals)
        prev = None
        for o in chain:
            assert o["previousStatus"] == prev, (pid, chain)
            assert prev is None or RANK[o["status"]] > RANK[prev], (pid, chain)
            prev = o["status"]
        assert stored[pid] == prev
    return outs


def finals_race(n):
    """n payments, each with a completed and a failed event: one for each
    instance, to be posted at the same time."""
    out = []
    for _ in range(n):
        pid = "tpay_race_" + uuid.uuid4().hex[:10]
        out.append((make_event("completed", payment_id=pid, amount=100, currency="USD"),
                    make_event("failed", payment_id=pid, amount=100, currency="USD")))
    return out


# ---------------------------------------------------------------------------
# two instances under load

def test_two_instances_under_load_share_one_history(pair):
    a, b = pair()
    rnd = random.Random(14)
    events = make_workload(800, seed=14)
    jobs, both = [], set()
    for ev in events:
        if rnd.random() < 0.15:             # a delivery VINR retried elsewhere
            both.add(ev["id"])
            jobs += [(ev, a), (ev, b)]
        else:
            jobs.append((ev, rnd.choice((a, b))))
    races = finals_race(20)
    for done, failed in races:
        jobs += [(done, a), (failed, b)]
    # Keep each pair next to each other so that two threads send it at once.
    pairs = [jobs[i:i + 2] for i in range(0, len(jobs), 2)]
    rnd.shuffle(pairs)
    loader = Loader([j for p in pairs for j in p], threads=12).start()
    loader.join()

    bad = [(d.instance, st, body) for _, d, st, body, _ in loader.results if st != 200]
    assert not bad, bad[:5]
    fresh = {}
    for ev, _, _, body, _ in loader.results:
        assert body["eventId"] == ev["id"] and body["received"] is True
        fresh[ev["id"]] = fresh.get(ev["id"], 0) + (body["duplicate"] is False)
    # Each event new exactly once, wherever it went (twice for some).
    assert set(fresh.values()) == {1}, [i for i, n in fresh.items() if n != 1][:5]
    sent = {ev["id"] for ev, _ in jobs}
    assert len(fresh) == len(sent)

    outs = check_store(a, loader.acked())
    assert a.query("SELECT count(*) FROM events") == [(len(sent),)]
    assert b.outcomes() == outs
    # The racing finals: one wins, the other is recorded as a conflict.
    for done, failed in races:
        pid = done["data"]["object"]["id"]
        results = sorted(r for (r,) in a.query(
            "SELECT result FROM events WHERE payment_id = ?", pid))
        assert results == ["conflict", "transition"], (pid, results)
    # Each instance's own event log has every outcome once, in seq order.
    for d in (a, b):
        check_event_log(d, outs, allow_repeats=False)
    assert a.stop() == 0 and b.stop() == 0


def test_wait_and_subscribe_on_one_instance_woken_by_the_other(pair):
    a, b = pair()
    pid = "tpay_" + uuid.uuid4().hex[:12]
    with a.control_client(timeout=15) as waiter, a.control_client(timeout=15) as sub:
        assert sub.request({"cmd": "subscribe", "since": 0})["ok"] is True
        waiter.send({"cmd": "wait", "paymentId": pid, "timeout": 10, "id": 1})
        time.sleep(0.5)                     # the wait is registered on a
        st, body = post_event(b, make_event("completed", payment_id=pid, amount=2500,
                                            currency="USD"))
        assert st == 200 and body["duplicate"] is False
        t0 = time.monotonic()
        r = waiter.recv(timeout=10)
        woke = time.monotonic() - t0
        assert r["ok"] is True and r["id"] == 1, r
        assert r["payment"]["paymentId"] == pid and r["payment"]["status"] == "completed"
        assert woke < 2.0, "wait woke %.2f s after the commit on b" % woke
        line = sub.recv(timeout=3)
        assert line["seq"] == 1 and line["paymentId"] == pid, line
    # And the other way round.
    pid2 = "tpay_" + uuid.uuid4().hex[:12]
    with b.control_client(timeout=15) as waiter:
        waiter.send({"cmd": "wait", "paymentId": pid2, "timeout": 10})
        time.sleep(0.3)
        assert post_event(a, make_event("failed", payment_id=pid2))[0] == 200
        t0 = time.monotonic()
        r = waiter.recv(timeout=10)
        assert r["ok"] is True and r["payment"]["status"] == "failed", r
        assert time.monotonic() - t0 < 2.0


def hook_intervals(hook, killed_at=None):
    """[(start, end, seq)] of one instance's hook runs; a run that never
    ended (its daemon was killed) ends at killed_at."""
    starts = [(t, seq) for seq, t, _, _ in hook.runs()]
    ends = [float(line.split()[1]) for line in hook.read("ends").splitlines()]
    out = []
    for i, (t, seq) in enumerate(starts):
        if i < len(ends):
            out.append((t, ends[i], seq))
        else:
            assert i == len(starts) - 1 and killed_at is not None, \
                "a run of %s never ended" % hook.path
            out.append((t, killed_at, seq))
    return out


def test_one_hook_runner_and_takeover_after_sigkill(pair, tmp_path):
    takeover = 2
    hooks = {n: HookDir(tmp_path, 'sleep 0.05\necho "$VINR_SEQ $(date +%s.%N)" >> "$D/ends"\nok',
                        name="hook-" + n) for n in ("a", "b")}
    a, b = pair(conf=lambda n: {"forward": {"hook": hooks[n].path, "events": "all"},
                                "storage": {"takeover": str(takeover)}})
    daemons = {"a": a, "b": b}
    for i in range(24):
        assert post_event((a, b)[i % 2], make_event("pending"))[0] == 200
    delivered = lambda: sorted(set(hooks["a"].delivered()) | set(hooks["b"].delivered()))
    wait_for(lambda: len(delivered()) >= 6, what="some hook runs")
    # Kill the instance that runs the hook now, in the middle of its backlog.
    runner = max(("a", "b"), key=lambda n: max([t for _, t, _, _ in hooks[n].runs()],
                                                default=0))
    other = "b" if runner == "a" else "a"
    daemons[runner].proc.send_signal(signal.SIGKILL)
    daemons[runner].proc.wait()
    killed_at = time.time()
    assert len(delivered()) < 24, "the backlog was gone before the kill"
    for i in range(6):
        assert post_event(daemons[other], make_event("pending"))[0] == 200
    wait_for(lambda: delivered() == list(range(1, 31)), timeout=takeover + 30,
             what="every seq through the hook (have %s)" % delivered())

    taken = [t for _, t, _, _ in hooks[other].runs() if t > killed_at]
    assert taken, "%s never ran the hook" % other
    assert taken[0] - killed_at <= takeover + 3, \
        "took over %.1f s after the kill" % (taken[0] - killed_at)
    # Never two runs at once, over both instances.
    runs = sorted(hook_intervals(hooks[runner], killed_at) + hook_intervals(hooks[other]))
    for (s1, e1, q1), (s2, e2, q2) in zip(runs, runs[1:]):
        assert s2 >= e1, "seq %d started at %.3f while seq %d ran (to %.3f)" % (
            q2, s2, q1, e1)
    wait_for(lambda: daemons[other].query("SELECT seq FROM cursors WHERE sink = 'hook'")
             == [(30,)], what="the shared hook cursor at 30")
    assert daemons[other].stop() == 0


# ---------------------------------------------------------------------------
# failures

def healthz(d):
    return d.request("GET", "/healthz", timeout=10)[0]


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_database_stopped_under_load(pair, backend, how):
    cluster = backend.cluster
    a, b = pair()
    pids = (a.proc.pid, b.proc.pid)
    loader = Loader(make=fresh_events([a, b]), threads=8).start()
    try:
        time.sleep(1)
        getattr(cluster, how)()
        down_at = time.time()
        for d in (a, b):
            wait_for(lambda: healthz(d) == 503, timeout=10, what="/healthz 503 on " + d.instance)
        time.sleep(1.5)
        # The server takes connections before pg_ctl returns: a 200 may
        # come from then on.
        start_at = time.time()
        cluster.start()
        up_at = time.time()
        # The same daemons answer 200 again by themselves.
        for d in (a, b):
            wait_for(lambda: any(st == 200 and t > up_at and dd is d
                                 for _, dd, st, _, t in list(loader.results)),
                     timeout=30, what="a 200 from %s after the restart" % d.instance)
    finally:
        loader.stop()
        if not cluster.running():
            cluster.start()
    assert (a.proc.poll(), b.proc.poll()) == (None, None)
    assert (a.proc.pid, b.proc.pid) == pids
    answers = {}
    for ev, d, st, body, t in loader.results:
        assert st in (200, 503), (d.instance, st, body)
        if st == 503:
            assert body == {"error": "storage_unavailable"}, body
        answers[st] = answers.get(st, 0) + 1
    assert answers.get(503), "no 503 while the database was down"
    assert answers.get(200, 0) > 20
    # (A commit just before the shutdown may be answered a moment later.)
    late = [t for _, _, st, _, t in loader.results if st == 200 and down_at + 1 < t < start_at]
    assert not late, "200 answered while the database was down"
    check_store(a, loader.acked())
    wait_for(lambda: healthz(a) == 200 and healthz(b) == 200, what="/healthz 200 again")
    assert a.stop() == 0 and b.stop() == 0


def test_sigkill_of_one_instance_under_load(pair):
    a, b = pair()
    loader = Loader(make=fresh_events([a, b]), threads=10).start()
    try:
        time.sleep(1)
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        killed_at = time.time()
        time.sleep(1)
    finally:
        loader.stop()
    for ev, d, st, body, t in loader.results:
        if d is b or t < killed_at - 0.5:
            assert st == 200, (d.instance, st, body)
    acked = loader.acked()
    assert len([ev for ev, d, st, _, t in loader.results if d is b and t > killed_at]) > 10
    outs = check_store(b, acked)
    check_event_log(b, outs, allow_repeats=False)
    # The survivor goes on from the next seq; the killed one catches up.
    ev = make_event("completed")
    assert post_event(b, ev)[0] == 200
    last = b.outcomes()[-1]
    assert (last["seq"], last["eventId"]) == (len(outs) + 1, ev["id"])
    a.start()
    outs = check_store(a, acked + [ev])
    check_event_log(a, outs, allow_repeats=True)
    assert a.stop() == 0 and b.stop() == 0


# ---------------------------------------------------------------------------
# where the password comes from (SPEC §8): never the INI file

def test_password_from_pgpassfile_or_credential_never_the_file(make_daemon, tmp_path):
    from conftest import run_webhookd
    # libpq's own PGPASSFILE, with no VINR_PG_PASSWORD.
    a = make_daemon("a", start=False)
    pw = a.pg_env["VINR_PG_PASSWORD"]
    passfile = tmp_path / "pgpass"
    passfile.write_text("127.0.0.1:*:*:vinr:%s\n" % pw)
    os.chmod(passfile, 0o600)
    a.env.pop("VINR_PG_PASSWORD")
    a.env["PGPASSFILE"] = str(passfile)
    a.start()
    assert a.post_event(make_event("completed"))[0] == 200
    assert pw not in open(a.conf_path).read()
    assert a.stop() == 0
    # The pg-password credential (systemd's LoadCredential=).
    b = make_daemon("b", start=False)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "pg-password").write_text(pw + "\n")
    b.env.pop("VINR_PG_PASSWORD")
    b.env["CREDENTIALS_DIRECTORY"] = str(creds)
    b.start()
    assert b.post_event(make_event("completed"))[0] == 200
    assert b.stop() == 0
    # None at all: it does not start, says why, and shows no password.
    r = run_webhookd("-c", b.conf_path)
    assert r.returncode == 1, r.stderr
    assert "password" in r.stderr and pw not in r.stderr
