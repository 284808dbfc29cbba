"""pay, cancel, capture and wait --final (SPEC §4.1) through the daemon,
against the real vinr-sim, and against a stub VINR that misbehaves on
purpose (it takes a create and drops the connection, answers 5xx, hangs)."""
import http.server
import json
import socket
import threading
import time
import uuid

import pytest

from conftest import SIM_KEY, make_event, write_conf
from conftest import wait_for

API_KEY = SIM_KEY


def ref():
    return "order_" + uuid.uuid4().hex[:10]


def pay_req(reference=None, **over):
    r = {"cmd": "pay", "terminalId": "term_test_simulator", "amount": 2500,
         "currency": "USD", "reference": reference or ref()}
    r.update(over)
    return r


def requests_row(d, key):
    rows = d.query("SELECT state, payment_id FROM pay_requests WHERE key = ?", key)
    return rows[0] if rows else None


def configure(d, base, api=None, rc=None):
    d.sections["api"] = dict({"base": base}, **(api or {}))
    if rc:
        d.sections.setdefault("reconciler", {}).update(rc)
    write_conf(d.conf_path, d.sections)


@pytest.fixture
def pair(make_daemon, make_sim):
    """A daemon that pays through a sim, and whose webhooks come from it."""
    def factory(sim_args=(), api=None, rc=None, key=API_KEY):
        d = make_daemon(start=False, env={"VINR_API_KEY": key})
        sim = make_sim(daemon=d, args=sim_args)
        configure(d, sim.url, api, rc)
        d.start()
        return d, sim
    return factory


# ---------------------------------------------------------------------------
# Against vinr-sim

@pytest.mark.backends("sqlite", "postgres")
def test_pay_approved_waits_for_the_outcome(pair):
    d, sim = pair()
    r = d.ctl(pay_req(id=7), timeout=30)
    assert r["ok"] is True and r["id"] == 7, r
    p = r["payment"]
    assert p["status"] == "completed" and p["amount"] == 2500 and p["tracked"] is True
    assert p["terminalId"] == "term_test_simulator" and p["currency"] == "USD"
    # The create's answer went through the state machine as source "api".
    ev = d.query("SELECT id, source FROM events WHERE payment_id = ? AND source = 'api'",
                 p["paymentId"])
    assert ev == [("api_%s_pending" % p["paymentId"], "api")]
    assert requests_row(d, p["reference"]) == ("created", p["paymentId"])
    # VINR holds exactly one payment for it.
    assert [x["id"] for x in sim.payments()] == [p["paymentId"]]


def test_pay_declined_by_test_card_is_ok_with_its_decline_code(pair):
    d, sim = pair()
    r = d.ctl(pay_req(testCard="4000 0000 0000 0002"), timeout=30)
    assert r["ok"] is True and r["payment"]["status"] == "failed", r
    assert r["payment"]["declineCode"] == "card_declined"


def test_terminal_decline_codes_pass_through(pair):
    d, sim = pair()
    r = d.ctl(pay_req(terminalId="term_not_registered"), timeout=30)
    assert r["ok"] is True and r["payment"]["status"] == "failed", r
    assert r["payment"]["declineCode"] == "terminal_not_found"


def test_wait_zero_answers_as_soon_as_created_then_wait_for_the_outcome(pair):
    """wait 0: the async answer (pending at once); the default waits (sync)."""
    d, sim = pair()
    t0 = time.time()
    r = d.ctl(pay_req(wait=0, simulateDelay=2), timeout=30)
    assert r["ok"] is True and r["payment"]["status"] == "pending", r
    assert time.time() - t0 < 1.5
    pid = r["payment"]["paymentId"]
    w = d.ctl({"cmd": "wait", "paymentId": pid, "timeout": 20}, timeout=30)
    assert w["ok"] is True and w["payment"]["status"] == "completed"
    # Sync: the same, waited for in one call.
    t0 = time.time()
    r = d.ctl(pay_req(simulateDelay=1), timeout=30)
    assert r["ok"] is True and r["payment"]["status"] == "completed"
    assert time.time() - t0 >= 0.9


def test_pay_times_out_while_the_payment_goes_on(pair):
    d, sim = pair()
    r = d.ctl(pay_req(wait=1, simulateDelay=4), timeout=30)
    assert r["ok"] is False and r["error"] == "timeout", r
    pid = r["payment"]["paymentId"]
    assert r["payment"]["status"] in ("pending", "processing")
    w = d.ctl({"cmd": "wait", "paymentId": pid, "timeout": 20}, timeout=30)
    assert w["payment"]["status"] == "completed"


def test_manual_capture_with_a_tip_and_wait_final(pair):
    d, sim = pair()
    r = d.ctl(pay_req(reference="table_12", key="table_12_" + uuid.uuid4().hex[:6],
                      captureMethod="manual"), timeout=30)
    assert r["ok"] is True and r["payment"]["status"] == "authorized", r
    pid = r["payment"]["paymentId"]
    # wait answers at once with authorized; wait --final waits for the capture.
    w = d.ctl({"cmd": "wait", "paymentId": pid, "timeout": 5})
    assert w["ok"] is True and w["payment"]["status"] == "authorized"
    c = d.control_client(timeout=30)
    c.send({"cmd": "wait", "paymentId": pid, "until": "final", "timeout": 20, "id": "f"})
    time.sleep(0.3)
    cap = d.ctl({"cmd": "capture", "paymentId": pid, "amount": 2875}, timeout=30)
    assert cap["ok"] is True and cap["payment"]["status"] == "completed", cap
    assert cap["payment"]["amountCaptured"] == 2875
    f = c.recv()
    c.close()
    assert f["ok"] is True and f["id"] == "f" and f["payment"]["status"] == "completed"
    assert f["payment"]["amountCaptured"] == 2875
    # The capture's answer went through the state machine too (it may come
    # after the sim's webhook: then it is stale, and no second outcome).
    assert d.query("SELECT source FROM events WHERE id = ?", "api_%s_completed" % pid) == \
        [("api",)]
    out = [l for l in d.wait_event_log(3) if l["paymentId"] == pid]
    assert [l["status"] for l in out].count("completed") == 1


def test_wait_final_times_out_on_an_authorized_payment(pair):
    d, sim = pair()
    r = d.ctl(pay_req(captureMethod="manual"), timeout=30)
    pid = r["payment"]["paymentId"]
    w = d.ctl({"cmd": "wait", "paymentId": pid, "until": "final", "timeout": 1})
    assert w["ok"] is False and w["error"] == "timeout"
    assert w["payment"]["status"] == "authorized"
    bad = d.ctl({"cmd": "wait", "paymentId": pid, "until": "later"})
    assert bad["ok"] is False and bad["error"] == "bad_request"


def test_cancel_while_pending_and_refused_once_processing(pair):
    d, sim = pair()
    r = d.ctl(pay_req(wait=0, simulateDelay=6), timeout=30)
    pid = r["payment"]["paymentId"]
    c = d.ctl({"cmd": "cancel", "paymentId": pid}, timeout=30)
    assert c["ok"] is True and c["payment"]["status"] == "cancelled", c
    assert sim.get(pid)[1]["status"] == "cancelled"
    # Another, cancelled too late: VINR's 409 comes back as upstream_error.
    r = d.ctl(pay_req(wait=0, simulateDelay=6), timeout=30)
    pid = r["payment"]["paymentId"]
    sim.wait_status(pid, "processing")
    c = d.ctl({"cmd": "cancel", "paymentId": pid, "id": 3}, timeout=30)
    assert c["ok"] is False and c["error"] == "upstream_error" and c["id"] == 3, c
    assert c["status"] == 409 and c["code"] == "payment_not_cancellable"
    assert "message" in c


@pytest.mark.backends("sqlite", "postgres")
def test_one_create_per_key(pair):
    d, sim = pair()
    key = "k_" + uuid.uuid4().hex[:8]
    req = pay_req(key=key)
    first = d.ctl(req, timeout=30)
    assert first["ok"] is True, first
    again = d.ctl(req, timeout=30)
    assert again["ok"] is True and again["payment"]["paymentId"] == \
        first["payment"]["paymentId"]
    assert len(sim.payments()) == 1
    # Same key, another payment: refused, naming the field.
    for field, value in (("amount", 2600), ("terminalId", "term_other"),
                         ("currency", "EUR"), ("captureMethod", "manual")):
        bad = d.ctl(dict(req, **{field: value}), timeout=30)
        assert bad["ok"] is False and bad["error"] == "bad_request", bad
        assert "used for another payment" in bad["message"] and field in bad["message"]
    assert len(sim.payments()) == 1
    assert d.query("SELECT count(*) FROM pay_requests")[0][0] == 1


def test_repeat_while_pending_waits_for_the_same_payment(pair):
    d, sim = pair()
    req = pay_req(simulateDelay=2)
    c1 = d.control_client(timeout=30)
    c1.send(dict(req, id=1))
    time.sleep(0.5)
    second = d.ctl(dict(req, id=2), timeout=30)
    first = c1.recv()
    c1.close()
    assert first["payment"]["paymentId"] == second["payment"]["paymentId"]
    assert second["payment"]["status"] == "completed"
    assert len(sim.payments()) == 1


def test_bad_pays(pair):
    d, sim = pair()
    for req, what in ((pay_req(amount=0), "amount"), (pay_req(amount=1.5), "amount"),
                      (pay_req(captureMethod="later"), "captureMethod"),
                      (pay_req(wait=3601), "wait"),
                      ({"cmd": "pay", "amount": 1, "currency": "USD", "reference": "r"},
                       "terminalId")):
        r = d.ctl(req)
        assert r["ok"] is False and r["error"] == "bad_request", (req, r)
        assert what in r["message"]
    assert sim.payments() == []
    # Amounts are exact: one past 2^53 reaches VINR as written (the sim
    # refuses it as out of its range: nothing is created).
    r = d.ctl(b'{"cmd":"pay","terminalId":"term_test_simulator","amount":9007199254740993,'
              b'"currency":"USD","reference":"big"}\n', timeout=30)
    assert r["ok"] is False and r["error"] == "upstream_error" and r["status"] == 400
    assert requests_row(d, "big") == ("not_created", None)
    assert d.query("SELECT amount FROM pay_requests WHERE key = 'big'") == \
        [(9007199254740993,)]


def test_sandbox_fields_need_a_sandbox_key(make_daemon, make_sim):
    d = make_daemon(start=False, env={"VINR_API_KEY": "sk_live_not_a_sandbox_key"})
    sim = make_sim(daemon=d)
    configure(d, sim.url)
    d.start()
    for extra in ({"testCard": "4242424242424242"}, {"simulateDelay": 1}):
        r = d.ctl(pay_req(**extra), timeout=30)
        assert r["ok"] is False and r["error"] == "bad_request", r
        assert "sk_test_" in r["message"]
    # Without them the live key goes to VINR, which (the sim) refuses it: 401.
    r = d.ctl(pay_req(), timeout=30)
    assert r["ok"] is False and r["error"] == "upstream_error" and r["status"] == 401
    assert "sk_live_not_a_sandbox_key" not in d.log()


def test_api_disabled_without_a_key(daemon):
    for req in (pay_req(), {"cmd": "cancel", "paymentId": "tpay_x"},
                {"cmd": "capture", "paymentId": "tpay_x"}):
        r = daemon.ctl(dict(req, id="x"))
        assert r["ok"] is False and r["error"] == "api_disabled" and r["id"] == "x", r


def test_stats_and_metrics_count_api_calls(pair):
    d, sim = pair()
    d.ctl(pay_req(), timeout=30)
    r = d.ctl(pay_req(wait=0, simulateDelay=6), timeout=30)
    pid = r["payment"]["paymentId"]
    sim.wait_status(pid, "processing")
    d.ctl({"cmd": "cancel", "paymentId": pid}, timeout=30)      # 409
    api = d.ctl({"cmd": "stats"})["stats"]["api"]
    assert api == {"requests": 3, "errors": 1, "unknown": 0}
    _, _, body = d.request("GET", "/metrics")
    text = body.decode()
    assert "vinr_api_requests_total 3" in text and "vinr_api_errors_total 1" in text
    assert "vinr_api_unknown_total 0" in text
    assert "# TYPE vinr_api_requests_total counter" in text


def test_vinrctl_pay_cancel_capture_and_wait_final(pair):
    d, sim = pair()
    r = d.vinrctl("pay", "--terminal", "term_test_simulator", "--amount", "2500",
                  "--currency", "USD", "--reference", ref(), "--manual", timeout=60)
    assert r.returncode == 0, (r.stdout, r.stderr)
    p = json.loads(r.stdout)["payment"]
    assert p["status"] == "authorized"
    w = d.vinrctl("wait", p["paymentId"], "--final", "--timeout", "1")
    assert w.returncode == 3 and json.loads(w.stdout)["error"] == "timeout"
    c = d.vinrctl("capture", p["paymentId"], "--amount", "2875", timeout=60)
    assert c.returncode == 0 and json.loads(c.stdout)["payment"]["amountCaptured"] == 2875
    w = d.vinrctl("wait", p["paymentId"], "--final")
    assert w.returncode == 0 and json.loads(w.stdout)["payment"]["status"] == "completed"
    # A decline is exit 0; a refused cancel is exit 1.
    r = d.vinrctl("pay", "--terminal", "term_test_simulator", "--amount", "100",
                  "--currency", "USD", "--reference", ref(), "--test-card",
                  "4000000000009995", timeout=60)
    assert r.returncode == 0 and json.loads(r.stdout)["payment"]["declineCode"] == \
        "insufficient_funds"
    x = d.vinrctl("cancel", p["paymentId"], timeout=60)
    assert x.returncode == 1 and json.loads(x.stdout)["error"] == "upstream_error"
    u = d.vinrctl("pay", "--terminal", "t", "--amount", "1", "--currency", "USD")
    assert u.returncode == 2 and "--reference" in u.stderr


def test_the_api_key_is_never_logged_nor_echoed(pair, tmp_path):
    key = "sk_test_secret_never_shown_42"
    d, sim = pair(key=key)
    answers = [d.ctl(pay_req(), timeout=30),
               d.ctl(pay_req(testCard="4000 0000 0000 0002"), timeout=30)]
    r = d.ctl(pay_req(wait=0, simulateDelay=6), timeout=30)
    sim.wait_status(r["payment"]["paymentId"], "processing")
    answers.append(d.ctl({"cmd": "cancel", "paymentId": r["payment"]["paymentId"]},
                         timeout=30))
    answers.append(d.ctl({"cmd": "stats"}))
    d.stop()
    assert key not in json.dumps(answers)
    assert key not in d.log()
    assert key.encode() not in d.event_log_bytes()
    assert not d.query("SELECT id FROM events WHERE body LIKE ?", "%" + key + "%")


# ---------------------------------------------------------------------------
# Against a stub VINR that misbehaves on purpose

def iso_now(offset=0):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + offset))


class StubVinr:
    """A Cloud API that does what the test says with each create: "ok"
    (202 and a pending payment), "drop" (reads the request, closes without
    an answer), "hang" (answers after hang_s), or an HTTP status.  Cancel
    and capture answer cancel_status.  It records every request."""

    def __init__(self):
        self.plan = []                 # what the next creates do, in order
        self.creates = []              # the bodies of every create received
        self.auth = []
        self.hang_s = 5
        self.cancel_status = 500
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _answer(self, status, obj):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(n) or b"{}")
                stub.auth.append(self.headers.get("Authorization"))
                if not self.path.startswith("/v1/terminal/payments") or \
                        self.path.count("/") > 3:
                    self._answer(stub.cancel_status, {"error": {
                        "code": "internal_error", "message": "try later"}})
                    return
                stub.creates.append(body)
                what = stub.plan.pop(0) if stub.plan else "ok"
                if what == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if what == "hang":
                    time.sleep(stub.hang_s)
                    what = "ok"
                if what == "ok":
                    pay = {"id": "tpay_stub_%d" % len(stub.creates),
                           "terminalId": body["terminalId"], "amount": body["amount"],
                           "currency": body["currency"], "reference": body["reference"],
                           "status": "pending", "responseMode": "async",
                           "createdAt": iso_now()}
                    self._answer(202, pay)
                else:
                    self._answer(what, {"error": {"code": "stub_%d" % what,
                                                  "message": "the stub says %d" % what}})

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.srv.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def stubbed(make_daemon):
    stubs = []

    def factory(api=None, name="d"):
        stub = StubVinr()
        stubs.append(stub)
        d = make_daemon(name=name, start=False, env={"VINR_API_KEY": API_KEY})
        configure(d, stub.url, dict({"timeout": 2, "unknown_after": 3600}, **(api or {})),
                  rc={"stale_after": 3600})
        d.start()
        return d, stub
    yield factory
    for s in stubs:
        s.close()


def resolving_webhook(d, reference, pid, amount=2500, created=None):
    ev = make_event("completed", payment_id=pid, terminalId="term_test_simulator",
                    amount=amount, currency="USD", reference=reference,
                    createdAt=created or iso_now())
    st, body = d.post_event(ev)
    assert st == 200 and body["duplicate"] is False, body


@pytest.mark.backends("sqlite", "postgres")
def test_dropped_create_is_unknown_never_resent_and_resolved_by_the_webhook(stubbed):
    d, stub = stubbed()
    stub.plan = ["drop"]
    req = pay_req()
    r = d.ctl(req, timeout=30)
    assert r["ok"] is False and r["error"] == "upstream_unknown", r
    assert requests_row(d, req["reference"]) == ("unknown", None)
    # A repeat with the same key: the same answer, and no second create.
    r = d.ctl(req, timeout=30)
    assert r["ok"] is False and r["error"] == "upstream_unknown"
    assert len(stub.creates) == 1
    # An older payment of the same order does not resolve it ...
    resolving_webhook(d, req["reference"], "tpay_older", created=iso_now(-600))
    assert requests_row(d, req["reference"]) == ("unknown", None)
    # ... nor one of another amount; the first matching new one does.
    resolving_webhook(d, req["reference"], "tpay_other_amount", amount=2600)
    resolving_webhook(d, req["reference"], "tpay_the_real_one")
    assert requests_row(d, req["reference"]) == ("created", "tpay_the_real_one")
    r = d.ctl(req, timeout=30)
    assert r["ok"] is True and r["payment"]["paymentId"] == "tpay_the_real_one", r
    assert r["payment"]["status"] == "completed" and r["payment"]["tracked"] is True
    assert len(stub.creates) == 1
    assert d.ctl({"cmd": "stats"})["stats"]["api"]["unknown"] == 1


def test_unknown_becomes_not_created_after_unknown_after(stubbed):
    d, stub = stubbed(api={"unknown_after": 2})
    stub.plan = ["drop"]
    req = pay_req()
    assert d.ctl(req, timeout=30)["error"] == "upstream_unknown"
    wait_for(lambda: requests_row(d, req["reference"]) == ("not_created", None),
             timeout=10, what="not_created")
    d.wait_log("marked not_created")
    # Now the same key may create again.
    r = d.ctl(dict(req, wait=0), timeout=30)
    assert r["ok"] is True and r["payment"]["paymentId"] == "tpay_stub_2", r
    assert len(stub.creates) == 2


@pytest.mark.parametrize("what,error,state", [
    (500, "upstream_unknown", "unknown"),
    (503, "upstream_unknown", "unknown"),
    ("hang", "upstream_unknown", "unknown"),      # past [api] timeout
    (409, "upstream_error", "not_created"),
    (400, "upstream_error", "not_created"),
])
def test_create_errors(stubbed, what, error, state):
    d, stub = stubbed()
    stub.plan = [what]
    req = pay_req()
    r = d.ctl(req, timeout=30)
    assert r["ok"] is False and r["error"] == error, r
    if error == "upstream_error":
        assert r["status"] == what and r["code"] == "stub_%d" % what
        assert "the stub says" in r["message"]
    assert requests_row(d, req["reference"])[0] == state
    r2 = d.ctl(dict(req, wait=0), timeout=30)
    if state == "unknown":
        assert r2["error"] == "upstream_unknown" and len(stub.creates) == 1
    else:
        assert r2["ok"] is True and len(stub.creates) == 2


def test_cancel_and_capture_5xx_are_upstream_errors(stubbed):
    d, stub = stubbed()
    for cmd in ("cancel", "capture"):
        r = d.ctl({"cmd": cmd, "paymentId": "tpay_x"}, timeout=30)
        assert r["ok"] is False and r["error"] == "upstream_error", r
        assert r["status"] == 500 and r["code"] == "internal_error"
    assert d.ctl({"cmd": "stats"})["stats"]["api"]["errors"] == 2


def test_unreachable_vinr_is_not_created(make_daemon):
    d = make_daemon(start=False, env={"VINR_API_KEY": API_KEY})
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    configure(d, "http://127.0.0.1:%d" % port.getsockname()[1])
    port.close()                               # nobody listens there
    d.start()
    req = pay_req()
    r = d.ctl(req, timeout=30)
    assert r["ok"] is False and r["error"] == "upstream_error" and r["status"] is None, r
    assert requests_row(d, req["reference"]) == ("not_created", None)


@pytest.mark.backends("sqlite", "postgres")
def test_sigkill_between_commit_and_answer(stubbed):
    """The daemon dies while VINR holds the create: after a restart the
    request is unknown, never sent again, and the webhook resolves it."""
    d, stub = stubbed(api={"timeout": 30})
    stub.hang_s = 3
    stub.plan = ["hang"]
    req = pay_req()
    c = d.control_client(timeout=30)
    c.send(req)
    wait_for(lambda: len(stub.creates) == 1, what="the create to reach VINR")
    assert requests_row(d, req["reference"]) == ("sending", None)
    d.proc.kill()
    d.proc.wait()
    c.close()
    time.sleep(stub.hang_s)                    # VINR created it meanwhile
    d.start()
    d.wait_log("their outcome is unknown")
    assert requests_row(d, req["reference"]) == ("unknown", None)
    r = d.ctl(req, timeout=30)
    assert r["ok"] is False and r["error"] == "upstream_unknown"
    assert len(stub.creates) == 1
    resolving_webhook(d, req["reference"], "tpay_stub_1")
    r = d.ctl(req, timeout=30)
    assert r["ok"] is True and r["payment"]["paymentId"] == "tpay_stub_1"
    assert len(stub.creates) == 1
    assert all(a == "Bearer " + API_KEY for a in stub.auth)
    assert API_KEY not in d.log()


def test_deprecated_aliases_still_work_and_warn_once(make_daemon, make_sim):
    d = make_daemon(start=False, env={"VINR_API_KEY": API_KEY})
    sim = make_sim(daemon=d)
    d.sections["reconciler"] = {"api_base": sim.url}
    write_conf(d.conf_path, d.sections)
    d.start()
    r = d.ctl(pay_req(), timeout=30)
    assert r["ok"] is True and r["payment"]["status"] == "completed"
    assert d.log().count("are deprecated: use [api]") == 1


def test_check_config_checks_api_base_without_a_key(make_daemon):
    from conftest import run_webhookd
    d = make_daemon(start=False, conf={"api": {"base": "http://example.com"}})
    r = run_webhookd("-t", "-c", d.conf_path)
    assert r.returncode == 78 and "[api] base" in r.stderr and "loopback" in r.stderr
    d.sections["api"] = {"base": "http://127.0.0.1:1", "base2": "x"}
    write_conf(d.conf_path, d.sections)
    r = run_webhookd("-t", "-c", d.conf_path)
    assert r.returncode == 78 and "[api] base2: unknown key" in r.stderr


def test_vinrctl_hints_at_s_when_the_default_socket_is_missing():
    import os
    from conftest import run_vinrctl
    if os.path.exists("/run/vinr-webhookd/control.sock"):
        pytest.skip("a daemon runs on the default socket here")
    r = run_vinrctl("ping")
    assert r.returncode == 2
    assert "-s SOCKET" in r.stderr and "VINR_CONTROL_SOCKET" in r.stderr
    r = run_vinrctl("ping", socket_path="/nonexistent/control.sock")
    assert r.returncode == 2 and "VINR_CONTROL_SOCKET" not in r.stderr
