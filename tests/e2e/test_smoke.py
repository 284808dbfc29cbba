from conftest import make_event

# Each test that starts a daemon runs on SQLite and on PostgreSQL (SPEC §8;
# conftest.py's backend fixture).
BACKENDS = ("sqlite", "postgres")


def test_signed_event_is_stored_and_logged(daemon):
    ev = make_event("completed", amount=2500, currency="USD")
    st, body = daemon.post_event(ev)
    assert st == 200
    assert body == {"received": True, "eventId": ev["id"], "duplicate": False}
    lines = daemon.wait_event_log(1)
    assert lines[0]["seq"] == 1
    assert lines[0]["paymentId"] == ev["data"]["object"]["id"]
    assert daemon.stop() == 0
