"""At home in its ecosystem (issue 13): bash completion, Prometheus alert
rules, the Grafana dashboard, `make install`, the Debian packages, and the
newcomer's `make run`.

The package test builds the .debs with dpkg-buildpackage (about 25 s on a
2-core machine) when dpkg-dev and debhelper are installed, and skips with a
message saying so otherwise: `make test` never installs them (`make deb`
does).  The alert rules are checked with promtool when it is installed.
"""
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from conftest import BIN_DIR, ROOT

COMPLETION = os.path.join(ROOT, "contrib", "bash-completion", "vinrctl")
ALERTS = os.path.join(ROOT, "config", "monitoring", "vinr-webhookd-alerts.yml")
DASHBOARD = os.path.join(ROOT, "config", "monitoring", "vinr-webhookd-dashboard.json")
SPEC_COMMANDS = ("ping get find track wait pending tail reconcile stats dead replay "
                 "pay cancel capture").split()


# ------------------------------------------------------------ completion

def complete(*words, with_bash_completion=False):
    """The candidates bash offers for `vinrctl WORDS...` (the last word is
    the one being completed)."""
    pre = ""
    if with_bash_completion:
        pre = "source /usr/share/bash-completion/bash_completion; "
    words = ("vinrctl",) + words
    script = pre + 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); ' \
        'COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; _vinrctl; printf "%s\\n" "${COMPREPLY[@]}"'
    r = subprocess.run(["bash", "-c", script, "bash", COMPLETION, *words],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return sorted(w for w in r.stdout.split("\n") if w)


@pytest.mark.parametrize("full", [False, True])
def test_completion(full):
    if full and not os.path.exists("/usr/share/bash-completion/bash_completion"):
        pytest.skip("bash-completion is not installed: tested without it only")
    assert complete("p", with_bash_completion=full) == ["pay", "pending", "ping"]
    assert complete("", with_bash_completion=full) == sorted(SPEC_COMMANDS)
    assert complete("-s", "/tmp/x.sock", "w", with_bash_completion=full) == ["wait"]
    assert complete("pay", "--", with_bash_completion=full) == sorted(
        "--terminal --amount --currency --reference --manual --key --wait".split())
    assert complete("track", "x", "--", with_bash_completion=full) == sorted(
        "--terminal --reference --amount --currency".split())
    assert complete("wait", "tpay_1", "--", with_bash_completion=full) == \
        ["--final", "--timeout"]
    assert complete("pending", "-", with_bash_completion=full) == ["--older-than"]
    assert complete("tail", "--s", with_bash_completion=full) == ["--since"]
    assert complete("capture", "tpay_1", "--", with_bash_completion=full) == ["--amount"]
    assert complete("replay", "", with_bash_completion=full) == ["eventlog", "hook", "socket"]
    # A flag's value is the user's to type: nothing offered.
    assert complete("pay", "--terminal", "", with_bash_completion=full) == []
    assert complete("ping", "--", with_bash_completion=full) == []


def test_completion_knows_every_command_of_vinrctl():
    """Every command vinrctl's own help lists is completed (the binary may
    lag the SPEC's list, never the other way round)."""
    r = subprocess.run([os.path.join(BIN_DIR, "vinrctl"), "--help"], capture_output=True,
                       text=True, timeout=10)
    listed = set(re.findall(r"^\s*vinrctl \[-s SOCKET\] ([a-z]+)", r.stdout, re.M))
    assert listed, r.stdout
    assert listed <= set(complete(""))


# ------------------------------------------------------------ monitoring

def test_alert_rules_promtool():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus); "
                    "the alert rules were not checked")
    r = subprocess.run([promtool, "check", "rules", ALERTS], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 7 rules found" in r.stdout


def alert_exprs():
    """The expr: values of the rules file, read without a YAML library."""
    exprs, cur = [], None
    for line in open(ALERTS):
        m = re.match(r"^(\s*)expr:\s*(>)?\s*(.*)$", line)
        if m:
            cur = len(m.group(1))
            exprs.append(m.group(3))
            continue
        if cur is not None and line.strip() and len(line) - len(line.lstrip()) > cur:
            exprs[-1] += " " + line.strip()
        else:
            cur = None
    return exprs


def dashboard_exprs():
    dash = json.load(open(DASHBOARD))
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            exprs.append(v["query"]["query"])
    return exprs


def metric_names(exprs):
    return {n for e in exprs for n in re.findall(r"\b(vinr_[a-z_]+)", e)}


def test_monitoring_uses_only_exported_metrics(make_daemon):
    """Each metric name in the dashboard's queries and the alert rules is one
    that a live /metrics shows (every sink configured, so each label too)."""
    dm = make_daemon(conf={"forward": {"hook": "/bin/true"}})
    st, _, body = dm.request("GET", "/metrics")
    assert st == 200
    exported = set()
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            exported.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    dash, alerts = metric_names(dashboard_exprs()), metric_names(alert_exprs())
    assert len(dash) >= 12 and len(alerts) >= 6
    assert dash - exported == set()
    assert alerts - exported == set()
    # The labels the queries select on exist too.
    text = body.decode()
    for label in ('result="rejected"', 'reason="storage_unavailable"', 'sink="eventlog"',
                  'status="401"'):
        assert label in text, label


# ------------------------------------------------------------ make install

def test_make_install_layout(tmp_path):
    dest = tmp_path / "root"
    r = subprocess.run(["make", "-s", "-C", ROOT, "BUILD=" + BIN_DIR, "install",
                        "DESTDIR=" + str(dest), "PREFIX=/usr/local"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    for path in ("usr/local/bin/vinr-webhookd", "usr/local/bin/vinrctl",
                 "usr/local/share/bash-completion/completions/vinrctl",
                 "usr/local/share/vinr-webhookd/monitoring/vinr-webhookd-alerts.yml",
                 "usr/local/share/vinr-webhookd/monitoring/vinr-webhookd-dashboard.json",
                 "usr/local/share/doc/vinr-webhookd/README.md",
                 "usr/local/share/doc/vinr-webhookd/LICENSE",
                 "usr/local/lib/sysusers.d/vinr-webhookd.conf",
                 "etc/vinr-webhookd/vinr-webhookd.conf"):
        assert (dest / path).is_file(), path
    unit = (dest / "usr/local/lib/systemd/system/vinr-webhookd.service").read_text()
    assert "ExecStart=/usr/local/bin/vinr-webhookd -c" in unit
    assert not (dest / "usr/local/bin/loadgen").exists()


# ------------------------------------------------------------ the .deb

def deb_tools_missing():
    return [t for t in ("dpkg-buildpackage", "dh", "dpkg-deb") if shutil.which(t) is None]


@pytest.fixture(scope="module")
def debs(tmp_path_factory):
    """Builds the packages from a copy of the tree (dpkg-buildpackage writes
    beside the source) and returns {package: .deb path}."""
    missing = deb_tools_missing()
    if missing:
        pytest.skip("dpkg-dev/debhelper not installed (%s missing): the package was not "
                    "built; `make deb` installs them and builds it" % ", ".join(missing))
    top = tmp_path_factory.mktemp("deb")
    src = top / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", "build", "var", "__pycache__", ".pytest_cache"))
    t0 = time.time()
    r = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    print("dpkg-buildpackage took %.1f s" % (time.time() - t0))
    out = {}
    for deb in glob.glob(str(top / "*.deb")):
        out[os.path.basename(deb).split("_")[0]] = deb
    return out


def extract(deb, root):
    subprocess.run(["dpkg-deb", "-x", deb, str(root)], check=True, timeout=60)
    return root


def deb_field(deb, field):
    return subprocess.run(["dpkg-deb", "-f", deb, field], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_deb_layout(debs, tmp_path):
    assert {"vinr-webhookd", "vinr-sim"} <= set(debs)
    root = extract(debs["vinr-webhookd"], tmp_path / "d")
    for path in ("usr/bin/vinr-webhookd", "usr/bin/vinrctl",
                 "usr/share/man/man8/vinr-webhookd.8.gz",
                 "usr/share/man/man5/vinr-webhookd.conf.5.gz",
                 "usr/share/man/man1/vinrctl.1.gz",
                 "etc/vinr-webhookd/vinr-webhookd.conf",
                 "etc/logrotate.d/vinr-webhookd",
                 "usr/lib/sysusers.d/vinr-webhookd.conf",
                 "usr/share/bash-completion/completions/vinrctl",
                 "usr/share/vinr-webhookd/monitoring/vinr-webhookd-alerts.yml",
                 "usr/share/vinr-webhookd/monitoring/vinr-webhookd-dashboard.json",
                 "usr/share/doc/vinr-webhookd/copyright",
                 "usr/share/doc/vinr-webhookd/README.md.gz",
                 "lib/systemd/system/vinr-webhookd.socket"):
        assert (root / path).is_file(), path
    # Only the daemon and its client in /usr/bin: no sim, no dev tools.
    assert sorted(os.listdir(root / "usr/bin")) == ["vinr-webhookd", "vinrctl"]
    unit = (root / "lib/systemd/system/vinr-webhookd.service").read_text()
    execs = re.findall(r"^Exec\w+=(\S+)", unit, re.M)
    assert execs and all(e == "/usr/bin/vinr-webhookd" for e in execs), execs
    assert "@BINDIR@" not in unit
    sysusers = (root / "usr/lib/sysusers.d/vinr-webhookd.conf").read_text()
    assert re.search(r"^u vinr-webhookd ", sysusers, re.M)
    # The default config is a conffile, readable by the daemon's user.
    ctl = tmp_path / "ctl"
    subprocess.run(["dpkg-deb", "-e", debs["vinr-webhookd"], str(ctl)], check=True)
    assert (ctl / "conffiles").read_text().split() == [
        "/etc/logrotate.d/vinr-webhookd", "/etc/vinr-webhookd/vinr-webhookd.conf"]
    assert "systemd-sysusers" in (ctl / "postinst").read_text()
    assert oct((root / "etc/vinr-webhookd/vinr-webhookd.conf").stat().st_mode & 0o777) == \
        "0o644"
    # The binary runs from the package (same libraries as the build).
    r = subprocess.run([str(root / "usr/bin/vinr-webhookd"), "-V"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 0 and "vinr-webhookd" in r.stdout + r.stderr
    assert "libmicrohttpd" in deb_field(debs["vinr-webhookd"], "Depends")

    sim = extract(debs["vinr-sim"], tmp_path / "s")
    assert sorted(os.listdir(sim / "usr/bin")) == ["vinr-sim"]
    # Its man page, in its own package only (lintian: no-manual-page).
    assert (sim / "usr/share/man/man1/vinr-sim.1.gz").is_file()
    assert not (root / "usr/share/man/man1/vinr-sim.1.gz").exists()
    assert (sim / "usr/share/doc/vinr-sim/copyright").is_file()


def test_deb_lintian(debs):
    if shutil.which("lintian") is None:
        pytest.skip("lintian is not installed: the packages were built but not linted")
    r = subprocess.run(["lintian", "--fail-on", "error", *debs.values()],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not re.search(r"^E: ", r.stdout, re.M), r.stdout


# ------------------------------------------------------------ make run

def test_make_run_builds_no_tests(tmp_path):
    """`make run` builds the programs it runs, not the cmocka unit tests."""
    r = subprocess.run(["make", "-n", "-C", ROOT, "BUILD=" + str(tmp_path / "b"), "run"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "vinr-webhookd" in r.stdout
    assert "cmocka" not in r.stdout and "tests/unit" not in r.stdout


def test_run_dev_port_taken():
    """A second `make run` says the port is taken and fails, instead of a
    success banner over another daemon."""
    held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        try:
            held.bind(("127.0.0.1", 8787))
            held.listen(8)
        except OSError:
            pass    # something else holds it: taken all the same
        r = subprocess.run(["sh", os.path.join(ROOT, "scripts", "run-dev.sh")],
                           env=dict(os.environ, BIN=BIN_DIR), capture_output=True,
                           text=True, timeout=30)
    finally:
        held.close()
    assert r.returncode != 0
    assert "8787" in r.stderr and "taken" in r.stderr, r.stderr
    assert "is running" not in r.stdout


def test_make_run_pg_builds_no_tests(tmp_path):
    """`make run-pg` too: the programs, the PostgreSQL server, no tests."""
    r = subprocess.run(["make", "-n", "-C", ROOT, "BUILD=" + str(tmp_path / "b"), "run-pg"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "vinr-webhookd" in r.stdout and "postgresql-15" in r.stdout
    assert "scripts/run-pg.sh" in r.stdout
    assert "cmocka" not in r.stdout and "tests/unit" not in r.stdout


def test_run_pg_port_taken():
    """A second `make run-pg` fails on its first port before it starts a
    cluster or writes anything under ./var."""
    held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    existed = os.path.exists(os.path.join(ROOT, "var", "pg-a"))
    try:
        try:
            held.bind(("127.0.0.1", 8791))
            held.listen(8)
        except OSError:
            pass    # something else holds it: taken all the same
        r = subprocess.run(["sh", os.path.join(ROOT, "scripts", "run-pg.sh")],
                           env=dict(os.environ, BIN=BIN_DIR), capture_output=True,
                           text=True, timeout=30)
    finally:
        held.close()
    assert r.returncode != 0
    assert "8791" in r.stderr and "taken" in r.stderr, r.stderr
    assert "share one PostgreSQL" not in r.stdout
    assert existed or not os.path.exists(os.path.join(ROOT, "var", "pg-a"))
