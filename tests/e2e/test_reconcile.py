"""The reconciler (SPEC §5) against vinr-sim: missed webhooks still end in an
outcome, VINR's error answers are handled as the spec says, and the request
rate stays within max_rps."""
import collections
import json
import time

import pytest

from conftest import SIM_KEY, free_port, make_event
from conftest import wait_for


def rc_conf(sim_url, **over):
    conf = {"interval": 1, "stale_after": 1, "max_backoff": 2,
            "give_up_after": 3600, "max_rps": 5}
    conf.update(over)
    return {"api": {"base": sim_url}, "reconciler": conf}


def payment(d, pid):
    r = d.ctl({"cmd": "get", "paymentId": pid})
    return r.get("payment") if r.get("ok") else None


def outcomes_for(d, pid):
    return [l for l in d.event_log_lines() if l["paymentId"] == pid]


@pytest.fixture
def pair(make_daemon, make_sim):
    """A daemon whose reconciler asks a sim, and whose webhooks come from it."""
    def factory(sim_args=(), daemon_env=None, **rc):
        d = make_daemon(start=False, env=dict({"VINR_API_KEY": SIM_KEY}, **(daemon_env or {})))
        sim = make_sim(daemon=d, args=sim_args)
        d.sections.update(rc_conf(sim.url, **rc))
        from conftest import write_conf
        write_conf(d.conf_path, d.sections)
        d.start()
        return d, sim
    return factory


@pytest.mark.backends("sqlite", "postgres")
def test_dropped_webhooks_end_in_a_reconciler_outcome(pair):
    d, sim = pair()
    st, p = sim.create(delay=0, simulate={"dropWebhooks": True})
    assert st == 202
    pid = p["id"]
    sim.wait_status(pid, "completed")
    # The POS registers the payment it created; no webhook will ever come.
    r = d.ctl({"cmd": "track", "paymentId": pid, "terminalId": "term_test_simulator",
               "amount": 2500, "currency": "USD"})
    assert r["ok"] and r["payment"]["status"] == "pending"
    lines = wait_for(lambda: [l for l in outcomes_for(d, pid) if l["status"] == "completed"],
                     what="reconciler outcome")
    assert len(lines) == 1
    out = lines[0]
    assert out["source"] == "reconciler"
    assert out["eventId"] == "rcn_%s_completed" % pid
    assert out["previousStatus"] == "pending"
    assert out["amountCaptured"] == 2500
    assert payment(d, pid)["status"] == "completed"

    # VINR's late webhook for the same status changes nothing.
    n = len(d.event_log_lines())
    late = make_event("completed", payment_id=pid, amount=2500, currency="USD")
    st, body = d.post_event(late)
    assert st == 200 and body["duplicate"] is False
    time.sleep(0.5)
    assert len(d.event_log_lines()) == n
    assert d.query("SELECT result FROM events WHERE id = ?", late["id"]) == [("stale",)]
    assert d.query("SELECT count(*) FROM outcomes WHERE payment_id = ?", pid) == [(1,)]


def test_chaos_run_of_200_payments_matches_the_sim(pair):
    max_rps = 10
    d, sim = pair(sim_args=["--drop-rate", "0.3", "--duplicate-rate", "0.3", "--reorder",
                            "--reorder-window", "400", "--seed", "20261124"],
                  max_rps=max_rps)
    cards = ["4242424242424242", "4000000000000002", "5555555555554444",
             "4000000000009995", "4000000000000259"]
    pids = []
    for i in range(200):
        st, p = sim.create(delay=0, testCard=cards[i % len(cards)],
                           reference="order_chaos_%d" % i)
        assert st == 202, p
        pids.append(p["id"])
        # A POS registers what it created, so that nothing depends on the
        # created webhook arriving.
        r = d.ctl({"cmd": "track", "paymentId": p["id"], "reference": "order_chaos_%d" % i})
        assert r["ok"]
    final = {p["id"]: p["status"] for p in sim.payments() if p["id"] in set(pids)}
    assert len(final) == 200
    assert all(s in ("completed", "failed", "cancelled") for s in final.values())

    def converged():
        rows = dict(d.query("SELECT id, status FROM payments"))
        return all(rows.get(pid) == s for pid, s in final.items())
    wait_for(converged, timeout=90, step=0.25, what="every payment final in the daemon")

    lines = d.event_log_lines()
    seqs = [l["seq"] for l in lines]
    assert seqs == list(range(1, len(lines) + 1))
    per = collections.Counter((l["paymentId"], l["status"]) for l in lines)
    assert all(c == 1 for c in per.values()), [k for k, c in per.items() if c > 1]
    for pid, s in final.items():
        assert per[(pid, s)] == 1
    # The reconciler did part of the work, and never exceeded max_rps.
    assert any(l["source"] == "reconciler" for l in lines)
    stats = sim.stats()
    assert stats["retrieves"] > 0
    assert max(stats["retrievesPerSecond"].values()) <= max_rps, stats["retrievesPerSecond"]


def test_429_pauses_every_request_for_retry_after(pair):
    d, sim = pair(max_rps=20)
    sim.set_faults({"retrieve": {"status": 429, "retryAfter": 3, "count": 1}})
    pids = []
    for _ in range(3):
        st, p = sim.create(delay=0, simulate={"dropWebhooks": True})
        pids.append(p["id"])
        assert d.ctl({"cmd": "track", "paymentId": p["id"]})["ok"]
    wait_for(lambda: all(payment(d, pid)["status"] == "completed" for pid in pids),
             timeout=30, what="all three reconciled")
    per_second = sorted((int(k), v) for k, v in sim.stats()["retrievesPerSecond"].items())
    first = per_second[0][0]
    # The first retrieve got the 429; nothing else went out for 3 s.
    later = [s for s, _ in per_second if s > first]
    assert later and min(later) >= first + 2, per_second
    assert "429" in d.log()


def test_401_pauses_the_reconciler_and_sighup_resumes_it(pair):
    d, sim = pair()
    sim.set_faults({"retrieve": {"status": 401, "count": -1}})
    st, p = sim.create(delay=0, simulate={"dropWebhooks": True})
    pid = p["id"]
    assert d.ctl({"cmd": "track", "paymentId": pid})["ok"]
    wait_for(lambda: d.ctl({"cmd": "stats"})["stats"]["reconciler"]["state"] == "paused",
             what="reconciler paused")
    st, _, body = d.request("GET", "/healthz")
    h = json.loads(body)
    assert st == 200 and h["status"] == "ok" and "reconciler_paused" in h["warnings"]
    assert "PAUSED" in d.log()
    # Paused means no more requests.
    n = sim.stats()["retrieves"]
    time.sleep(2.5)
    assert sim.stats()["retrieves"] == n
    # The operator fixes the key and reloads.
    sim.request("DELETE", "/_sim/faults", key=None)
    d.signal(__import__("signal").SIGHUP)
    wait_for(lambda: payment(d, pid)["status"] == "completed", what="resumed and reconciled")
    assert d.ctl({"cmd": "stats"})["stats"]["reconciler"]["state"] == "ok"


def test_404_marks_not_found_and_stops_asking(pair):
    d, sim = pair()
    pid = "tpay_unknown_to_vinr_000001"
    assert d.ctl({"cmd": "track", "paymentId": pid})["ok"]
    wait_for(lambda: payment(d, pid)["reconcile"]["state"] == "not_found", what="not_found")
    n = sim.stats()["retrievesByPayment"].get(pid, 0)
    assert n == 1
    time.sleep(2.5)
    assert sim.stats()["retrievesByPayment"].get(pid, 0) == n
    assert payment(d, pid)["status"] == "pending"


def test_5xx_is_retried_with_backoff_until_it_succeeds(pair):
    d, sim = pair()
    sim.set_faults({"retrieve": {"status": 503, "count": 2}})
    st, p = sim.create(delay=0, simulate={"dropWebhooks": True})
    pid = p["id"]
    assert d.ctl({"cmd": "track", "paymentId": pid})["ok"]
    wait_for(lambda: payment(d, pid)["status"] == "completed", timeout=30,
             what="reconciled after two 503s")
    assert sim.stats()["retrievesByPayment"][pid] == 3
    stats = d.ctl({"cmd": "stats"})["stats"]["reconciler"]
    assert stats["requests"] >= 3 and stats["errors"] >= 2


def test_connection_refused_is_retried_and_logged_without_the_key(make_daemon):
    key = "sk_test_this_key_must_never_be_logged_42"
    dead = "http://127.0.0.1:%d" % free_port()
    d = make_daemon(env={"VINR_API_KEY": key}, conf=rc_conf(dead))
    pid = "tpay_never_answered_0001"
    assert d.ctl({"cmd": "track", "paymentId": pid})["ok"]
    wait_for(lambda: payment(d, pid)["reconcile"]["attempts"] >= 2, timeout=20,
             what="two failed attempts")
    p = payment(d, pid)
    assert p["reconcile"]["state"] == "scheduled" and p["reconcile"]["nextAt"]
    assert p["status"] == "pending"
    st, _, _ = d.request("GET", "/healthz")
    assert st == 200
    r = d.ctl({"cmd": "reconcile", "paymentId": pid})
    assert r["ok"] is False and r["error"] == "upstream_error"
    d.stop()
    assert key not in d.log()
    assert "unreachable" in d.log() or "refused" in d.log().lower()


@pytest.mark.backends("sqlite", "postgres")
def test_reconcile_command_retrieves_now(pair):
    d, sim = pair(stale_after=3600)
    st, p = sim.create(delay=0, simulate={"dropWebhooks": True})
    pid = p["id"]
    # Unknown to the daemon: reconcile creates it from VINR's answer.
    r = d.ctl({"cmd": "reconcile", "paymentId": pid})
    assert r["ok"] and r["changed"] is True and r["payment"]["status"] == "completed"
    r = d.ctl({"cmd": "reconcile", "paymentId": pid})
    assert r["ok"] and r["changed"] is False
    r = d.ctl({"cmd": "reconcile", "paymentId": "tpay_nobody_knows"})
    assert r["ok"] is False and r["error"] == "not_found"


def test_api_key_never_logged_and_http_refused_off_loopback(make_daemon, tmp_path):
    from conftest import Daemon, DAEMON
    import subprocess
    d = Daemon(tmp_path / "x", env={"VINR_API_KEY": "sk_test_x"},
               conf={"api": {"base": "http://example.com"}})
    r = subprocess.run([DAEMON, "-c", d.conf_path], env=d.env, capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 78
    assert "loopback" in r.stderr and "sk_test_x" not in r.stderr


def test_tls_is_verified_and_the_key_never_sent_to_an_unverified_server(make_daemon, tmp_path):
    """SPEC §5: TLS is always verified.  A server with a self-signed
    certificate gets a handshake that fails before any request, so it never
    sees the Authorization header."""
    import http.server
    import ssl
    import subprocess
    import threading
    cert, keyf = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", keyf, "-out", cert],
                   check=True, capture_output=True)
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, keyf)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        key = "sk_test_never_to_an_unverified_server"
        d = make_daemon(env={"VINR_API_KEY": key}, conf=rc_conf(
            "https://127.0.0.1:%d" % srv.server_address[1], stale_after=3600))
        r = d.ctl({"cmd": "reconcile", "paymentId": "tpay_tls_check"}, timeout=30)
        assert r["ok"] is False and r["error"] == "upstream_error", r
        assert "certificate" in r["message"].lower() or "ssl" in r["message"].lower(), r
        assert seen == []
        d.stop()
        assert key not in d.log()
    finally:
        srv.shutdown()
