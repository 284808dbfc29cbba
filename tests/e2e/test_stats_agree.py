"""One stats snapshot, three renderings (issue 9): /metrics, the control
socket's "stats" (SPEC §4) and /healthz (SPEC §1.4) report the same lag and
dead letters per sink.

The daemon here has three sinks: the event log (keeps up), a hook that always
fails with max_attempts = 1 (every outcome becomes a dead letter), and a
socket sink whose consumer is absent (its lag grows).  Then the consumer
comes, the hook is mended and a dead letter replayed, and the daemon
restarts: at every step the renderings agree with each other and with the
database.
"""
import json
import os
import re
import shutil
import tempfile

import pytest

from conftest import make_event
from test_sinks import Consumer, HookDir, wait_for

SERIES = re.compile(r'^(\w+)\{sink="(\w+)"\} (-?\d+)$')


def metrics_per_sink(d):
    """{(family, sink): value} of vinr_sink_lag and vinr_sink_dead_letters."""
    st, _, data = d.request("GET", "/metrics")
    assert st == 200
    got = {}
    for line in data.decode().splitlines():
        m = SERIES.match(line)
        if m and m.group(1) in ("vinr_sink_lag", "vinr_sink_dead_letters"):
            got[(m.group(1), m.group(2))] = int(m.group(3))
    return got


def healthz(d):
    st, _, body = d.request("GET", "/healthz")
    return st, json.loads(body)


def db_dead(d):
    return dict(d.query("SELECT sink, count(*) FROM dead_letters GROUP BY sink"))


def renderings(d):
    """(stats sinks, /metrics per sink, /healthz) taken one after the other."""
    stats = d.ctl({"cmd": "stats"})["stats"]
    return stats, metrics_per_sink(d), healthz(d)


def assert_agree(d, want):
    """Waits until stats shows want ({sink: (lag, dead)}), then checks that
    /metrics, /healthz and the database say the same.  Nothing moves in
    between: every outcome is already delivered, dead or waiting."""
    def settled():
        s = d.ctl({"cmd": "stats"})["stats"]["sinks"]
        return {k: (v["lag"], v["dead"]) for k, v in s.items()} == want
    wait_for(settled, 20, "stats to show %r" % (want,))
    stats, metrics, (code, health) = renderings(d)
    sinks = stats["sinks"]
    assert set(sinks) == set(want)
    for name, (lag, dead) in want.items():
        assert sinks[name]["lag"] == lag
        assert sinks[name]["lag"] == stats["lastSeq"] - sinks[name]["cursor"]
        assert sinks[name]["dead"] == dead
        assert metrics[("vinr_sink_lag", name)] == lag, metrics
        assert metrics[("vinr_sink_dead_letters", name)] == dead, metrics
        assert db_dead(d).get(name, 0) == dead
    assert len(metrics) == 2 * len(want)	# no sink more, none less
    # /healthz: ingest works (200); a sink with outcomes it cannot deliver
    # is a warning, exactly the sinks that lag here.
    assert code == 200 and health["status"] == "ok", health
    failing = {w.split(":", 1)[1] for w in health["warnings"]
               if w.startswith("sink_failing:")}
    assert failing == {n for n, (lag, _) in want.items() if lag > 0}, health


def make_completed(i):
    return make_event("completed", amount=100 + i, currency="USD")


@pytest.fixture
def sockdir():
    d = tempfile.mkdtemp(prefix="vs", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_metrics_stats_and_healthz_agree_on_sinks(make_daemon, tmp_path, sockdir):
    hook = HookDir(tmp_path, 'cat >/dev/null\n[ -e "$D/fixed" ] || exit 3\nok')
    sock = os.path.join(sockdir, "pos.sock")
    d = make_daemon(conf={"forward": {"hook": hook.path, "socket": sock,
                                      "max_attempts": "1"}})
    for i in range(3):
        st, resp = d.post_event(make_completed(i))
        assert st == 200 and resp["duplicate"] is False, resp

    # Three dead letters in the hook, three outcomes waiting for the socket.
    assert_agree(d, {"eventlog": (0, 0), "hook": (0, 3), "socket": (3, 0)})

    # The consumer comes: the socket sink catches up, its warning goes.
    consumer = Consumer(sock).start()
    try:
        consumer.wait_seq(3)
        assert_agree(d, {"eventlog": (0, 0), "hook": (0, 3), "socket": (0, 0)})

        # The hook is mended and one dead letter replayed: 2 left everywhere.
        open(hook.file("fixed"), "w").close()
        assert d.ctl({"cmd": "replay", "sink": "hook", "seq": 2}) == {"ok": True}
        wait_for(lambda: 2 in hook.delivered(), 10, "the replay of seq 2")
        assert_agree(d, {"eventlog": (0, 0), "hook": (0, 2), "socket": (0, 0)})

        # After a restart the count comes from the database again.
        assert d.stop() == 0
        d.start()
        assert_agree(d, {"eventlog": (0, 0), "hook": (0, 2), "socket": (0, 0)})

        # A new outcome: delivered by all three, nothing else moves.
        st, _ = d.post_event(make_completed(9))
        assert st == 200
        consumer.wait_seq(4)
        assert_agree(d, {"eventlog": (0, 0), "hook": (0, 2), "socket": (0, 0)})
    finally:
        consumer.stop()
    assert d.stop() == 0


def test_a_hook_that_blocks_lags_the_same_everywhere(make_daemon, tmp_path):
    """A hook that hangs (until its timeout) holds its cursor: the outcomes
    behind it are lag in every rendering, and /healthz stays ok."""
    hook = HookDir(tmp_path, 'cat >/dev/null\n[ -e "$D/go" ] || sleep 60\nok')
    d = make_daemon(conf={"forward": {"hook": hook.path, "hook_timeout": "120"}})
    for i in range(4):
        assert d.post_event(make_completed(i))[0] == 200
    wait_for(lambda: hook.runs(), 10, "the hook to start")
    stats, metrics, (code, health) = renderings(d)
    assert stats["sinks"]["hook"]["lag"] == 4 == metrics[("vinr_sink_lag", "hook")]
    assert stats["sinks"]["hook"]["dead"] == 0 == metrics[("vinr_sink_dead_letters", "hook")]
    assert code == 200 and health["status"] == "ok"
    open(hook.file("go"), "w").close()
    # The hanging run is stopped with the daemon; no dead letter for it.
    assert d.stop() == 0
