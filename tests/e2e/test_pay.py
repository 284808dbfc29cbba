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

API_KEY = SIM_KEY


def wait_for(fn, timeout=20, step=0.05, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(step)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


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
    out = [l for l in d.wait_event_log(3) if l["paymentId"] == pid]
    assert any(l["status"] == "completed" and l["source"] == "api" for l in out)


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
