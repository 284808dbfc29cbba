"""Production readiness: man pages, systemd units, `make install`, nginx in
front, /metrics, sd_notify, socket activation, secret rotation, logrotate.

Everything runs on loopback in temporary directories, against the real
binaries and the real files of the repository (config/, systemd/, man/), with
the real tools (nginx, systemd-analyze, systemd-socket-activate, logrotate,
man).  A tool that is not installed skips only the tests that need it;
scripts/deps.sh installs all of them.
"""
import filecmp
import json
import math
import os
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import threading
import time
import uuid

import pytest

from conftest import (BIN_DIR, DAEMON, ROOT, SECRET, VINRCTL, Daemon, clean_env,
                      free_port, make_event, raw_http, run_webhookd, sign_vinr)

UNIT_DIR = os.path.join(ROOT, "systemd")
SERVICE = os.path.join(UNIT_DIR, "vinr-webhookd.service")
SOCKET_UNIT = os.path.join(UNIT_DIR, "vinr-webhookd.socket")
MAN_DIR = os.path.join(ROOT, "man")
MAN_PAGES = ["vinr-webhookd.8", "vinrctl.1", "vinr-webhookd.conf.5", "vinr-sim.1"]
NGINX = "/usr/sbin/nginx"


def need(tool):
    path = shutil.which(tool) or (tool if os.path.isabs(tool) and os.access(tool, os.X_OK)
                                  else None)
    if path is None:
        pytest.skip("%s is not installed (scripts/deps.sh installs it)" % tool)
    return path


def write_atomic(path, text):
    """Replaces a file the way an operator's editor should: never half-written."""
    tmp = path + ".tmp-%s" % uuid.uuid4().hex[:6]
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def post_signed(d, secret=SECRET, event=None, timeout=10):
    """POSTs a fresh event signed with secret: (event, status, parsed body)."""
    ev = event or make_event("completed", amount=1200, currency="EUR")
    body = json.dumps(ev).encode()
    st, _, data = d.request("POST", "/webhooks/vinr", body,
                            {"Content-Type": "application/json",
                             "Vinr-Signature": sign_vinr(body, secret)}, timeout=timeout)
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = data
    return ev, st, parsed


def stored(d, event_id):
    return d.query("SELECT count(*) FROM events WHERE id = ?", event_id)[0][0] == 1


# ---------------------------------------------------------------------------
# Man pages

def render_man(page, width=1000):
    """The page as plain text, one paragraph per line (groff with a very long
    line length: man-db keeps -Tutf8 at 80 columns), formatting removed."""
    r = subprocess.run([need("groff"), "-man", "-Tutf8", "-rLL=%dn" % width, "-P-cbou",
                        os.path.join(MAN_DIR, page)], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    text = re.sub(r".\x08", "", r.stdout.decode())      # overstrike bold/underline
    return re.sub(r"\x1b\[[0-9;]*m", "", text)            # or SGR escapes


@pytest.mark.parametrize("page", MAN_PAGES)
@pytest.mark.parametrize("width", [80, 60])
def test_man_page_renders_without_warnings(page, width):
    need("man")
    path = os.path.join(MAN_DIR, page)
    env = clean_env({"MANWIDTH": str(width)})
    r = subprocess.run(["man", "--warnings", "-l", "-Tutf8", path], capture_output=True,
                       env=env, timeout=60)
    assert r.returncode == 0
    assert r.stderr.decode() == "", r.stderr.decode()
    plain = re.sub(r".\x08", "", r.stdout.decode())
    assert "NAME" in plain and "SEE ALSO" in plain
    # groff's own strictest pass, too (every warning category).
    if shutil.which("groff"):
        g = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", path],
                           capture_output=True, timeout=60)
        assert g.returncode == 0 and g.stderr.decode() == "", g.stderr.decode()


def config_keys_from_source():
    """(section, key) of every key the daemon accepts, from src/config.c."""
    with open(os.path.join(ROOT, "src", "config.c")) as f:
        src = f.read()
    keys = re.findall(r'\{\s*"(\w+)",\s*"(\w+)",\s*K_[A-Z]+', src)
    assert len(keys) >= 20, "could not read the key table of src/config.c"
    return keys


def example_config():
    """{(section, key): value} of config/vinr-webhookd.conf."""
    out, sec = {}, None
    with open(os.path.join(ROOT, "config", "vinr-webhookd.conf")) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in ";#":
                continue
            m = re.match(r"\[(\w+)\]$", line)
            if m:
                sec = m.group(1)
                continue
            k, _, v = line.partition("=")
            out[(sec, k.strip())] = re.split(r"\s;", v.strip())[0].strip()
    return out


def test_example_config_lists_every_key():
    """config/vinr-webhookd.conf claims to show every key with its default."""
    assert set(example_config()) == set(config_keys_from_source())


def test_man_conf_page_documents_every_key_with_its_default():
    text = render_man("vinr-webhookd.conf.5")
    # Cut the page into its "[section] SECTION" chapters.
    chapters = dict(re.findall(r"^\[(\w+)\] SECTION\n(.*?)(?=^\S)", text, re.M | re.S))
    example = example_config()
    missing = []
    for sec, key in config_keys_from_source():
        body = chapters.get(sec)
        if body is None:
            missing.append("[%s] (no chapter)" % sec)
            continue
        # An entry: the key alone at the start of a tagged paragraph.
        m = re.search(r"^ {7}%s(?:\n| +)(.*?)(?=^ {7}\S|\Z)" % re.escape(key), body,
                      re.M | re.S)
        if m is None:
            missing.append("[%s] %s" % (sec, key))
            continue
        entry = " ".join(m.group(1).split())
        default = example[(sec, key)]
        want = "Default: unset" if default == "" else "Default: %s" % default
        if want not in entry:
            missing.append("[%s] %s: %r not in %r" % (sec, key, want, entry))
    assert not missing, "\n".join(missing)
    flat = " ".join(text.split())
    for word in ("CREDENTIALS_DIRECTORY", "VINR_WEBHOOK_SECRET", "VINR_API_KEY", "SIGHUP",
                 "78"):
        assert word in flat, word
    for var in ("VINR_SEQ", "VINR_TYPE", "VINR_PAYMENT_ID", "VINR_TERMINAL_ID",
                "VINR_REFERENCE", "VINR_STATUS", "VINR_PREVIOUS_STATUS", "VINR_AMOUNT",
                "VINR_CURRENCY", "VINR_DECLINE_CODE", "VINR_SOURCE", "VINR_EVENT_ID"):
        assert var in flat, var


def test_man_daemon_page_documents_options_signals_environment_exit_codes():
    text = " ".join(render_man("vinr-webhookd.8").split())
    usage = run_webhookd("-h").stdout
    options = set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", usage))
    assert {"-c", "-t", "--check-config", "-V", "--version", "-h", "--help"} <= options
    opt_section = re.search(r" OPTIONS (.*?) SIGNALS ", text).group(1)
    synopsis = re.search(r" SYNOPSIS (.*?) DESCRIPTION ", text).group(1)
    for opt in sorted(options):
        assert re.search(r"(^|[\s\[|,])%s([\s\]|,]|$)" % re.escape(opt), opt_section), \
            "option %s of `vinr-webhookd -h` is not in OPTIONS" % opt
        assert opt in synopsis, "option %s is not in the SYNOPSIS" % opt
    for word in ("SIGTERM", "SIGINT", "SIGHUP", "VINR_WEBHOOK_SECRET", "VINR_API_KEY",
                 "CREDENTIALS_DIRECTORY", "JOURNAL_STREAM", "NOTIFY_SOCKET",
                 "WATCHDOG_USEC", "READY=1", "WATCHDOG=1", "STOPPING=1",
                 "/etc/vinr-webhookd/vinr-webhookd.conf", "/var/lib/vinr-webhookd/vinr.db",
                 "/run/vinr-webhookd/control.sock", "/healthz", "/metrics"):
        assert word in text, word
    exit_section = re.search(r"EXIT STATUS (.*?) EXAMPLES", text).group(1)
    for code in ("0", "1", "64", "78"):
        assert re.search(r"(^| )%s " % code, exit_section), code
    for err in ("not_found", "method_not_allowed", "payload_too_large",
                "unsupported_media_type", "missing_signature", "timestamp_out_of_tolerance",
                "invalid_signature", "invalid_json", "invalid_event", "storage_unavailable"):
        assert err in text, err


def test_man_vinrctl_page_documents_every_command():
    text = render_man("vinrctl.1")
    commands = re.search(r"^COMMANDS\n(.*?)^PROTOCOL", text, re.M | re.S).group(1)
    synopses = [" ".join(line.split()) for line in commands.splitlines()
                if re.match(r" {7}[a-z]", line)]
    want = ["ping", "get id", "find reference",
            "track id [--terminal T] [--reference R] [--amount N] [--currency C]",
            "wait id [--timeout S]", "pending [--older-than S]", "tail [--since N]",
            "reconcile id", "stats", "dead", "replay sink seq"]
    for w in want:
        assert any(s == w or s.startswith(w + " ") for s in synopses), (w, synopses)
    # And every command that the built vinrctl knows, as it says in its usage.
    if os.access(VINRCTL, os.X_OK):
        usage = subprocess.run([VINRCTL, "--help"], capture_output=True, text=True,
                               timeout=10, env=clean_env()).stdout
        listed = re.findall(r"^\s*vinrctl \[-s SOCKET\] (.+)$", usage, re.M)
        assert len(listed) >= len(want), usage
        for line in listed:
            words = line.split()
            mine = [s for s in synopses if s.split()[0] == words[0]]
            assert mine, "vinrctl %s is not in the man page" % words[0]
            for opt in re.findall(r"--[\w-]+", line):
                assert opt in re.findall(r"--[\w-]+", mine[0]), (opt, mine[0])
    flat = " ".join(text.split())
    assert "-s socket" in flat and "VINR_CONTROL_SOCKET" in flat
    assert "/run/vinr-webhookd/control.sock" in flat
    exits = re.search(r"EXIT STATUS (.*?) EXAMPLES", flat).group(1)
    for code in "0123":
        assert re.search(r"(^| )%s " % code, exits), code
    for code in ("bad_request", "unknown_command", "not_found", "timeout",
                 "reconciler_disabled", "upstream_error", "lagging", "internal"):
        assert code in flat, code


# ---------------------------------------------------------------------------
# systemd units

def units_in(tmp_path):
    """Both units in a directory, @BINDIR@ pointing at the binaries under test."""
    d = tmp_path / "units"
    d.mkdir()
    with open(SERVICE) as f:
        (d / "vinr-webhookd.service").write_text(f.read().replace("@BINDIR@", BIN_DIR))
    shutil.copy(SOCKET_UNIT, d / "vinr-webhookd.socket")
    return d


def test_systemd_units_verify(tmp_path):
    need("systemd-analyze")
    d = units_in(tmp_path)
    assert "@BINDIR@" not in (d / "vinr-webhookd.service").read_text()
    r = subprocess.run(["systemd-analyze", "verify", "--man=no",
                        str(d / "vinr-webhookd.service"), str(d / "vinr-webhookd.socket")],
                       cwd=str(d), capture_output=True, text=True, timeout=60,
                       env=clean_env({"SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": ""}))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    bad = [line for line in out.splitlines() if "vinr-webhookd" in line]
    assert not bad, out


def test_systemd_service_exposure_is_low(tmp_path):
    need("systemd-analyze")
    d = units_in(tmp_path)
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                        str(d / "vinr-webhookd.service")],
                       cwd=str(d), capture_output=True, text=True, timeout=60,
                       env=clean_env({"SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": ""}))
    m = re.search(r"Overall exposure level for vinr-webhookd\.service: (\d+\.\d+)", r.stdout)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= 2.0, r.stdout


def unit_entries(path):
    """[(section, key, value)] of a unit file."""
    out, sec = [], None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                sec = line.strip("[]")
                continue
            k, _, v = line.partition("=")
            out.append((sec, k.strip(), v.strip()))
    return out


def test_service_unit_is_notify_with_watchdog_and_sockets_agree():
    svc = unit_entries(SERVICE)
    get = lambda k: [v for s, key, v in svc if key == k]  # noqa: E731
    assert get("Type") == ["notify"]
    assert get("WatchdogSec") and get("WatchdogSec")[0] not in ("0", "")
    assert any("-t" in v.split() for v in get("ExecStartPre"))
    assert any(v.startswith("@BINDIR@/vinr-webhookd") for v in get("ExecStart"))
    sock = unit_entries(SOCKET_UNIT)
    listen = [v for s, k, v in sock if k == "ListenStream"]
    # The socket listens where the example configuration does, on loopback.
    assert listen == [example_config()[("http", "listen")]]
    assert listen[0].startswith("127.0.0.1:")


def test_service_runs_as_the_static_sysusers_user_without_dynamic_user():
    """The unit's User=/Group= are the static user and group of sysusers.d
    (POS apps join the group), not a DynamicUser= whose state would live in
    /var/lib/private; what DynamicUser= implied is kept, set explicitly."""
    svc = unit_entries(SERVICE)
    get = lambda k: [v for s, key, v in svc if key == k]  # noqa: E731
    assert get("DynamicUser") in ([], ["no"])
    with open(os.path.join(ROOT, "systemd", "vinr-webhookd.sysusers")) as f:
        users = [line.split() for line in f if line[:2] in ("u ", "g ")]
    assert [u[1] for u in users if u[0] == "u"] == ["vinr-webhookd"]
    home = [u for u in users if u[0] == "u"][0][-1]
    assert get("User") == ["vinr-webhookd"] and get("Group") == ["vinr-webhookd"]
    assert home == "/var/lib/" + get("StateDirectory")[0]
    for key, want in (("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                      ("PrivateTmp", "yes"), ("RemoveIPC", "yes"),
                      ("NoNewPrivileges", "yes"), ("RestrictSUIDSGID", "yes")):
        assert get(key) == [want], key
    with open(os.path.join(ROOT, "debian", "vinr-webhookd.sysusers")) as f:
        deb = f.read()
    with open(os.path.join(ROOT, "systemd", "vinr-webhookd.sysusers")) as f:
        assert deb == f.read()


def test_unit_reload_can_rotate_the_webhook_secret():
    svc = unit_entries(SERVICE)
    cred = [v for s, k, v in svc if k in ("LoadCredential", "LoadCredentialEncrypted",
                                            "SetCredential") and v.startswith("webhook-secret")]
    reload_hup = [v for s, k, v in svc if k == "ExecReload" and "HUP" in v]
    assert not (cred and reload_hup), (
        "the unit reloads with SIGHUP but the secret is a start-time credential copy")


# ---------------------------------------------------------------------------
# make install

def adapt_paths(conf_text, tmp):
    """The example config with its file paths moved under tmp."""
    subs = {
        ("storage", "database"): os.path.join(tmp, "lib", "vinr.db"),
        ("storage", "event_log"): os.path.join(tmp, "log", "events.log"),
        ("control", "socket"): os.path.join(tmp, "run", "control.sock"),
    }
    out, sec, done = [], None, set()
    for line in conf_text.splitlines():
        m = re.match(r"\s*\[(\w+)\]", line)
        if m:
            sec = m.group(1)
        km = re.match(r"\s*(\w+)\s*=", line)
        if km and (sec, km.group(1)) in subs:
            line = "%s = %s" % (km.group(1), subs[(sec, km.group(1))])
            done.add((sec, km.group(1)))
        out.append(line)
    assert done == set(subs), "the example config lacks %s" % (set(subs) - done)
    for sub in ("lib", "log", "run"):
        os.makedirs(os.path.join(tmp, sub), exist_ok=True)
    return "\n".join(out) + "\n"


def test_make_install_lays_out_every_file(tmp_path):
    need("make")
    dest = str(tmp_path / "dest")
    args = ["make", "--no-print-directory", "install", "DESTDIR=" + dest, "PREFIX=/usr",
            "BUILD=" + BIN_DIR]
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

    def p(rel):
        return os.path.join(dest, rel.lstrip("/"))

    def mode(rel):
        return stat.S_IMODE(os.stat(p(rel)).st_mode)

    progs = ["vinr-webhookd"]
    if os.path.exists(os.path.join(ROOT, "src", "vinrctl.c")):
        progs.append("vinrctl")
    sim_dir = os.path.join(ROOT, "src", "sim")
    if os.path.isdir(sim_dir) and any(f.endswith(".c") for f in os.listdir(sim_dir)):
        progs.append("vinr-sim")
    for prog in progs:
        assert os.path.isfile(p("/usr/bin/" + prog)), prog
        assert mode("/usr/bin/" + prog) == 0o755, prog
        assert filecmp.cmp(p("/usr/bin/" + prog), os.path.join(BIN_DIR, prog),
                           shallow=False), prog
    for sql in sorted(os.listdir(os.path.join(ROOT, "sql"))):
        if sql.endswith(".sql"):
            assert filecmp.cmp(p("/usr/share/vinr-webhookd/sql/" + sql),
                               os.path.join(ROOT, "sql", sql), shallow=False)
    assert os.path.isfile(p("/usr/share/vinr-webhookd/sql/001_init.sql"))
    for page in MAN_PAGES:
        sect = page.rsplit(".", 1)[1]
        inst = "/usr/share/man/man%s/%s" % (sect, page)
        assert filecmp.cmp(p(inst), os.path.join(MAN_DIR, page), shallow=False), inst
        assert mode(inst) == 0o644
    assert os.path.isfile(p("/usr/share/vinr-webhookd/examples/nginx.conf"))

    unit = p("/usr/lib/systemd/system/vinr-webhookd.service")
    with open(unit) as f:
        text = f.read()
    assert "@BINDIR@" not in text
    assert re.search(r"^ExecStart=/usr/bin/vinr-webhookd -c /etc/vinr-webhookd/"
                     r"vinr-webhookd\.conf$", text, re.M), text
    assert re.search(r"^ExecStartPre=/usr/bin/vinr-webhookd -t ", text, re.M)
    assert mode("/usr/lib/systemd/system/vinr-webhookd.service") == 0o644
    assert filecmp.cmp(p("/usr/lib/systemd/system/vinr-webhookd.socket"), SOCKET_UNIT,
                       shallow=False)
    conf = p("/etc/vinr-webhookd/vinr-webhookd.conf")
    assert filecmp.cmp(conf, os.path.join(ROOT, "config", "vinr-webhookd.conf"),
                       shallow=False)
    assert mode("/etc/vinr-webhookd/vinr-webhookd.conf") & 0o007 == 0, "world-readable"
    assert filecmp.cmp(p("/etc/logrotate.d/vinr-webhookd"),
                       os.path.join(ROOT, "config", "logrotate"), shallow=False)

    # The installed config, as is: it parses; what may fail is only a
    # missing directory of this machine (exit 78 naming it).
    secret_env = {"VINR_WEBHOOK_SECRET": SECRET}
    r = run_webhookd("-t", "-c", conf, env=secret_env, cwd=str(tmp_path))
    if r.returncode != 0:
        assert r.returncode == 78, r.stderr
        assert "does not exist" in r.stderr, r.stderr
        assert not re.search(r"vinr-webhookd\.conf:\d+:", r.stderr), r.stderr
    # With its paths moved under tmp it passes the whole check, its secret
    # from the environment or from a systemd credentials directory.
    with open(conf) as f:
        adapted = adapt_paths(f.read(), str(tmp_path / "var"))
    conf2 = str(tmp_path / "adapted.conf")
    with open(conf2, "w") as f:
        f.write(adapted)
    r = run_webhookd("-t", "-c", conf2, env=secret_env, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "configuration ok" in r.stdout
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "webhook-secret").write_text("# rotated 2026-06\n" + SECRET + "\n")
    r = run_webhookd("-t", "-c", conf2, env={"CREDENTIALS_DIRECTORY": str(creds)},
                     cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    r = run_webhookd("-t", "-c", conf2, cwd=str(tmp_path))
    assert r.returncode == 78 and "secret" in r.stderr, r.stderr

    # A second install keeps the operator's configuration.
    with open(conf, "a") as f:
        f.write("; edited by the operator\n")
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    with open(conf) as f:
        assert f.read().endswith("; edited by the operator\n")


# ---------------------------------------------------------------------------
# nginx in front

def nginx_has(flag):
    r = subprocess.run([NGINX, "-V"], capture_output=True, text=True, timeout=30)
    return flag in r.stdout + r.stderr


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def adapt_nginx_site(text, listen_port, upstream_port, cert, key):
    """config/nginx.conf with only its ports and paths changed."""
    http2 = nginx_has("http_v2_module")

    def sub(pattern, repl, count=1):
        nonlocal text
        text, n = re.subn(pattern, repl, text, flags=re.M)
        assert n == count, "config/nginx.conf: %r matched %d times, not %d: update " \
            "the adaptation in this test" % (pattern, n, count)

    sub(r"^(\s*server\s+)127\.0\.0\.1:8787;", r"\g<1>127.0.0.1:%d;" % upstream_port)
    sub(r"^(\s*listen\s+)443(\s+ssl)((?:\s+http2)?);",
        lambda m: "%s127.0.0.1:%d%s%s;" % (m.group(1), listen_port, m.group(2),
                                           m.group(3) if http2 else ""))
    if ipv6_loopback():
        sub(r"^(\s*listen\s+)\[::\]:443(\s+ssl)((?:\s+http2)?);",
            lambda m: "%s[::1]:%d%s%s;" % (m.group(1), listen_port, m.group(2),
                                           m.group(3) if http2 else ""))
    else:
        sub(r"^\s*listen\s+\[::\]:443.*$", "")
    sub(r"^(\s*ssl_certificate\s+)\S+;", r"\g<1>%s;" % cert)
    sub(r"^(\s*ssl_certificate_key\s+)\S+;", r"\g<1>%s;" % key)
    return text


class Nginx:
    def __init__(self, workdir, upstream_port):
        self.dir = str(workdir)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        cert, key = os.path.join(self.dir, "cert.pem"), os.path.join(self.dir, "key.pem")
        r = subprocess.run([need("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-subj", "/CN=localhost", "-days", "1", "-keyout", key,
                            "-out", cert], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        with open(os.path.join(ROOT, "config", "nginx.conf")) as f:
            site = adapt_nginx_site(f.read(), self.port, upstream_port, cert, key)
        self.site = os.path.join(self.dir, "site.conf")
        with open(self.site, "w") as f:
            f.write(site)
        self.error_log = os.path.join(self.dir, "error.log")
        temps = "".join("\t%s_temp_path %s;\n" % (m, os.path.join(self.dir, m))
                        for m in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
                        if m == "client_body" or nginx_has("--http-%s-temp-path" % m))
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write("%sworker_processes 1;\nerror_log %s info;\n"
                    "events { worker_connections 128; }\n"
                    "http {\n\taccess_log %s;\n%s\tinclude %s;\n}\n"
                    % ("user root;\n" if os.geteuid() == 0 else "", self.error_log,
                       os.path.join(self.dir, "access.log"), temps, self.site))
        self.proc = subprocess.Popen(
            [NGINX, "-p", self.dir + "/", "-c", self.conf, "-e", self.error_log,
             "-g", "daemon off; pid %s;" % os.path.join(self.dir, "nginx.pid")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 15
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("nginx exited %d: %s\n%s" % (
                    self.proc.returncode, self.proc.stderr.read().decode(), self.log()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise AssertionError("nginx does not listen:\n" + self.log())
                time.sleep(0.05)

    def log(self):
        try:
            with open(self.error_log) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def request(self, method, path, body=None, headers=None):
        """Over HTTPS, certificate not checked (it is self-signed).  Works when
        nginx answers before the whole body was sent.  (status, headers, body)."""
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=15)
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        try:
            head = "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" % (method, path)
            for k, v in (headers or {}).items():
                head += "%s: %s\r\n" % (k, v)
            if body is not None:
                head += "Content-Length: %d\r\n" % len(body)
            try:
                s.sendall(head.encode() + b"\r\n" + (body or b""))
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                pass
            buf = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except (ConnectionResetError, ssl.SSLError):
                    break
                if not chunk:
                    break
                buf += chunk
        finally:
            s.close()
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        assert lines and lines[0].startswith("HTTP/"), buf[:200]
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        if hdrs.get("transfer-encoding", "").lower() == "chunked":
            body_out, data = b"", rest
            while data:
                size_line, _, data = data.partition(b"\r\n")
                n = int(size_line.split(b";")[0], 16)
                if n == 0:
                    break
                body_out += data[:n]
                data = data[n + 2:]
            rest = body_out
        return int(lines[0].split()[1]), hdrs, rest


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    """A daemon behind a real nginx running the repo's config/nginx.conf."""
    if not os.access(NGINX, os.X_OK):
        pytest.skip("nginx is not installed")
    base = tmp_path_factory.mktemp("front")
    d = Daemon(base / "daemon")
    d.start()
    ngx = None
    try:
        ngx = Nginx(base / "nginx", d.port)
        yield d, ngx
    finally:
        if ngx is not None:
            ngx.stop()
        d.kill()


def test_nginx_passes_a_signed_webhook_through(front):
    d, ngx = front
    ev = make_event("completed", amount=4200, currency="EUR")
    body = json.dumps(ev).encode()
    st, h, data = ngx.request("POST", "/webhooks/vinr", body,
                              {"Content-Type": "application/json",
                               "Vinr-Signature": sign_vinr(body)})
    assert st == 200, (data, ngx.log())
    assert json.loads(data) == {"received": True, "eventId": ev["id"], "duplicate": False}
    assert h.get("content-type", "").startswith("application/json")
    assert stored(d, ev["id"])
    # The body reached the daemon byte for byte: a changed body would not verify.
    assert d.query("SELECT body FROM events WHERE id = ?", ev["id"])[0][0] == body.decode()
    # A bad signature is answered by the daemon, through nginx.
    ev2 = make_event("completed")
    body2 = json.dumps(ev2).encode()
    st, _, data = ngx.request("POST", "/webhooks/vinr", body2,
                              {"Content-Type": "application/json",
                               "Vinr-Signature": sign_vinr(body2, "whsec_wrong")})
    assert (st, json.loads(data)) == (401, {"error": "invalid_signature"})
    assert not stored(d, ev2["id"])


def test_nginx_refuses_an_oversized_body(front):
    d, ngx = front
    before = d.query("SELECT count(*) FROM events")[0][0]
    ev = make_event("completed", note="x" * 300000)
    body = json.dumps(ev).encode()
    assert len(body) > 262144
    st, _, data = ngx.request("POST", "/webhooks/vinr", body,
                              {"Content-Type": "application/json",
                               "Vinr-Signature": sign_vinr(body)})
    assert st == 413, data[:300]
    assert not stored(d, ev["id"])
    assert d.query("SELECT count(*) FROM events")[0][0] == before


def duration_seconds(v):
    m = re.match(r"^(\d+)(ms|s|m|h)?$", v)
    assert m, v
    return int(m.group(1)) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]


def test_nginx_upstream_idle_timeout_is_below_the_daemons():
    with open(os.path.join(ROOT, "src", "http.c")) as f:
        m = re.search(r"MHD_OPTION_CONNECTION_TIMEOUT,\s*\(unsigned\)\s*(\d+)", f.read())
    assert m, "cannot find the daemon's connection timeout in src/http.c"
    daemon_idle = int(m.group(1))
    with open(os.path.join(ROOT, "config", "nginx.conf")) as f:
        text = re.sub(r"#.*", "", f.read())
    upstream = re.search(r"upstream\s+\w+\s*\{(.*?)\}", text, re.S).group(1)
    if not re.search(r"^\s*keepalive\s+\d+;", upstream, re.M):
        return                          # no idle upstream connections at all
    t = re.search(r"^\s*keepalive_timeout\s+(\S+);", upstream, re.M)
    nginx_idle = duration_seconds(t.group(1)) if t else 60      # nginx's default
    assert nginx_idle < daemon_idle, (nginx_idle, daemon_idle)


@pytest.mark.parametrize("path", ["/metrics", "/healthz"])
def test_nginx_hides_metrics_and_healthz(front, path):
    d, ngx = front
    st, _, _ = ngx.request("GET", path)
    assert st == 404
    st, _, _ = d.request("GET", path)
    assert st == 200


# ---------------------------------------------------------------------------
# /metrics

METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)=(%s)' % LABEL_VALUE
LABEL_NC = r'[a-zA-Z_][a-zA-Z0-9_]*=%s' % LABEL_VALUE
SAMPLE = re.compile(r"^(%s)(?:\{((?:%s)(?:,%s)*,?)?\})? (\S+)(?: (-?\d+))?$"
                    % (METRIC_NAME, LABEL_NC, LABEL_NC))


def parse_value(v):
    if v in ("+Inf", "Inf"):
        return math.inf
    if v == "-Inf":
        return -math.inf
    if v == "NaN":
        return math.nan
    assert re.match(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$", v), "bad value %r" % v
    return float(v)


def parse_prometheus(text):
    """A strict parser of the Prometheus text exposition format 0.0.4.

    Returns {family: {"type", "help", "samples": [(name, {labels}, value)]}}.
    Fails on: a sample whose family has no TYPE line (declared before it), a
    TYPE or HELP given twice or after the family's samples, a family's
    samples not grouped together, a malformed line, a repeated series, and
    for histograms: buckets without le, non-monotonic buckets, no +Inf
    bucket, +Inf bucket != _count, a missing _sum or _count.
    """
    assert text.endswith("\n"), "the exposition must end with a newline"
    fams, order, current = {}, [], None
    seen_series = set()
    suffixes = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count", ""),
                "counter": ("",), "gauge": ("",), "untyped": ("",)}
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d: %r" % (n, line)
        if line == "":
            continue
        if line.startswith("#"):
            m = re.match(r"^# (HELP|TYPE) (%s)(?: (.*))?$" % METRIC_NAME, line)
            if not m:
                assert re.match(r"^#( |$)", line), where
                continue
            kind, name, rest = m.group(1), m.group(2), m.group(3) or ""
            f = fams.setdefault(name, {"type": None, "help": None, "samples": []})
            assert not f["samples"], "%s: %s after the family's samples" % (where, kind)
            if kind == "TYPE":
                assert f["type"] is None, "%s: TYPE repeated" % where
                assert rest in suffixes, "%s: unknown type" % where
                f["type"] = rest
            else:
                assert f["help"] is None, "%s: HELP repeated" % where
                f["help"] = rest
            if name not in order:
                order.append(name)
            current = name
            continue
        m = SAMPLE.match(line)
        assert m, "%s: not a sample line" % where
        name, labels_s, value = m.group(1), m.group(2) or "", m.group(3)
        labels = dict((k, v[1:-1]) for k, v in re.findall(LABEL, labels_s))
        assert len(labels) == len(re.findall(LABEL, labels_s)), "%s: repeated label" % where
        family = None
        for fam_name, f in fams.items():
            if f["type"] and any(name == fam_name + s for s in suffixes[f["type"]]):
                family = fam_name
        assert family is not None, "%s: no TYPE line declares %s" % (where, name)
        assert family == current, "%s: samples of %s are not grouped together" % (where,
                                                                                   family)
        key = (name, tuple(sorted(labels.items())))
        assert key not in seen_series, "%s: repeated series" % where
        seen_series.add(key)
        fams[family]["samples"].append((name, labels, parse_value(value)))
    for fam_name, f in fams.items():
        assert f["type"] is not None, "%s: HELP without TYPE" % fam_name
        if f["type"] == "counter":
            for _, _, v in f["samples"]:
                assert v >= 0, "%s: negative counter" % fam_name
        if f["type"] == "histogram":
            check_histogram(fam_name, f["samples"])
    return fams


def check_histogram(name, samples):
    series = {}
    for sname, labels, v in samples:
        rest = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
        s = series.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if sname == name + "_bucket":
            assert "le" in labels, "%s: bucket without le" % name
            s["buckets"].append((parse_value(labels["le"]), v))
        elif sname == name + "_sum":
            s["sum"] = v
        elif sname == name + "_count":
            s["count"] = v
    assert series, "%s: a histogram without samples" % name
    for rest, s in series.items():
        b = s["buckets"]
        assert b, "%s%s: no buckets" % (name, rest)
        les = [le for le, _ in b]
        assert les == sorted(les) and len(set(les)) == len(les), "%s: le not increasing" % name
        counts = [c for _, c in b]
        assert counts == sorted(counts), "%s: buckets not cumulative: %s" % (name, b)
        assert les[-1] == math.inf, "%s: no +Inf bucket" % name
        assert s["count"] is not None and s["sum"] is not None, "%s: no _sum or _count" % name
        assert counts[-1] == s["count"], "%s: +Inf bucket %s != _count %s" % (
            name, counts[-1], s["count"])


def sample(fams, family, name=None, default=None, **labels):
    """The value of one series; default (when not None) if the family has no
    such series yet."""
    f = fams.get(family)
    assert f is not None, "no family %s" % family
    for sname, lab, v in f["samples"]:
        if sname == (name or family) and lab == labels:
            return v
    if default is not None:
        return default
    raise AssertionError("no sample %s%s in %s" % (name or family, labels, f["samples"]))


def get_metrics(d):
    st, h, data = d.request("GET", "/metrics")
    assert st == 200
    assert h["content-type"].startswith("text/plain"), h["content-type"]
    assert "version=0.0.4" in h["content-type"], h["content-type"]
    return parse_prometheus(data.decode())


BAD_EXPOSITIONS = [
    "a_total 1\n",                                                     # no TYPE
    "# TYPE a counter\na 1\n# TYPE a counter\n",                       # TYPE twice
    "# TYPE a gauge\na{x=\"1\"} 1\n# TYPE b gauge\nb 2\na{x=\"2\"} 1\n",  # not grouped
    "# TYPE a gauge\na{x=1} 1\n",                                      # unquoted label
    "# TYPE a gauge\na 1",                                             # no final newline
    "# TYPE a gauge\na one\n",                                         # bad value
    "# TYPE a gauge\na 1\na 2\n",                                      # repeated series
    "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
    "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
    "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",  # no +Inf
    "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",        # no _sum
]


@pytest.mark.parametrize("text", BAD_EXPOSITIONS)
def test_prometheus_parser_is_strict(text):
    with pytest.raises(AssertionError):
        parse_prometheus(text)


def test_prometheus_parser_accepts_a_good_exposition():
    fams = parse_prometheus(
        "# HELP a_total A.\n# TYPE a_total counter\na_total{r=\"x\",s=\"q\\\"\"} 3\n"
        "# TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
        "h_sum 0.25\nh_count 2\n# TYPE g gauge\ng 1.5e3\n")
    assert sample(fams, "a_total", r="x", s='q\\"') == 3
    assert sample(fams, "h", "h_count") == 2 and sample(fams, "g") == 1500


def test_metrics_is_valid_prometheus_text(daemon):
    post_signed(daemon)
    fams = get_metrics(daemon)
    assert "vinr_webhooks_total" in fams


EXPECTED_FAMILIES = [
    ("vinr_webhooks_total", "counter"),
    ("vinr_outcomes_total", "counter"),
    ("vinr_commit_seconds", "histogram"),
    ("vinr_commit_batch_size", "histogram"),
    ("vinr_sink_lag", "gauge"),
    ("vinr_sink_dead_letters", "gauge"),
    ("vinr_reconciler_requests_total", "counter"),
    ("vinr_control_clients", "gauge"),
    ("vinr_outcome_last_seq", "gauge"),
    ("vinr_uptime_seconds", "gauge"),
]


@pytest.mark.parametrize("family,kind", EXPECTED_FAMILIES)
def test_metrics_family_is_declared(daemon, family, kind):
    post_signed(daemon)
    fams = get_metrics(daemon)
    assert family in fams, "missing metric family %s" % family
    assert fams[family]["type"] == kind
    assert fams[family]["help"], "%s has no HELP" % family


REJECT_REASONS = ["not_found", "method_not_allowed", "payload_too_large",
                  "unsupported_media_type", "missing_signature", "timestamp_out_of_tolerance",
                  "invalid_signature", "invalid_json", "invalid_event", "storage_unavailable"]


def test_metrics_webhook_counters_move(daemon):
    d = daemon
    before = get_metrics(d)

    def count(fams, **labels):
        return sample(fams, "vinr_webhooks_total", **labels)

    for reason in REJECT_REASONS:       # every reason is always exposed
        count(before, result="rejected", reason=reason)
    ev = make_event("completed", amount=100, currency="USD")
    assert post_signed(d, event=ev)[1] == 200
    assert post_signed(d, event=ev)[1] == 200                           # duplicate
    assert post_signed(d, event=make_event("completed", etype="charge.succeeded"))[2].get(
        "ignored") is True
    body = json.dumps(make_event()).encode()
    hdr = {"Content-Type": "application/json"}
    for _ in range(2):
        assert d.request("POST", "/webhooks/vinr", body,
                         dict(hdr, **{"Vinr-Signature": sign_vinr(body, "whsec_x")}))[0] == 401
    assert d.request("POST", "/webhooks/vinr", body, hdr)[0] == 401
    assert d.request("POST", "/webhooks/vinr", body,
                     dict(hdr, **{"Vinr-Signature": sign_vinr(body, t=int(time.time()) - 3600)}
                          ))[0] == 401
    assert d.request("POST", "/webhooks/vinr", body,
                     {"Content-Type": "text/plain", "Vinr-Signature": sign_vinr(body)})[0] == 415
    assert d.request("GET", "/nowhere")[0] == 404
    assert d.request("GET", "/webhooks/vinr")[0] == 405
    big = b"{" + b" " * 300000 + b"}"
    head = "POST /webhooks/vinr HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" \
        "Vinr-Signature: %s\r\nContent-Length: %d\r\n\r\n" % (sign_vinr(big), len(big))
    assert raw_http(d.port, head.encode() + big)[0] == 413
    nj = b"{not json"
    assert d.request("POST", "/webhooks/vinr", nj,
                     dict(hdr, **{"Vinr-Signature": sign_vinr(nj)}))[0] == 400
    ne = b'{"type":"terminal_payment.completed"}'
    assert d.request("POST", "/webhooks/vinr", ne,
                     dict(hdr, **{"Vinr-Signature": sign_vinr(ne)}))[0] == 400
    after = get_metrics(d)
    want = {
        (("result", "accepted"),): 2,            # accepted counts ignored ones too
        (("result", "duplicate"),): 1,
        (("result", "ignored"),): 1,
        (("result", "rejected"), ("reason", "invalid_signature")): 2,
        (("result", "rejected"), ("reason", "missing_signature")): 1,
        (("result", "rejected"), ("reason", "timestamp_out_of_tolerance")): 1,
        (("result", "rejected"), ("reason", "unsupported_media_type")): 1,
        (("result", "rejected"), ("reason", "not_found")): 1,
        (("result", "rejected"), ("reason", "method_not_allowed")): 1,
        (("result", "rejected"), ("reason", "payload_too_large")): 1,
        (("result", "rejected"), ("reason", "invalid_json")): 1,
        (("result", "rejected"), ("reason", "invalid_event")): 1,
        (("result", "rejected"), ("reason", "storage_unavailable")): 0,
    }
    got = {k: count(after, **dict(k)) - count(before, **dict(k)) for k in want}
    assert got == want


def test_metrics_outcomes_and_commits_move(daemon):
    d = daemon
    before = get_metrics(d)
    pid = "tpay_" + uuid.uuid4().hex[:12]
    assert post_signed(d, event=make_event("authorized", payment_id=pid, amount=5))[1] == 200
    assert post_signed(d, event=make_event("completed", payment_id=pid, amount=5))[1] == 200
    d.wait_event_log(2)
    after = get_metrics(d)
    assert sample(after, "vinr_outcome_last_seq") == sample(before, "vinr_outcome_last_seq") + 2
    for status in ("authorized", "completed"):
        assert sample(after, "vinr_outcomes_total", status=status) == \
            sample(before, "vinr_outcomes_total", default=0, status=status) + 1, status
    for h in ("vinr_commit_seconds", "vinr_commit_batch_size"):
        assert sample(after, h, h + "_count") >= sample(before, h, h + "_count") + 2, h
        assert sample(after, h, h + "_sum") > sample(before, h, h + "_sum"), h
    # The event log's cursor is saved just after its lines are written.
    deadline = time.time() + 5
    while sample(get_metrics(d), "vinr_sink_lag", sink="eventlog") != 0:
        assert time.time() < deadline, "the event log's lag never came back to 0"
        time.sleep(0.05)
    assert sample(after, "vinr_sink_dead_letters", sink="eventlog") == 0
    assert sample(after, "vinr_uptime_seconds") >= 0


def test_metrics_control_clients_counts_connections(daemon):
    d = daemon
    fams = get_metrics(d)
    base = sample(fams, "vinr_control_clients")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(5)
        s.connect(d.control)
        s.sendall(b'{"cmd":"ping"}\n')
        assert json.loads(s.makefile().readline())["ok"] is True
        assert sample(get_metrics(d), "vinr_control_clients") == base + 1
    finally:
        s.close()
    deadline = time.time() + 5
    while sample(get_metrics(d), "vinr_control_clients") != base:
        assert time.time() < deadline, "vinr_control_clients did not come back down"
        time.sleep(0.05)


# ---------------------------------------------------------------------------
# sd_notify, socket activation

def test_sd_notify_ready_watchdog_stopping(make_daemon):
    name = "vinr-notify-%s" % uuid.uuid4().hex
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(0.2)
    try:
        d = make_daemon(start=False, env={"NOTIFY_SOCKET": "@" + name,
                                          "WATCHDOG_USEC": "400000"})
        d.env.pop("WATCHDOG_PID", None)
        d.start(wait=False)
        msgs = []       # (monotonic time, message)

        def read_until(pred, timeout):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    data = sock.recv(4096)
                except socket.timeout:
                    continue
                for m in data.decode().split("\n"):
                    if m:
                        msgs.append((time.monotonic(), m))
                        if pred(m):
                            return True
            return False

        assert read_until(lambda m: m == "READY=1", 15), (msgs, d.log())
        # Ready means ready: the port answers as soon as READY=1 is sent.
        assert d.request("GET", "/healthz", timeout=5)[0] == 200
        read_until(lambda m: False, 1.3)
        pings = [t for t, m in msgs if m == "WATCHDOG=1"]
        assert len(pings) >= 3, msgs
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        assert max(gaps) < 0.4, "a ping came later than WATCHDOG_USEC: %s" % gaps
        d.signal(signal.SIGTERM)
        assert read_until(lambda m: m == "STOPPING=1", 15), msgs
        assert d.proc.wait(timeout=20) == 0
        assert [m for t, m in msgs].count("READY=1") == 1, msgs
    finally:
        sock.close()


def test_socket_activation(make_daemon):
    tool = need("systemd-socket-activate")
    d = make_daemon(start=False)
    conf_port = d.port
    port = free_port()
    d._stderr = open(d.stderr_path, "ab")
    d.proc = subprocess.Popen([tool, "-l", "127.0.0.1:%d" % port, DAEMON, "-c", d.conf_path],
                              cwd=d.dir, env=d.env, stdin=subprocess.DEVNULL,
                              stdout=d._stderr, stderr=d._stderr)
    d.port = port
    # systemd-socket-activate says when it listens ("Listening on ... as 3.").
    d.wait_log("Listening on", timeout=10)
    # The first connection makes systemd-socket-activate start the daemon,
    # which must then accept it on the socket it was handed.
    ev, st, body = post_signed(d, timeout=20)
    assert st == 200, (body, d.log())
    assert body == {"received": True, "eventId": ev["id"], "duplicate": False}
    assert stored(d, ev["id"])
    assert post_signed(d)[1] == 200
    # [http] listen was ignored: nothing listens on the configured port.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", conf_port), timeout=2).close()
    assert d.stop() == 0, d.log()


# ---------------------------------------------------------------------------
# Secret rotation under load

def test_sighup_secret_rotation_under_load_loses_nothing(make_daemon):
    old = "whsec_old_" + uuid.uuid4().hex
    new = "whsec_new_" + uuid.uuid4().hex
    d = make_daemon(secrets=[old])
    state = {"secret": old}
    stop = threading.Event()
    results, lock = [], threading.Lock()

    def sender():
        while not stop.is_set():
            secret = state["secret"]
            ev = make_event("completed", amount=100, currency="EUR")
            body = json.dumps(ev).encode()
            try:
                st, _, data = d.request("POST", "/webhooks/vinr", body,
                                        {"Content-Type": "application/json",
                                         "Vinr-Signature": sign_vinr(body, secret)},
                                        timeout=15)
                r = (ev["id"], secret, st, data[:200])
            except Exception as e:      # a connection error is a failure too
                r = (ev["id"], secret, "error", repr(e))
            with lock:
                results.append(r)

    def probe_until(secret, want, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            ev = make_event("completed")
            if post_signed(d, secret=secret, event=ev)[1] == want:
                return
            time.sleep(0.02)
        raise AssertionError("secret never answered %d:\n%s" % (want, d.log()))

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.7)
        write_atomic(d.secret_file, "%s\n%s\n" % (old, new))
        d.signal(signal.SIGHUP)
        probe_until(new, 200)              # the daemon now accepts both
        state["secret"] = new              # VINR's dashboard switched
        time.sleep(0.8)
        write_atomic(d.secret_file, new + "\n")
        d.signal(signal.SIGHUP)
        probe_until(old, 401)              # the old one is gone
        time.sleep(0.8)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    bad = [r for r in results if r[2] != 200]
    assert not bad, bad[:5]
    by_secret = {s: sum(1 for r in results if r[1] == s) for s in (old, new)}
    assert by_secret[old] >= 10 and by_secret[new] >= 10, by_secret
    ids = [r[0] for r in results]
    n = 0
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        n += d.query("SELECT count(*) FROM events WHERE id IN (%s)"
                     % ",".join("?" * len(chunk)), *chunk)[0][0]
    assert n == len(ids)
    _, st, body = post_signed(d, secret=old)
    assert (st, body) == (401, {"error": "invalid_signature"})
    assert post_signed(d, secret=new)[1] == 200
    assert d.stop() == 0


# ---------------------------------------------------------------------------
# logrotate

def adapted_logrotate(tmp_path, log_path, postrotate=None):
    with open(os.path.join(ROOT, "config", "logrotate")) as f:
        text = f.read()
    text, n = re.subn(r"^/var/log/vinr-webhookd/events\.log(\s*\{)", log_path + r"\1", text,
                      flags=re.M)
    assert n == 1, "config/logrotate does not name /var/log/vinr-webhookd/events.log"
    if postrotate is not None:
        text, n = re.subn(r"(postrotate\n).*?(\n\s*endscript)", r"\g<1>\t\t%s\2" % postrotate,
                          text, flags=re.S)
        assert n == 1
    conf = str(tmp_path / "logrotate.conf")
    with open(conf, "w") as f:
        f.write(text)
    os.chmod(conf, 0o644)
    return conf


def test_logrotate_config_is_valid(tmp_path):
    tool = need("logrotate")
    log = tmp_path / "events.log"
    log.write_text('{"seq":1}\n')
    conf = adapted_logrotate(tmp_path, str(log))
    r = subprocess.run([tool, "-d", "-s", str(tmp_path / "state"), conf],
                       capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "error" not in out.lower(), out
    assert str(log) in out


def test_logrotate_rotation_with_sighup_reopens_the_event_log(make_daemon, tmp_path):
    tool = need("logrotate")
    d = make_daemon()
    ev1 = make_event("completed")
    assert post_signed(d, event=ev1)[1] == 200
    d.wait_event_log(1)
    conf = adapted_logrotate(tmp_path, d.event_log,
                             postrotate="kill -HUP %d" % d.proc.pid)
    r = subprocess.run([tool, "-f", "-s", str(tmp_path / "state"), conf],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    rotated = [f for f in os.listdir(d.dir) if f.startswith("events.log") and
               f != "events.log"]
    assert len(rotated) == 1, os.listdir(d.dir)
    with open(os.path.join(d.dir, rotated[0])) as f:
        old_lines = [json.loads(x) for x in f if x.strip()]
    assert [x["eventId"] for x in old_lines] == [ev1["id"]]
    # logrotate made the new file; the daemon reopens it on SIGHUP (in its
    # sink thread, so give it the moment it takes).
    assert stat.S_IMODE(os.stat(d.event_log).st_mode) == 0o640
    try:
        d.wait_log("reopened", timeout=5)
    except AssertionError:
        pass
    ev2 = make_event("completed")
    assert post_signed(d, event=ev2)[1] == 200
    lines = d.wait_event_log(1)
    assert [x["eventId"] for x in lines] == [ev2["id"]]
    assert d.stop() == 0
