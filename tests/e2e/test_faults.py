"""Crashes and failures (issue 12): a hook dies with its daemon, a huge
field cannot wedge the hook, an execve failure is reported as it is."""
import json
import os
import signal
import time

from conftest import make_event
from test_sinks import HookDir, hook_conf, process_gone, wait_for


def test_hook_dies_with_a_sigkilled_daemon(make_daemon, tmp_path):
    """A hook outlived a SIGKILLed daemon, and the restarted daemon ran the
    same seq alongside it."""
    hook = HookDir(tmp_path, 'echo $$ > "$D/pid.$N"; sleep 30; ok')
    d = make_daemon(conf=hook_conf(hook))
    assert d.post_event(make_event("completed"))[0] == 200
    wait_for(lambda: hook.read("pid.1").strip(), what="the hook to run")
    pid = int(hook.read("pid.1"))
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    wait_for(lambda: process_gone(pid), timeout=3, what="the hook to die with the daemon")
    d.start()
    wait_for(lambda: hook.read("pid.2").strip(), what="the hook to run again")
    runs = hook.runs()
    assert [r[0] for r in runs] == [1, 1]


def test_huge_field_does_not_wedge_the_hook(make_daemon, tmp_path):
    """A 200 KiB reference made execve fail with E2BIG ("not executable?")
    and blocked every later outcome through 12 retries."""
    hook = HookDir(tmp_path, 'printf %s "$VINR_REFERENCE" > "$D/ref.$VINR_SEQ"; '
                             'cat > "$D/stdin.$VINR_SEQ"; ok')
    d = make_daemon(conf=hook_conf(hook))
    ref = "R" * (200 * 1024)
    assert d.post_event(make_event("completed", reference=ref))[0] == 200
    assert d.post_event(make_event("completed", reference="small"))[0] == 200
    hook.wait_delivered(2, timeout=10)
    assert hook.read("ref.1") == "R" * 4096
    assert json.loads(hook.read("stdin.1"))["reference"] == ref
    assert hook.read("ref.2") == "small"
    assert "E2BIG" not in d.log() and "Argument list too long" not in d.log()


def test_execve_failure_reported_truthfully(make_daemon, tmp_path):
    hook = tmp_path / "hook"
    hook.write_text("#!/nonexistent/interpreter\n")
    hook.chmod(0o755)
    d = make_daemon(conf={"forward": {"hook": str(hook), "max_attempts": "1"}})
    assert d.post_event(make_event("completed"))[0] == 200
    log = d.wait_log("cannot run %s: No such file or directory" % hook)
    assert "not executable?" not in log
