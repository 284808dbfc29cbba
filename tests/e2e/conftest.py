"""Shared harness for the end-to-end tests: real binaries, loopback, tmp dirs.

Every daemon gets its own directory and a free port, so tests can run in any
order and never touch ./var.  Helpers sign requests exactly as VINR does
(SPEC §1.2, §1.3) with Python's own hmac, independent of the C code.
"""
import base64
import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import uuid

import pytest

from pg import PgCluster, daemon_pg_settings, pg_bindir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN_DIR = os.environ.get("VINR_BIN_DIR", os.path.join(ROOT, "build"))
DAEMON = os.path.join(BIN_DIR, "vinr-webhookd")
VINRCTL = os.path.join(BIN_DIR, "vinrctl")
SIM = os.path.join(BIN_DIR, "vinr-sim")

SECRET = "whsec_test_secret_0123456789"
# Standard Webhooks secrets are whsec_ + base64.
STD_SECRET = "whsec_" + base64.b64encode(b"standard-test-key-0123456789abcd").decode()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sign_vinr(body: bytes, secret=SECRET, t=None):
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
    return "t=%d,v1=%s" % (t, mac)


def sign_standard(body: bytes, msg_id, secret=STD_SECRET, t=None):
    t = int(time.time()) if t is None else t
    key = base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret)
    mac = hmac.new(key, ("%s.%d." % (msg_id, t)).encode() + body, hashlib.sha256).digest()
    return {"webhook-id": msg_id, "webhook-timestamp": str(t),
            "webhook-signature": "v1," + base64.b64encode(mac).decode()}


def make_event(status="completed", payment_id=None, event_id=None, etype=None, **fields):
    """A VINR event envelope whose payment object has the given status."""
    obj = {"id": payment_id or "tpay_" + uuid.uuid4().hex[:12], "status": status}
    obj.update(fields)
    return {
        "id": event_id or "evt_" + uuid.uuid4().hex[:16],
        "object": "event",
        "type": etype or "terminal_payment." + status,
        "createdAt": "2026-06-11T09:00:12Z",
        "livemode": False,
        "data": {"object": obj},
    }


def write_conf(path, sections):
    with open(path, "w") as f:
        for sec, kv in sections.items():
            f.write("[%s]\n" % sec)
            for k, v in kv.items():
                if v is None:
                    continue
                f.write("%s = %s\n" % (k, v))
            f.write("\n")


class Process:
    """A program of ours run by a test: its stderr in a file, SIGTERM to
    stop (returning the exit code), SIGKILL on cleanup.  Subclasses set
    self.dir, self.stderr_path and self.env, and say what "ready" is."""

    proc = None
    _stderr = None

    def _spawn(self, argv):
        self._stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(argv, cwd=self.dir, env=self.env,
                                     stdin=subprocess.DEVNULL,
                                     stdout=self._stderr, stderr=self._stderr)

    def _wait_ready(self, name, ready, timeout):
        """Polls ready() until it is true; fails if the process exits."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("%s exited %d:\n%s" % (name, self.proc.returncode,
                                                             self.log()))
            try:
                if ready():
                    return
            except OSError:
                pass
            time.sleep(0.03)
        raise AssertionError("%s not ready:\n%s" % (name, self.log()))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=20):
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=timeout)
        self._stderr.close()
        return rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._stderr:
            self._stderr.close()

    def log(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""


class Daemon(Process):
    """One vinr-webhookd process with its own files under a directory."""

    def __init__(self, workdir, scheme="vinr", secrets=None, conf=None, env=None,
                 pg=None, instance=None):
        """pg: a pg.PgDatabase to store in (backend = postgres) instead of
        the SQLite file; instance: its [storage] instance (default: the
        directory's name)."""
        self.dir = str(workdir)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.db_path = os.path.join(self.dir, "vinr.db")
        self.event_log = os.path.join(self.dir, "events.log")
        self.control = os.path.join(self.dir, "control.sock")
        self.secret_file = os.path.join(self.dir, "webhook-secret")
        self.stderr_path = os.path.join(self.dir, "daemon.log")
        self.scheme = scheme
        if secrets is None:
            secrets = [STD_SECRET if scheme == "standard" else SECRET]
        self.set_secrets(secrets)
        self.sections = {
            "http": {"listen": "127.0.0.1:%d" % self.port, "path": "/webhooks/vinr"},
            "webhook": {"scheme": scheme, "secret_file": self.secret_file},
            "storage": {"database": self.db_path, "event_log": self.event_log},
            "control": {"socket": self.control},
        }
        self.pg = pg
        self.backend = "postgres" if pg is not None else "sqlite"
        self.instance = None
        pg_env = {}
        if pg is not None:
            self.instance = instance or os.path.basename(self.dir)
            storage, pg_env = daemon_pg_settings(pg, self.instance)
            self.sections["storage"].update(storage)
        for sec, kv in (conf or {}).items():
            self.sections.setdefault(sec, {}).update(kv)
        self.conf_path = os.path.join(self.dir, "vinr.conf")
        write_conf(self.conf_path, self.sections)
        self.env = dict(os.environ)
        for k in ("VINR_WEBHOOK_SECRET", "VINR_API_KEY", "CREDENTIALS_DIRECTORY",
                  "JOURNAL_STREAM", "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID",
                  "VINR_PG_PASSWORD", "PGPASSWORD", "PGPASSFILE"):
            self.env.pop(k, None)
        self.env.update(pg_env)
        self.pg_env = pg_env  # for a run_webhookd() of this config
        self.env.update(env or {})
        self.proc = None
        self._stderr = None

    def set_secrets(self, secrets):
        with open(self.secret_file, "w") as f:
            f.write("\n".join(secrets) + "\n")

    # -- process ---------------------------------------------------------
    def start(self, wait=True, args=()):
        self._spawn([DAEMON, "-c", self.conf_path, *args])
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=15):
        self._wait_ready("daemon", lambda: self.request("GET", "/healthz", timeout=1)[0]
                         in (200, 503), timeout)

    # -- HTTP ------------------------------------------------------------
    def request(self, method, path, body=None, headers=None, timeout=30):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data
        finally:
            c.close()

    def post_event(self, event, secret=None, t=None, headers=None, path="/webhooks/vinr"):
        """Posts a correctly signed event (dict or bytes); returns (status, json)."""
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        h = {"Content-Type": "application/json"}
        if self.scheme == "standard":
            msg_id = "msg_" + uuid.uuid4().hex
            h.update(sign_standard(body, msg_id, secret or STD_SECRET, t))
        else:
            h["Vinr-Signature"] = sign_vinr(body, secret or SECRET, t)
        h.update(headers or {})
        st, _, data = self.request("POST", path, body, h)
        return st, json.loads(data)

    # -- state -----------------------------------------------------------
    def db(self):
        """A read-only sqlite3 connection (SQLite backend only: tests that
        need it run with the SQLite backend alone)."""
        assert self.pg is None, "db() is SQLite's; use query()"
        c = sqlite3.connect("file:%s?mode=ro" % self.db_path, uri=True, timeout=10)
        c.row_factory = sqlite3.Row
        return c

    def query(self, sql, *args):
        """Rows of sql ("?" placeholders) as tuples, from either backend."""
        if self.pg is not None:
            return self.pg.query(sql, *args)
        c = self.db()
        try:
            return [tuple(r) for r in c.execute(sql, args).fetchall()]
        finally:
            c.close()

    def write(self, sql, *args):
        """Runs a statement that changes the database, on either backend (as
        the superuser with PostgreSQL); best done while the daemon is
        stopped."""
        if self.pg is not None:
            self.pg.query(sql, *args)
            return
        c = sqlite3.connect(self.db_path, timeout=10)
        try:
            c.execute(sql, args)
            c.commit()
        finally:
            c.close()

    def cursor_sink(self, sink):
        """The name of sink's row in the cursors table: the event log's and
        the socket sink's are per instance with PostgreSQL (SPEC §8)."""
        if self.pg is not None and sink in ("eventlog", "socket"):
            return "%s@%s" % (sink, self.instance)
        return sink

    def snapshot(self):
        """Everything a bad request must not change."""
        return (self.query("SELECT * FROM events ORDER BY id"),
                self.query("SELECT * FROM payments ORDER BY id"),
                self.query("SELECT seq, json FROM outcomes ORDER BY seq"))

    def event_log_lines(self):
        try:
            with open(self.event_log) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def wait_event_log(self, n, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            lines = self.event_log_lines()
            if len(lines) >= n:
                return lines
            time.sleep(0.05)
        raise AssertionError("event log has %d lines, wanted %d" % (len(self.event_log_lines()), n))


# ---------------------------------------------------------------------------
# Storage backends (SPEC §8).  A module that sets
#     BACKENDS = ("sqlite", "postgres")
# runs each of its tests that starts a daemon (make_daemon, daemon, or any
# fixture built on them) once per backend: test_x[sqlite], test_x[postgres].
# A test of such a module that must stay on SQLite (it opens the database
# file itself) says why with @pytest.mark.sqlite_only("reason").  Every
# other module runs on SQLite alone, but for its tests marked
# @pytest.mark.backends("sqlite", "postgres").  The PostgreSQL cluster is
# started once, for the first test that needs it (pg_cluster), and each
# daemon gets a fresh database, dropped after its test.

def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only(reason): run on the SQLite "
                            "backend only, in a module that lists BACKENDS")
    config.addinivalue_line("markers", "backends(*names): the storage backends this "
                            "test runs on, whatever its module's BACKENDS")


def pytest_generate_tests(metafunc):
    if "backend" not in metafunc.fixturenames:
        return
    backends = getattr(metafunc.module, "BACKENDS", ("sqlite",))
    marker = metafunc.definition.get_closest_marker("backends")
    if marker:
        backends = marker.args
    if metafunc.definition.get_closest_marker("sqlite_only"):
        backends = ("sqlite",)
    # SQLite alone is the backend fixture's default: no [sqlite] in the ids
    # of the modules that do not take part.
    if tuple(backends) != ("sqlite",) or hasattr(metafunc.module, "BACKENDS"):
        metafunc.parametrize("backend", backends, indirect=True)


def skip_unless_postgres_runs():
    """Skips the calling test when no PostgreSQL can run here (fails it
    instead when VINR_E2E_REQUIRE_PG is set, as `make test` does)."""
    if pg_bindir() is None:
        if os.environ.get("VINR_E2E_REQUIRE_PG"):
            pytest.fail("PostgreSQL is not installed (make deps-pg)")
        pytest.skip("PostgreSQL is not installed (make deps-pg)")


@pytest.fixture(scope="session")
def pg_cluster():
    """The session's PostgreSQL cluster (pg.PgCluster), started on first use
    and removed at the end of the session, whatever happened."""
    if pg_bindir() is None:
        pytest.skip("PostgreSQL is not installed (make deps-pg)")
    cluster = PgCluster(free_port())
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


class SqliteBackend:
    name = "sqlite"

    def database_for(self, workdir):
        return None


class PostgresBackend:
    """One fresh database per daemon directory, so that a daemon made again
    on the same directory (a restart) finds its data, as with SQLite."""
    name = "postgres"

    def __init__(self, cluster):
        self.cluster = cluster
        self.databases = {}
        self.made = []

    def new_database(self):
        """A fresh database, dropped by close()."""
        db = self.cluster.new_database()
        self.made.append(db)
        return db

    def database_for(self, workdir):
        key = str(workdir)
        if key not in self.databases:
            self.databases[key] = self.new_database()
        return self.databases[key]

    def close(self):
        """Drops the databases (each is some MB: hundreds of tests would
        fill /tmp).  A cluster left stopped by a failed test keeps them."""
        for db in self.made:
            if self.cluster.running():
                self.cluster.psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db.name)
        self.made = []


@pytest.fixture
def backend(request):
    """The storage backend of this test's daemons (see pytest_generate_tests):
    .name ("sqlite" or "postgres") and .database_for(workdir), the pg.PgDatabase
    for a daemon in workdir (None with SQLite)."""
    name = getattr(request, "param", "sqlite")
    if name == "sqlite":
        yield SqliteBackend()
        return
    skip_unless_postgres_runs()
    pg = PostgresBackend(request.getfixturevalue("pg_cluster"))
    yield pg
    pg.close()


@pytest.fixture
def make_daemon(tmp_path, backend):
    """Factory: make_daemon(name="d", **Daemon kwargs) -> started Daemon,
    on the test's backend (see the backend fixture) unless pg= is given."""
    made = []

    def factory(name="d", start=True, **kw):
        if "pg" not in kw:
            kw["pg"] = backend.database_for(tmp_path / name)
        d = Daemon(tmp_path / name, **kw)
        made.append(d)
        if start:
            d.start()
        return d

    yield factory
    for d in made:
        d.kill()


@pytest.fixture
def daemon(make_daemon):
    return make_daemon()


# ---------------------------------------------------------------------------
# Added helpers (webhook / config / crash tests).  Only additions: nothing
# above is changed.

def clean_env(extra=None):
    """os.environ without anything that would feed the daemon a secret."""
    env = dict(os.environ)
    for k in ("VINR_WEBHOOK_SECRET", "VINR_API_KEY", "VINR_SIM_API_KEY",
              "CREDENTIALS_DIRECTORY", "JOURNAL_STREAM", "NOTIFY_SOCKET", "LISTEN_FDS",
              "LISTEN_PID", "WATCHDOG_USEC", "WATCHDOG_PID",
              "VINR_PG_PASSWORD", "PGPASSWORD", "PGPASSFILE"):
        env.pop(k, None)
    env.update(extra or {})
    return env


def run_webhookd(*args, env=None, cwd=None, timeout=15):
    """Runs vinr-webhookd to completion (-t, -V, bad configs): CompletedProcess
    with text stdout/stderr."""
    return subprocess.run([DAEMON, *args], cwd=cwd, env=clean_env(env),
                          stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


def raw_http(port, data, timeout=10, shutdown_write=False):
    """Sends raw bytes on a fresh connection and reads one response.
    Returns (status, headers with lower-case names, body bytes).  Also works
    when the server answers before the whole request was sent."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(data)
            if shutdown_write:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed before a response: %r" % buf)
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        while len(rest) < n:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, headers, rest[:n]
    finally:
        s.close()


def vinr_headers(body, secret=SECRET, t=None, content_type="application/json"):
    h = {"Vinr-Signature": sign_vinr(body, secret, t)}
    if content_type is not None:
        h["Content-Type"] = content_type
    return h


def _daemon_signed_headers(self, body, secret=None, t=None, msg_id=None,
                           content_type="application/json"):
    """The headers of a correctly signed delivery of body for this daemon's
    scheme (msg_id: the Standard Webhooks webhook-id)."""
    h = {}
    if content_type is not None:
        h["Content-Type"] = content_type
    if self.scheme == "standard":
        h.update(sign_standard(body, msg_id or "msg_" + uuid.uuid4().hex,
                               secret or STD_SECRET, t))
    else:
        h["Vinr-Signature"] = sign_vinr(body, secret or SECRET, t)
    return h


def _daemon_post_raw(self, body, headers, path="/webhooks/vinr"):
    """POSTs body with exactly these headers: (status, headers, parsed JSON
    or None when the body is not JSON)."""
    st, h, data = self.request("POST", path, body, headers)
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = None
    return st, h, parsed


def _daemon_event_log_bytes(self):
    try:
        with open(self.event_log, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def _daemon_wait_log(self, needle, timeout=10):
    """Waits until the daemon's stderr log contains needle; returns the log."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = self.log()
        if needle in text:
            return text
        time.sleep(0.05)
    raise AssertionError("%r not in the daemon log:\n%s" % (needle, self.log()))


def _daemon_outcomes(self):
    """The outcomes table as parsed JSON, in seq order."""
    return [json.loads(j) for (j,) in self.query("SELECT json FROM outcomes ORDER BY seq")]


Daemon.signed_headers = _daemon_signed_headers
Daemon.post_raw = _daemon_post_raw
Daemon.event_log_bytes = _daemon_event_log_bytes
Daemon.wait_log = _daemon_wait_log
Daemon.outcomes = _daemon_outcomes


# ---------------------------------------------------------------------------
# vinr-sim helpers (tests/e2e/test_sim.py; usable by any test that needs a
# VINR cloud).  Only additions: nothing above is changed.

SIM_KEY = "sk_test_e2e_0123456789"


def write_secret_file(path, values):
    """Writes values one per line to path, mode 0600 from its creation."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("".join(v + "\n" for v in values))
    return path


class Sim(Process):
    """One vinr-sim process on a free port.  With daemon=, its webhooks go
    to that Daemon, signed with the daemon's scheme and default secret.
    The secrets go to files in the sim's directory (mode 0600), never on its
    command line: secrets= to webhook-secret (--webhook-secret-file), api_key=
    to api-key (--api-key-file)."""

    def __init__(self, workdir, daemon=None, webhook_url=None, scheme=None,
                 secrets=None, args=(), env=None, api_key=None):
        self.dir = str(workdir)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.stderr_path = os.path.join(self.dir, "sim.log")
        if daemon is not None:
            webhook_url = webhook_url or "http://127.0.0.1:%d/webhooks/vinr" % daemon.port
            scheme = scheme or daemon.scheme
        self.scheme = scheme or "vinr"
        if secrets is None:
            secrets = [STD_SECRET if self.scheme == "standard" else SECRET]
        self.argv = [SIM, "--listen", "127.0.0.1:%d" % self.port, "--scheme", self.scheme]
        if webhook_url:
            self.argv += ["--webhook-url", webhook_url]
        self.secret_file = self.api_key_file = None
        if secrets:
            self.secret_file = write_secret_file(
                os.path.join(self.dir, "webhook-secret"), secrets)
            self.argv += ["--webhook-secret-file", self.secret_file]
        if api_key is not None:
            self.api_key_file = write_secret_file(os.path.join(self.dir, "api-key"),
                                                  [api_key])
            self.argv += ["--api-key-file", self.api_key_file]
        self.argv += list(args)
        self.env = clean_env(env)
        self.proc = None
        self._stderr = None

    def start(self, wait=True):
        self._spawn(self.argv)
        if wait:
            self._wait_ready("vinr-sim", lambda: self.request(
                "GET", "/_sim/stats", key=None, timeout=1)[0] == 200, 10)
        return self

    def stop(self, timeout=10):
        rc = Process.stop(self, timeout)
        # SPEC §8: the database password never reaches a log.
        pw = getattr(self, "pg_env", {}).get("VINR_PG_PASSWORD")
        assert not pw or pw not in self.log(), "the PostgreSQL password is in the log"
        return rc

    # -- HTTP ------------------------------------------------------------
    def request(self, method, path, body=None, key=SIM_KEY, headers=None, timeout=30):
        """(status, headers with lower-case names, parsed JSON or None)."""
        h = {}
        if key is not None:
            h["Authorization"] = "Bearer " + key
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            try:
                parsed = json.loads(data) if data else None
            except ValueError:
                parsed = None
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), parsed
        finally:
            c.close()

    def create(self, delay=0, key=SIM_KEY, **fields):
        """POST /v1/terminal/payments?simulateDelay=delay: (status, json)."""
        body = {"terminalId": "term_test_simulator", "amount": 2500, "currency": "USD",
                "reference": "order_" + uuid.uuid4().hex[:8]}
        body.update(fields)
        path = "/v1/terminal/payments"
        if delay is not None:
            path += "?simulateDelay=%s" % delay
        st, _, data = self.request("POST", path, body, key=key)
        return st, data

    def get(self, pid):
        st, _, data = self.request("GET", "/v1/terminal/payments/" + pid)
        return st, data

    def cancel(self, pid):
        st, _, data = self.request("POST", "/v1/terminal/payments/%s/cancel" % pid)
        return st, data

    def capture(self, pid, amount=None):
        body = {} if amount is None else {"amount": amount}
        st, _, data = self.request("POST", "/v1/terminal/payments/%s/capture" % pid, body)
        return st, data

    def stats(self):
        return self.request("GET", "/_sim/stats", key=None)[2]

    def payments(self):
        return self.request("GET", "/_sim/payments", key=None)[2]["payments"]

    def events(self):
        return self.request("GET", "/_sim/events", key=None)[2]["events"]

    def cards(self):
        return self.request("GET", "/_sim/cards", key=None)[2]["cards"]

    def set_faults(self, spec):
        st, _, data = self.request("POST", "/_sim/faults", spec, key=None)
        return st, data

    def wait_status(self, pid, statuses, timeout=10):
        """Polls the API until the payment's status is one of statuses."""
        if isinstance(statuses, str):
            statuses = (statuses,)
        deadline = time.time() + timeout
        while time.time() < deadline:
            st, p = self.get(pid)
            if st == 200 and p["status"] in statuses:
                return p
            time.sleep(0.02)
        raise AssertionError("payment %s not in %s: %r" % (pid, statuses, self.get(pid)))

    def wait_sent(self, timeout=15):
        """Waits until no webhook delivery is queued or in flight; returns
        the events (GET /_sim/events)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            evs = self.events()
            if all(e["delivery"] != "queued" for e in evs):
                return evs
            time.sleep(0.03)
        raise AssertionError("deliveries still queued: %r" % self.events())


@pytest.fixture
def make_sim(tmp_path):
    """Factory: make_sim(name="sim", start=True, **Sim kwargs) -> Sim."""
    made = []

    def factory(name="sim", start=True, **kw):
        s = Sim(tmp_path / name, **kw)
        made.append(s)
        if start:
            s.start()
        return s

    yield factory
    for s in made:
        s.kill()


# ---------------------------------------------------------------------------
# Control socket helpers (tests/e2e/test_control.py; usable by any test that
# talks to [control] socket).  Only additions: nothing above is changed.

class ControlClient:
    """One connection to a daemon's control socket: JSON lines both ways."""

    def __init__(self, path, timeout=10):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)        # blocking: waits if the backlog is full
        self.sock.settimeout(timeout)
        self.buf = b""

    def send(self, req):
        """Sends a dict as one JSON line, or bytes as they are."""
        data = req if isinstance(req, bytes) else json.dumps(req).encode() + b"\n"
        self.sock.sendall(data)

    def recv_line(self, timeout=None):
        """The next line (bytes, without its newline), or None at EOF."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def recv(self, timeout=None):
        """The next line parsed, or None at EOF."""
        line = self.recv_line(timeout)
        return None if line is None else json.loads(line)

    def request(self, req, timeout=None):
        self.send(req)
        return self.recv(timeout)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _daemon_control_client(self, timeout=10):
    return ControlClient(self.control, timeout)


def _daemon_ctl(self, req, timeout=10):
    """One request on a fresh control connection; the parsed response."""
    with ControlClient(self.control, timeout) as c:
        return c.request(req)


def run_vinrctl(*args, socket_path=None, env=None, timeout=30, **kw):
    """Runs vinrctl to completion: CompletedProcess with text stdout/stderr.
    socket_path: passed as -s."""
    argv = [VINRCTL]
    if socket_path is not None:
        argv += ["-s", socket_path]
    return subprocess.run(argv + list(args), env=clean_env(env), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout, **kw)


def _daemon_vinrctl(self, *args, **kw):
    return run_vinrctl(*args, socket_path=self.control, **kw)


Daemon.control_client = _daemon_control_client
Daemon.ctl = _daemon_ctl
Daemon.vinrctl = _daemon_vinrctl


def wait_for(pred, timeout=15, what="a condition", step=0.05):
    """Polls pred every step seconds until it returns something true, and
    returns that; fails after timeout seconds, saying what and the last
    value seen."""
    deadline = time.time() + timeout
    while True:
        last = pred()
        if last:
            return last
        if time.time() > deadline:
            raise AssertionError("timed out after %ss waiting for %s (last: %r)"
                                 % (timeout, what, last))
        time.sleep(step)
