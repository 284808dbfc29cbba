"""[storage] retain_days: old events and delivered outcomes are pruned; an
outcome a sink has not delivered yet is kept, and seq keeps counting."""
import sqlite3
import time

from conftest import make_event
from conftest import wait_for


def age_rows(db_path, days, events=None, seqs=None):
    """Moves rows back in time (the daemon is stopped)."""
    old = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - days * 86400))
    c = sqlite3.connect(db_path)
    for eid in events or ():
        c.execute("UPDATE events SET received_at = ? WHERE id = ?", (old, eid))
    for seq in seqs or ():
        c.execute("UPDATE outcomes SET recorded_at = ? WHERE seq = ?", (old, seq))
    c.commit()
    c.close()


def test_old_rows_are_pruned_and_seq_goes_on(make_daemon):
    d = make_daemon(conf={"storage": {"retain_days": 90}})
    evs = [make_event("completed") for _ in range(4)]
    for ev in evs:
        assert d.post_event(ev)[0] == 200
    d.wait_event_log(4)
    assert d.stop() == 0
    # Three of four are 100 days old; the fourth stays recent.
    age_rows(d.db_path, 100, events=[e["id"] for e in evs[:3]], seqs=[1, 2, 3])
    d.start()
    assert wait_for(lambda: d.query("SELECT count(*) FROM events")[0][0] == 1), d.log()
    assert wait_for(lambda: d.query("SELECT seq FROM outcomes") == [(4,)])
    assert d.query("SELECT id FROM events") == [(evs[3]["id"],)]
    assert "pruned" in d.log()
    # A pruned event id is new again (VINR stopped retrying it long ago),
    # and seq never goes back.
    st, body = d.post_event(make_event("completed"))
    assert st == 200
    assert d.wait_event_log(5)[-1]["seq"] == 5


def test_undelivered_outcomes_are_kept(make_daemon, tmp_path):
    # A hook that always fails holds its cursor at 0: nothing it has not
    # delivered may be pruned, however old.
    hook = tmp_path / "hook.sh"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    d = make_daemon(conf={"storage": {"retain_days": 1},
                          "forward": {"hook": str(hook), "max_attempts": 1000}})
    ev = make_event("completed")
    assert d.post_event(ev)[0] == 200
    d.wait_event_log(1)
    assert d.stop() == 0
    age_rows(d.db_path, 5, events=[ev["id"]], seqs=[1])
    d.start()
    assert wait_for(lambda: d.query("SELECT count(*) FROM events")[0][0] == 0)
    time.sleep(1.5)
    assert d.query("SELECT seq FROM outcomes") == [(1,)]


def test_retain_days_zero_keeps_everything(make_daemon):
    d = make_daemon(conf={"storage": {"retain_days": 0}})
    ev = make_event("completed")
    assert d.post_event(ev)[0] == 200
    d.wait_event_log(1)
    assert d.stop() == 0
    age_rows(d.db_path, 3650, events=[ev["id"]], seqs=[1])
    d.start()
    time.sleep(2.5)
    assert d.query("SELECT count(*) FROM events")[0][0] == 1
    assert d.query("SELECT count(*) FROM outcomes")[0][0] == 1
