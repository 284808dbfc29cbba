"""A throwaway PostgreSQL cluster for the end-to-end tests (SPEC §8).

The cluster is scripts/pg-scratch.sh's: initdb in a temporary directory as
an unprivileged user, listening on 127.0.0.1 and on a Unix socket in that
directory, role "vinr" (password PG_PASSWORD) for the daemons over TCP, the
superuser "postgres" trusted over the socket for the tests.  conftest.py
starts it once per session, and only when a test asks for it.

The tests read the daemons' tables through query(): a small client of
PostgreSQL's wire protocol (simple queries over the Unix socket, trust
authentication), so that rows come back typed (int, str, None) as
sqlite3's do, with no driver to install.
"""
import os
import re
import secrets
import shutil
import socket
import struct
import subprocess
import tempfile
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRATCH = os.path.join(ROOT, "scripts", "pg-scratch.sh")
PG_PASSWORD = "vinr-e2e-" + secrets.token_hex(8)


def pg_bindir():
    """The newest installed PostgreSQL server's bin directory, or None."""
    base = "/usr/lib/postgresql"
    try:
        versions = sorted((v for v in os.listdir(base) if v.isdigit()), key=int)
    except OSError:
        return None
    for v in reversed(versions):
        d = os.path.join(base, v, "bin")
        if os.path.exists(os.path.join(d, "pg_ctl")):
            return d
    return None


# -- the wire protocol (just what the tests need) ----------------------------

INT_TYPES = {20, 21, 23, 26}            # int8 int2 int4 oid
FLOAT_TYPES = {700, 701}
BOOL_TYPE = 16
NUMERIC_TYPE = 1700


class PgError(Exception):
    """An ErrorResponse: .fields maps the one-letter codes (C = SQLSTATE)."""

    def __init__(self, fields):
        self.fields = fields
        super().__init__("%s: %s" % (fields.get("C", "?"), fields.get("M", "?")))


def literal(v):
    """v as an SQL literal (the tests' own values, never hostile input)."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, bytes):
        v = v.decode()
    return "'" + str(v).replace("'", "''") + "'"


def bind(sql, args):
    """sqlite3's "?" placeholders filled in with literals (a "?" inside a
    quoted string or identifier stays)."""
    if not args:
        return sql
    out, it, quote = [], iter(args), None
    for ch in sql:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            try:
                out.append(literal(next(it)))
            except StopIteration:
                raise ValueError("more placeholders than arguments: %s" % sql)
            continue
        out.append(ch)
    if next(it, StopIteration) is not StopIteration:
        raise ValueError("more arguments than placeholders: %s" % sql)
    return "".join(out)


def convert(typ, raw):
    if raw is None:
        return None
    s = raw.decode()
    if typ in INT_TYPES:
        return int(s)
    if typ == BOOL_TYPE:
        return s == "t"
    if typ in FLOAT_TYPES:
        return float(s)
    if typ == NUMERIC_TYPE:
        return int(s) if re.fullmatch(r"-?\d+", s) else float(s)
    return s


class Conn:
    """One connection over the Unix socket as the trusted superuser."""

    def __init__(self, sockdir, port, db, user="postgres", timeout=30):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(os.path.join(sockdir, ".s.PGSQL.%d" % port))
        params = b"user\0%s\0database\0%s\0\0" % (user.encode(), db.encode())
        self.sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
        while True:
            t, body = self._msg()
            if t == b"R" and struct.unpack("!i", body[:4])[0] != 0:
                raise PgError({"M": "authentication other than trust asked for"})
            if t == b"E":
                raise PgError(self._fields(body))
            if t == b"Z":
                return

    def _recv(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("PostgreSQL closed the connection")
            buf += chunk
        return buf

    def _msg(self):
        head = self._recv(5)
        n = struct.unpack("!i", head[1:])[0]
        return head[:1], self._recv(n - 4)

    @staticmethod
    def _fields(body):
        return {p[:1].decode(): p[1:].decode(errors="replace")
                for p in body.split(b"\0") if p}

    def execute(self, sql):
        """Runs one simple query (several statements allowed); the rows of
        the last result as tuples.  Raises PgError on an error."""
        q = sql.encode() + b"\0"
        self.sock.sendall(b"Q" + struct.pack("!i", 4 + len(q)) + q)
        rows, types, err = [], [], None
        while True:
            t, body = self._msg()
            if t == b"T":
                rows, types = [], []
                n, off = struct.unpack("!h", body[:2])[0], 2
                for _ in range(n):
                    off = body.index(b"\0", off) + 1
                    types.append(struct.unpack("!i", body[off + 6:off + 10])[0])
                    off += 18
            elif t == b"D":
                n, off, row = struct.unpack("!h", body[:2])[0], 2, []
                for i in range(n):
                    ln = struct.unpack("!i", body[off:off + 4])[0]
                    off += 4
                    raw = None if ln < 0 else body[off:off + ln]
                    off += max(ln, 0)
                    row.append(convert(types[i], raw))
                rows.append(tuple(row))
            elif t == b"E":
                err = PgError(self._fields(body))
            elif t == b"Z":
                if err:
                    raise err
                return rows

    def close(self):
        try:
            self.sock.sendall(b"X" + struct.pack("!i", 4))
        except OSError:
            pass
        self.sock.close()


# -- the cluster -------------------------------------------------------------

class PgDatabase:
    """One database of the cluster: what a Daemon needs to use it."""

    def __init__(self, cluster, name):
        self.cluster = cluster
        self.name = name
        self.dsn = "postgresql://vinr@127.0.0.1:%d/%s" % (cluster.port, name)
        self.password = cluster.password

    def query(self, sql, *args):
        return self.cluster.query(sql, *args, db=self.name)

    def terminate_backends(self):
        return self.cluster.terminate_backends(self.name)


class PgCluster:
    """A cluster started by scripts/pg-scratch.sh in its own directory.
    start() may be called again after stop() or kill() (same data)."""

    def __init__(self, port, password=PG_PASSWORD):
        self.bindir = pg_bindir()
        # pytest's basetemp is 0700: the server's user could not enter it.
        self.dir = tempfile.mkdtemp(prefix="vinr-e2e-pg-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.port = port
        self.password = password
        self._n = 0
        self._lock = threading.Lock()

    def _scratch(self, *args, timeout=120):
        r = subprocess.run([SCRATCH, *args], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=timeout)
        if r.returncode != 0:
            raise AssertionError("pg-scratch.sh %s failed (%d):\n%s%s\n%s" % (
                args[0], r.returncode, r.stdout, r.stderr, self.server_log()))

    def start(self):
        self._scratch("start", self.dir, str(self.port), self.password)
        return self

    def stop(self):
        """Fast shutdown: clients are disconnected, the data is kept."""
        self._scratch("stop", self.dir)

    def kill(self):
        """Immediate shutdown (like a crash of the server)."""
        self._scratch("kill", self.dir)

    def running(self):
        return os.path.exists(os.path.join(self.dir, "data", "postmaster.pid"))

    def remove(self):
        """Stops the cluster if it runs, and removes its directory."""
        try:
            if self.running():
                self.kill()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def server_log(self):
        try:
            with open(os.path.join(self.dir, "server.log"), errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    # -- SQL as the superuser ------------------------------------------------
    def psql(self, sql, db="postgres"):
        """psql -At as the superuser over the Unix socket: its stdout."""
        r = subprocess.run([os.path.join(self.bindir, "psql"), "-X", "-At", "-v",
                            "ON_ERROR_STOP=1", "-h", self.dir, "-p", str(self.port),
                            "-U", "postgres", "-d", db, "-c", sql],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           timeout=60)
        if r.returncode != 0:
            raise AssertionError("psql %r: %s" % (sql, r.stderr))
        return r.stdout

    def query(self, sql, *args, db="postgres"):
        """Rows of sql (sqlite3-style "?" placeholders) as typed tuples."""
        c = Conn(self.dir, self.port, db)
        try:
            return c.execute(bind(sql, args))
        finally:
            c.close()

    def new_database(self):
        """A fresh, empty database owned by vinr: t_1, t_2, ..."""
        with self._lock:
            self._n += 1
            name = "t_%d" % self._n
        self.psql("CREATE DATABASE %s OWNER vinr TEMPLATE template0" % name)
        return PgDatabase(self, name)

    def terminate_backends(self, db=None):
        """Ends every connection of role vinr (to db, if given): what a
        restart of the server does to the daemons.  Returns how many."""
        where = "usename = 'vinr'"
        if db is not None:
            where += " AND datname = %s" % literal(db)
        rows = self.query("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                          "FROM pg_stat_activity WHERE " + where)
        return rows[0][0]


def daemon_pg_settings(db, instance):
    """The [storage] keys and the environment of a daemon on db.  (The
    Daemon's `database` key stays: unused with postgres, and harmless.)"""
    storage = {"backend": "postgres", "dsn": db.dsn, "instance": instance}
    return storage, {"VINR_PG_PASSWORD": db.password}
