"""SPEC §6: command line, exit codes, configuration errors, secret sources."""
import os
import re
import socket
import subprocess

import pytest

from conftest import (DAEMON, SECRET, Daemon, free_port, make_event, run_webhookd,
                      write_conf)

EX_OK, EX_RUNTIME, EX_USAGE, EX_CONFIG = 0, 1, 64, 78

FILE_SECRET = "whsec_from_the_file_1111"
CRED_SECRET = "whsec_from_credentials_2222"
ENV_SECRET = "whsec_from_environment_3333"


def base_sections(tmp_path, port=None, secret_file=True):
    sf = tmp_path / "webhook-secret"
    if secret_file:
        sf.write_text(FILE_SECRET + "\n")
    return {
        "http": {"listen": "127.0.0.1:%d" % (port or free_port()), "path": "/webhooks/vinr"},
        "webhook": {"scheme": "vinr", "secret_file": str(sf) if secret_file else None},
        "storage": {"database": str(tmp_path / "vinr.db"),
                    "event_log": str(tmp_path / "events.log")},
        "control": {"socket": str(tmp_path / "control.sock")},
    }


def conf_with(tmp_path, extra, name="vinr.conf", **kw):
    """A good config followed by the lines of extra; returns (path, the line
    number of extra's first line)."""
    path = str(tmp_path / name)
    write_conf(path, base_sections(tmp_path, **kw))
    with open(path) as f:
        n = len(f.read().splitlines())
    with open(path, "a") as f:
        f.write(extra)
    return path, n + 1


def assert_no_secret(*texts):
    for t in texts:
        for s in (SECRET, FILE_SECRET, CRED_SECRET, ENV_SECRET, "whsec_inline_value_4444"):
            assert s not in t


# ------------------------------------------------------------- options

@pytest.mark.parametrize("opt", ["-V", "--version"])
def test_version(opt):
    r = run_webhookd(opt)
    assert r.returncode == EX_OK
    assert re.search(r"vinr-webhookd \d+\.\d+\.\d+", r.stdout)


@pytest.mark.parametrize("opt", ["-h", "--help"])
def test_help(opt):
    r = run_webhookd(opt)
    assert r.returncode == EX_OK
    assert "usage" in r.stdout.lower()
    assert "-c" in r.stdout and "-t" in r.stdout


@pytest.mark.parametrize("args", [["-x"], ["--bogus"], ["-c"], ["extra-arg"],
                                  ["-t", "positional"]])
def test_usage_error(args, tmp_path):
    r = run_webhookd(*args, cwd=str(tmp_path))
    assert r.returncode == EX_USAGE, (r.stdout, r.stderr)
    assert "usage" in r.stderr.lower()
    assert r.stdout == ""


def test_missing_config_file(tmp_path):
    missing = str(tmp_path / "nope.conf")
    r = run_webhookd("-c", missing)
    assert r.returncode == EX_CONFIG
    assert missing in r.stderr
    r = run_webhookd("-t", "-c", missing)
    assert r.returncode == EX_CONFIG


# ----------------------------------------------------- configuration errors

@pytest.mark.parametrize("extra,key", [
    ("[http]\nlisten_port = 80\n", "listen_port"),
    ("[webhook]\nsecrets = x\n", "secrets"),
    ("[storage]\nDatabase = /tmp/x.db\n", "Database"),
    ("[nonsense]\n", "nonsense"),
    ("[nonsense]\nkey = v\n", "nonsense"),
], ids=["key-http", "key-webhook", "key-case", "section", "section-with-key"])
def test_unknown_key_or_section(tmp_path, extra, key):
    path, line = conf_with(tmp_path, extra)
    # The offending line: the section header for an unknown section, else
    # the key's own line.
    want_line = line if extra.startswith("[nonsense]") else line + 1
    for args in (["-c", path], ["-t", "-c", path]):
        r = run_webhookd(*args)
        assert r.returncode == EX_CONFIG, r.stderr
        assert "%s:%d" % (path, want_line) in r.stderr, r.stderr
        assert key in r.stderr
        assert not os.path.exists(tmp_path / "vinr.db")


def test_repeated_key(tmp_path):
    path, line = conf_with(tmp_path, "[webhook]\ntolerance = 100\n; c\ntolerance = 100\n")
    r = run_webhookd("-c", path)
    assert r.returncode == EX_CONFIG
    assert "%s:%d" % (path, line + 3) in r.stderr, r.stderr
    assert "tolerance" in r.stderr


def test_repeated_key_across_section_headers(tmp_path):
    # [http] comes first in the base config; listen is set there already.
    path, line = conf_with(tmp_path, "[http]\nlisten = 127.0.0.1:1\n")
    r = run_webhookd("-c", path)
    assert r.returncode == EX_CONFIG
    assert "%s:%d" % (path, line + 1) in r.stderr, r.stderr
    assert "listen" in r.stderr


@pytest.mark.parametrize("extra,key", [
    ("[webhook]\ntolerance = abc\n", "tolerance"),
    ("[webhook]\ntolerance = -5\n", "tolerance"),
    ("[webhook]\nscheme = hmac\n", "scheme"),
    ("[http]\nmax_body = 0\n", "max_body"),
    ("[http]\nmax_body = 12k\n", "max_body"),
    ("[storage]\nsynchronous = sometimes\n", "synchronous"),
    ("[storage]\ndatabase =\n", "database"),
    ("[forward]\nsocket_ack = maybe\n", "socket_ack"),
    ("[forward]\nevents = some\n", "events"),
    ("[control]\nmode = 0999\n", "mode"),
    ("[reconciler]\nmax_rps = 0\n", "max_rps"),
    ("[reconciler]\napi_base = ftp://x\n", "api_base"),
])
def test_bad_value(tmp_path, extra, key):
    # Re-opening a section is fine; only keys the base config does not set.
    path, line = conf_with(tmp_path, extra)
    r = run_webhookd("-c", path)
    assert r.returncode == EX_CONFIG, r.stderr
    assert "%s:%d" % (path, line + 1) in r.stderr, r.stderr
    assert key in r.stderr
    r = run_webhookd("-t", "-c", path)
    assert r.returncode == EX_CONFIG


@pytest.mark.parametrize("listen", ["nope", "127.0.0.1:99999", "127.0.0.1:", ":8787",
                                    "::1:8787", "127.0.0.1:http"])
def test_bad_listen(tmp_path, listen):
    s = base_sections(tmp_path)
    s["http"]["listen"] = listen
    path = str(tmp_path / "c.conf")
    write_conf(path, s)
    r = run_webhookd("-c", path)
    assert r.returncode == EX_CONFIG, r.stderr
    assert "%s:2" % path in r.stderr and "listen" in r.stderr


def test_no_webhook_secret_at_all(tmp_path):
    path, _ = conf_with(tmp_path, "", secret_file=False)
    for args in (["-c", path], ["-t", "-c", path]):
        r = run_webhookd(*args)
        assert r.returncode == EX_CONFIG
        assert "secret" in r.stderr.lower()
    # A credentials directory without the file, and an empty variable: none.
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "api-key").write_text("sk_test_x\n")
    r = run_webhookd("-c", path, env={"CREDENTIALS_DIRECTORY": str(creds),
                                      "VINR_WEBHOOK_SECRET": "  "})
    assert r.returncode == EX_CONFIG
    # A secret file with nothing but comments and blank lines: none.
    sf = tmp_path / "empty-secret"
    sf.write_text("# rotated out\n\n   \r\n")
    s = base_sections(tmp_path)
    s["webhook"]["secret_file"] = str(sf)
    write_conf(path, s)
    r = run_webhookd("-c", path, env={"VINR_WEBHOOK_SECRET": ENV_SECRET})
    assert r.returncode == EX_CONFIG, r.stderr
    assert_no_secret(r.stdout, r.stderr)


def test_unreadable_secret_file(tmp_path):
    s = base_sections(tmp_path)
    s["webhook"]["secret_file"] = str(tmp_path / "missing-secret")
    path = str(tmp_path / "c.conf")
    write_conf(path, s)
    r = run_webhookd("-c", path, env={"VINR_WEBHOOK_SECRET": ENV_SECRET})
    assert r.returncode == EX_CONFIG
    # The key and what is wrong, never the value (SPEC §6).
    assert "[webhook] secret_file: no such file" in r.stderr
    assert "missing-secret" not in r.stderr


# ------------------------------------------------------------ secrets

def _accepts(dm, secret):
    ev = make_event("completed")
    st, _ = dm.post_event(ev, secret=secret)
    assert st in (200, 401)
    return st == 200


@pytest.fixture
def creds(tmp_path):
    d = tmp_path / "credentials"
    d.mkdir()
    (d / "webhook-secret").write_text("# systemd credential\n" + CRED_SECRET + "\n")
    return d


def test_secret_file_wins(make_daemon, creds):
    dm = make_daemon(secrets=[FILE_SECRET],
                     env={"CREDENTIALS_DIRECTORY": str(creds),
                          "VINR_WEBHOOK_SECRET": ENV_SECRET})
    assert _accepts(dm, FILE_SECRET)
    assert not _accepts(dm, CRED_SECRET)
    assert not _accepts(dm, ENV_SECRET)


def test_credential_before_environment(make_daemon, creds):
    dm = make_daemon(conf={"webhook": {"secret_file": None}},
                     env={"CREDENTIALS_DIRECTORY": str(creds),
                          "VINR_WEBHOOK_SECRET": ENV_SECRET})
    assert "secret_file" not in open(dm.conf_path).read()
    assert _accepts(dm, CRED_SECRET)
    assert not _accepts(dm, ENV_SECRET)
    assert not _accepts(dm, SECRET)


def test_empty_secret_file_value_means_unset(make_daemon, creds):
    dm = make_daemon(conf={"webhook": {"secret_file": ""}},
                     env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert _accepts(dm, CRED_SECRET)
    assert not _accepts(dm, SECRET)


def test_environment_last(make_daemon, tmp_path):
    empty = tmp_path / "no-webhook-secret-here"
    empty.mkdir()
    dm = make_daemon(conf={"webhook": {"secret_file": None}},
                     env={"CREDENTIALS_DIRECTORY": str(empty),
                          "VINR_WEBHOOK_SECRET": "  " + ENV_SECRET + "  "})
    assert _accepts(dm, ENV_SECRET)
    assert not _accepts(dm, SECRET)
    dm2 = make_daemon(name="d2", conf={"webhook": {"secret_file": None}},
                      env={"VINR_WEBHOOK_SECRET": ENV_SECRET})
    assert _accepts(dm2, ENV_SECRET)
    assert not _accepts(dm2, FILE_SECRET)


def test_secret_values_never_printed(tmp_path, creds):
    # -t on a good config.
    path, _ = conf_with(tmp_path, "")
    r = run_webhookd("-t", "-c", path, env={"VINR_WEBHOOK_SECRET": ENV_SECRET,
                                             "CREDENTIALS_DIRECTORY": str(creds)})
    assert r.returncode == EX_OK
    assert_no_secret(r.stdout, r.stderr)
    # A secret pasted into the config as a (unknown) key.
    path, line = conf_with(tmp_path, "[webhook]\nsecret = whsec_inline_value_4444\n",
                           name="inline.conf")
    r = run_webhookd("-c", path)
    assert r.returncode == EX_CONFIG
    assert "%s:%d" % (path, line + 1) in r.stderr
    assert_no_secret(r.stdout, r.stderr)
    # Secrets that are no Standard Webhooks key, from each source.
    s = base_sections(tmp_path)
    s["webhook"]["scheme"] = "standard"
    std = str(tmp_path / "std.conf")
    write_conf(std, s)
    r = run_webhookd("-c", std)
    assert r.returncode == EX_CONFIG, r.stderr
    assert_no_secret(r.stdout, r.stderr)
    s["webhook"]["secret_file"] = None
    write_conf(std, s)
    for env in ({"CREDENTIALS_DIRECTORY": str(creds)}, {"VINR_WEBHOOK_SECRET": ENV_SECRET}):
        for args in (["-c", std], ["-t", "-c", std]):
            r = run_webhookd(*args, env=env)
            assert r.returncode == EX_CONFIG, r.stderr
            assert "secret" in r.stderr.lower()
            assert_no_secret(r.stdout, r.stderr)


def test_secret_not_in_running_daemon_log(make_daemon, creds):
    dm = make_daemon(start=False, conf={"webhook": {"secret_file": None}},
                     env={"CREDENTIALS_DIRECTORY": str(creds)})
    dm.start(args=("-d",))
    assert _accepts(dm, CRED_SECRET)
    assert not _accepts(dm, ENV_SECRET)
    assert dm.stop() == 0
    assert_no_secret(dm.log())


# ----------------------------------------------------------------- -t

def test_check_config_does_not_bind(tmp_path):
    port = free_port()
    path, _ = conf_with(tmp_path, "", port=port)
    # Hold the port: a -t that tried to listen would fail.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))
        s.listen(1)
        for opt in ("-t", "--check-config"):
            r = run_webhookd(opt, "-c", path)
            assert r.returncode == EX_OK, r.stderr
            assert "ok" in (r.stdout + r.stderr).lower()
    # And nothing was created: no database, no event log, no control socket.
    assert sorted(os.listdir(tmp_path)) == ["vinr.conf", "webhook-secret"]
    # The port is still free for a real start afterwards.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))


def test_check_config_bad(tmp_path):
    path, _ = conf_with(tmp_path, "[webhook]\ntolerance = forever\n")
    r = run_webhookd("-t", "-c", path)
    assert r.returncode == EX_CONFIG
    assert "tolerance" in r.stderr
    # Missing parent directory of the database: what a start would refuse.
    s = base_sections(tmp_path)
    s["storage"]["database"] = str(tmp_path / "no" / "such" / "dir" / "vinr.db")
    write_conf(path, s)
    r = run_webhookd("-t", "-c", path)
    assert r.returncode == EX_CONFIG, r.stderr


def test_check_config_uses_relative_paths_from_cwd(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "secret").write_text(FILE_SECRET + "\n")
    s = base_sections(tmp_path)
    s["webhook"]["secret_file"] = "sub/secret"
    s["storage"]["database"] = "sub/vinr.db"
    path = str(tmp_path / "rel.conf")
    write_conf(path, s)
    assert run_webhookd("-t", "-c", path, cwd=str(tmp_path)).returncode == EX_OK
    assert run_webhookd("-t", "-c", path, cwd="/").returncode == EX_CONFIG


# ------------------------------------------------------------ runtime

def test_port_in_use_exits_1(make_daemon):
    a = make_daemon("a")
    b = Daemon(a.dir + "-b")
    b.sections["http"]["listen"] = "127.0.0.1:%d" % a.port
    write_conf(b.conf_path, b.sections)
    with open(b.stderr_path, "ab") as err:
        p = subprocess.run([DAEMON, "-c", b.conf_path], cwd=b.dir, env=b.env,
                           stdin=subprocess.DEVNULL, stdout=err, stderr=err, timeout=15)
    assert p.returncode == EX_RUNTIME, b.log()
    assert str(a.port) in b.log()
    # a is unharmed.
    st, _ = a.post_event(make_event("completed"))
    assert st == 200


# ------------------------------------------------------- syntax, live

def test_comments_and_custom_path_live(make_daemon):
    """Comment syntax of §6, proved by what the running daemon does."""
    dm = make_daemon(start=False)
    text = open(dm.conf_path).read()
    text = text.replace("path = /webhooks/vinr",
                        "# a comment line\n; another\n   ; indented comment\n"
                        "path = /hooks/in ; inline comment\nmax_body = 600 ;600 is small")
    with open(dm.conf_path, "w") as f:
        f.write(text)
    dm.start()
    ev = make_event("completed")
    st, _ = dm.post_event(ev, path="/hooks/in")
    assert st == 200
    st, resp = dm.post_event(make_event("completed"), path="/webhooks/vinr")
    assert (st, resp) == (404, {"error": "not_found"})
    big = make_event("completed", pad="x" * 600)
    st, resp = dm.post_event(big, path="/hooks/in")
    assert (st, resp) == (413, {"error": "payload_too_large"})


def test_hash_is_no_inline_comment(tmp_path):
    # Only " ;" starts an inline comment: "100 # note" is not a number.
    path, line = conf_with(tmp_path, "[webhook]\ntolerance = 100 # note\n")
    r = run_webhookd("-t", "-c", path)
    assert r.returncode == EX_CONFIG, r.stdout
    assert "%s:%d" % (path, line + 1) in r.stderr and "tolerance" in r.stderr
    path, _ = conf_with(tmp_path, "[webhook]\ntolerance = 100 ; note\n", name="ok.conf")
    assert run_webhookd("-t", "-c", path).returncode == EX_OK


def test_log_lines_carry_priority_prefixes_under_journald(make_daemon):
    """SPEC §6: one line each, with sd-daemon <N> prefixes when JOURNAL_STREAM
    is set; a timestamp otherwise."""
    import re
    d = make_daemon(env={"JOURNAL_STREAM": "8:12345"})
    st, _ = d.post_event(make_event("completed"), secret="whsec_wrong")
    assert st == 401
    assert d.stop() == 0
    lines = [l for l in d.log().splitlines() if l]
    assert lines and all(re.match(r"^<[0-7]>", l) for l in lines), lines
    assert any(l.startswith("<6>") for l in lines)          # info: listening, stopping
    assert any(l.startswith("<4>") for l in lines)          # warning: the refused webhook
    plain = make_daemon(name="plain")
    assert plain.stop() == 0
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ", l)
               for l in plain.log().splitlines() if l), plain.log()


# ------------------------------------------------------------- [storage] postgres (SPEC §8)

def test_check_config_postgres_keys(tmp_path):
    path, _ = conf_with(tmp_path, "")
    s = base_sections(tmp_path)
    s["storage"].update({"backend": "postgres", "dsn": "postgresql://vinr@127.0.0.1:1/vinr",
                         "instance": "pos-1", "takeover": "5"})
    write_conf(path, s)
    r = run_webhookd("-t", "-c", path)
    assert r.returncode == EX_OK, r.stderr


@pytest.mark.parametrize("extra,want", [
    ({"backend": "postgres"}, "postgres needs [storage] dsn"),
    ({"backend": "oracle"}, "not sqlite or postgres"),
    ({"takeover": "0"}, "takeover: out of range"),
    ({"instance": "a/b"}, "instance: may hold only"),
    ({"backend": "postgres",
      "dsn": "postgresql://vinr:S3cretPgPw@127.0.0.1/vinr"}, "dsn: holds a password"),
    ({"backend": "postgres",
      "dsn": "host=127.0.0.1 password=S3cretPgPw"}, "dsn: holds a password"),
])
def test_check_config_postgres_refused(tmp_path, extra, want):
    path = str(tmp_path / "vinr.conf")
    s = base_sections(tmp_path)
    s["storage"].update(extra)
    write_conf(path, s)
    r = run_webhookd("-t", "-c", path)
    assert r.returncode == EX_CONFIG
    assert want in r.stderr and "vinr.conf:" in r.stderr
    assert "S3cretPgPw" not in r.stdout + r.stderr


def test_check_config_postgres_password_from_env_not_printed(tmp_path):
    path = str(tmp_path / "vinr.conf")
    s = base_sections(tmp_path)
    s["storage"].update({"backend": "postgres", "dsn": "dbname=vinr"})
    write_conf(path, s)
    r = run_webhookd("-t", "-c", path, env={"VINR_PG_PASSWORD": "S3cretPgPw"})
    assert r.returncode == EX_OK, r.stderr
    assert "S3cretPgPw" not in r.stdout + r.stderr
