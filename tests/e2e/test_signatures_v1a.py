"""SPEC §1.3, the newer paragraphs: Standard Webhooks v1a (Ed25519) under
trusted whpk_ keys from [webhook] public_key_file, Svix header names, and
vinr-sim signing v1a.  Signatures are made here with the openssl command
(genpkey, pkeyutl: a bare Debian has it, Python's `cryptography` it may not)
or Python's hmac, never with the C code under test."""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import tempfile
import time
import uuid

import pytest

from conftest import (STD_SECRET, make_event, run_webhookd, sign_standard,
                      write_conf, free_port)

EX_CONFIG = 78
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_BODY = b'{"test": 2432232314}'
JSON = {"Content-Type": "application/json"}


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True,
                          check=True, timeout=10).stdout


class Ed25519Key:
    """An Ed25519 key pair made by `openssl genpkey`, in a PEM file."""

    def __init__(self):
        fd, self.pem = tempfile.mkstemp(prefix="vinr-test-ed25519-", suffix=".pem")
        os.close(fd)
        openssl("genpkey", "-algorithm", "ed25519", "-out", self.pem)
        # DER ends with the raw 32 bytes: the seed (PKCS#8), the key (SPKI).
        self.seed = openssl("pkey", "-in", self.pem, "-outform", "DER")[-32:]
        self.public = openssl("pkey", "-in", self.pem, "-pubout", "-outform", "DER")[-32:]

    def sign(self, msg):
        # pkeyutl's one-shot Ed25519 wants a file it can size, not a pipe.
        with tempfile.NamedTemporaryFile(prefix="vinr-test-msg-") as f:
            f.write(msg)
            f.flush()
            return openssl("pkeyutl", "-sign", "-inkey", self.pem, "-rawin", "-in", f.name)

    def close(self):
        os.unlink(self.pem)


def whpk(key):
    return "whpk_" + base64.b64encode(key.public).decode()


def whsk(key):
    return "whsk_" + base64.b64encode(key.seed).decode()


def sign_v1a(key, body, msg_id, t=None):
    t = int(time.time()) if t is None else t
    sig = key.sign(("%s.%d." % (msg_id, t)).encode() + body)
    assert len(sig) == 64
    return {"webhook-id": msg_id, "webhook-timestamp": str(t),
            "webhook-signature": "v1a," + base64.b64encode(sig).decode()}


def new_key():
    return Ed25519Key()


def body_of(ev):
    return json.dumps(ev).encode()


def answer(dm, body, headers):
    st, _, data = dm.request("POST", "/webhooks/vinr", body, {**JSON, **headers})
    return st, json.loads(data)


@pytest.fixture
def trusted():
    k = Ed25519Key()
    yield k
    k.close()


def keys_daemon(make_daemon, tmp_path, keys, secret=False, name="d"):
    """A daemon under scheme standard trusting keys (and STD_SECRET if secret)."""
    path = tmp_path / (name + "-public-keys")
    path.write_text("# trusted senders\n\n" + "\n".join("  %s \r" % whpk(k) for k in keys)
                    + "\n")
    webhook = {"public_key_file": str(path)}
    if not secret:
        webhook["secret_file"] = ""
    return make_daemon(name=name, scheme="standard", conf={"webhook": webhook})


def test_v1a_accepted_refused(make_daemon, tmp_path, trusted):
    """Keys alone: v1a with a trusted key passes; untrusted key, tampered
    body, a v1 (no secret configured) or a key sent along are refused."""
    dm = keys_daemon(make_daemon, tmp_path, [trusted])
    # SPEC §1.3's vector message re-signed now: authentic, so it gets past
    # every signature check; it has no "type", hence invalid_event, not 401.
    st, resp = answer(dm, VECTOR_BODY, sign_v1a(trusted, VECTOR_BODY, VECTOR_ID))
    assert (st, resp) == (400, {"error": "invalid_event"})

    ev = make_event("completed", amount=700)
    body = body_of(ev)
    st, resp = answer(dm, body, sign_v1a(trusted, body, "msg_" + uuid.uuid4().hex))
    assert (st, resp) == (200, {"received": True, "eventId": ev["id"], "duplicate": False})
    assert dm.wait_event_log(1)[0]["eventId"] == ev["id"]

    untrusted = new_key()
    ev2 = make_event("completed")
    b2 = body_of(ev2)
    bad = [
        sign_v1a(untrusted, b2, "msg_1"),
        # The untrusted key offered in a header is never used.
        dict(sign_v1a(untrusted, b2, "msg_1"), **{"webhook-public-key": whpk(untrusted)}),
        # Tampered body: signed over b2, sent with one byte changed.
        sign_v1a(trusted, b2.replace(b"completed", b"completee"), "msg_1"),
        # A v1 under a secret the daemon does not hold.
        sign_standard(b2, "msg_1"),
    ]
    for h in bad:
        assert answer(dm, b2, h) == (401, {"error": "invalid_signature"})
    # Out of tolerance is still checked first.
    assert answer(dm, b2, sign_v1a(trusted, b2, "msg_1", t=int(time.time()) - 400)) == \
        (401, {"error": "timestamp_out_of_tolerance"})
    assert dm.query("SELECT count(*) FROM events")[0][0] == 1
    untrusted.close()


def test_v1a_or_v1(make_daemon, tmp_path, trusted):
    """Secrets and keys both: either kind of signature is enough."""
    other = new_key()
    dm = keys_daemon(make_daemon, tmp_path, [other, trusted], secret=True)
    for make in (lambda b, m: sign_standard(b, m),
                 lambda b, m: sign_v1a(trusted, b, m),
                 lambda b, m: sign_v1a(other, b, m)):
        ev = make_event("pending")
        body = body_of(ev)
        st, _ = answer(dm, body, make(body, "msg_" + uuid.uuid4().hex))
        assert st == 200
    # A bad v1 beside a good v1a, and the other way round.
    ev = make_event("pending")
    body = body_of(ev)
    h = sign_v1a(trusted, body, "msg_x")
    h["webhook-signature"] = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= " + \
        h["webhook-signature"]
    assert answer(dm, body, h)[0] == 200
    other.close()


def test_svix_headers(make_daemon, tmp_path, trusted):
    dm = keys_daemon(make_daemon, tmp_path, [trusted], secret=True)

    def svix(h):
        return {k.replace("webhook-", "svix-"): v for k, v in h.items()}

    ev = make_event("completed")
    body = body_of(ev)
    assert answer(dm, body, svix(sign_standard(body, "msg_s1")))[0] == 200
    ev = make_event("completed")
    body = body_of(ev)
    assert answer(dm, body, svix(sign_v1a(trusted, body, "msg_s2")))[0] == 200
    # Without a body id, svix-id is the dedupe key.
    ev = make_event("completed")
    del ev["id"]
    body = body_of(ev)
    mid = "msg_" + uuid.uuid4().hex
    assert answer(dm, body, svix(sign_standard(body, mid))) == \
        (200, {"received": True, "eventId": mid, "duplicate": False})
    assert answer(dm, body, svix(sign_standard(body, mid))) == \
        (200, {"received": True, "eventId": mid, "duplicate": True})
    # Both sets: webhook-* is used, even when only the svix-* set is good.
    ev = make_event("completed")
    body = body_of(ev)
    good = svix(sign_standard(body, "msg_s3"))
    badw = sign_standard(body, "msg_s3", t=int(time.time()) - 1000)
    assert answer(dm, body, {**badw, **good}) == \
        (401, {"error": "timestamp_out_of_tolerance"})
    # One webhook-* header is enough to make it the set read.
    assert answer(dm, body, {**good, "webhook-id": "msg_s3"}) == \
        (401, {"error": "missing_signature"})
    goodw = sign_standard(body, "msg_s4")
    assert answer(dm, body, {**goodw, **svix(badw)})[0] == 200


def conf_for(tmp_path, webhook):
    path = str(tmp_path / "vinr.conf")
    write_conf(path, {
        "http": {"listen": "127.0.0.1:%d" % free_port()},
        "webhook": webhook,
        "storage": {"database": str(tmp_path / "vinr.db"),
                    "event_log": str(tmp_path / "events.log")},
        "control": {"socket": str(tmp_path / "control.sock")},
    })
    return path


def line_of(path, key):
    for i, line in enumerate(open(path).read().splitlines(), 1):
        if line.startswith(key):
            return i
    raise AssertionError(key)


def test_private_key_refused_at_start(tmp_path, trusted):
    kf = tmp_path / "keys"
    kf.write_text(whsk(trusted) + "\n")
    path = conf_for(tmp_path, {"scheme": "standard", "public_key_file": str(kf)})
    for args in (("-c", path), ("-t", "-c", path)):
        r = run_webhookd(*args)
        assert r.returncode == EX_CONFIG, r.stderr
        assert "is a private key" in r.stderr
        assert whsk(trusted)[5:] not in r.stdout + r.stderr
    # The same key through the environment: refused the same way.
    path = conf_for(tmp_path, {"scheme": "standard"})
    r = run_webhookd("-c", path, env={"VINR_WEBHOOK_PUBLIC_KEY": whsk(trusted)})
    assert r.returncode == EX_CONFIG and "(from environment) is a private key" in r.stderr
    # A good key from the environment is enough on its own.
    r = run_webhookd("-t", "-c", path, env={"VINR_WEBHOOK_PUBLIC_KEY": whpk(trusted)})
    assert r.returncode == 0, r.stderr


def test_missing_files_name_key_and_line(tmp_path):
    """Both missing files are reported at once, each with its key and line,
    and never with the value written (it could be a pasted secret)."""
    path = conf_for(tmp_path, {"scheme": "standard",
                               "secret_file": str(tmp_path / "no-secret"),
                               "public_key_file": str(tmp_path / "no-keys")})
    r = run_webhookd("-c", path)
    assert r.returncode == EX_CONFIG
    assert "%s:%d: [webhook] secret_file: no such file" % (
        path, line_of(path, "secret_file")) in r.stderr, r.stderr
    assert "%s:%d: [webhook] public_key_file: no such file" % (
        path, line_of(path, "public_key_file")) in r.stderr, r.stderr
    assert "no-secret" not in r.stderr and "no-keys" not in r.stderr
    (tmp_path / "no-secret").write_text(STD_SECRET + "\n")
    r = run_webhookd("-c", path)
    assert r.returncode == EX_CONFIG
    assert "%s:%d: [webhook] public_key_file: no such file" % (
        path, line_of(path, "public_key_file")) in r.stderr, r.stderr
    assert "secret_file" not in r.stderr
    # Under scheme vinr a public_key_file is a mistake, and said to be one.
    path = conf_for(tmp_path, {"scheme": "vinr", "secret_file": str(tmp_path / "no-secret"),
                               "public_key_file": str(tmp_path / "no-keys")})
    r = run_webhookd("-c", path)
    assert r.returncode == EX_CONFIG
    assert "public_key_file: only with scheme = standard" in r.stderr


def test_sim_signs_v1a(make_daemon, make_sim, tmp_path, trusted):
    """vinr-sim with --signing-key-file feeds a daemon that holds no secret."""
    dm = keys_daemon(make_daemon, tmp_path, [trusted])
    kf = tmp_path / "sim-signing-key"
    kf.write_text("# the sender's private key\n" + whsk(trusted) + "\n")
    sim = make_sim(daemon=dm, secrets=[], args=["--signing-key-file", str(kf)])
    st, p = sim.create(amount=1200, reference="v1a_1", delay=0)
    assert st in (200, 202), p
    sim.wait_status(p["id"], ("completed",))
    evs = sim.wait_sent()
    assert evs and all(e["delivery"] == "delivered" for e in evs), evs
    deadline = time.time() + 10
    while not any(o["paymentId"] == p["id"] and o["status"] == "completed"
                  for o in dm.event_log_lines()):
        assert time.time() < deadline, dm.event_log_lines()
        time.sleep(0.05)
    # The key never shows in the sim's command line or log.
    assert whsk(trusted)[5:] not in " ".join(sim.argv) + open(sim.stderr_path).read()
    # Under scheme vinr the sim refuses to start with a signing key.
    bad = make_sim(name="sim2", start=False, scheme="vinr", secrets=["whsec_x"],
                   args=["--signing-key-file", str(kf)])
    bad._spawn(bad.argv)
    assert bad.proc.wait(10) != 0
