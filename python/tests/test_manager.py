"""ProcessManager with Python function targets (and an argv one):
send/receive, passive post with a filter, restart, exit codes, hooks."""

import sys

import pytest

import helpers
import sleet


@pytest.fixture
def pm():
    m = sleet.ProcessManager()
    yield m
    m.close()


def test_function_target_send_receive_and_hooks(pm):
    events = []

    @pm.before_start
    def b(name):
        events.append(("before_start", name))

    @pm.after_start
    def a(name, pid):
        events.append(("after_start", name, pid > 0))

    pm.add_target("w", helpers.worker)
    pm.start_all()
    assert pm.active_channel_name("w").endswith("w-active")
    assert pm.passive_channel_name("w").endswith("w-passive")
    for x in range(5):
        pm.send("w", sleet.Message("job", x=x))
    replies = [pm.receive("w", timeout=60) for _ in range(5)]
    assert [r["x"] for r in replies] == [0, 2, 4, 6, 8]
    assert replies[0].topic == "done" and replies[0]["me"] == "w"
    pm.send("w", {"code": 3} if False else sleet.Message("exit", code=3))
    assert pm.wait("w", timeout=60) == 3
    with pytest.raises(sleet.PeerDead, match="'w'"):
        pm.receive("w", timeout=5)
    assert ("before_start", "w") in events and ("after_start", "w", True) in events


def test_passive_channel_with_a_filter(pm):
    pm.add_target("p", helpers.passive_worker)
    pm.start("p")
    pm.post("p", sleet.Message("ignored", who="nobody"))
    pm.post("p", sleet.Message("greet", who="alice"))
    m = pm.receive("p", timeout=60)
    assert m.topic == "greeted" and m["who"] == "alice"
    pm.stop("p")
    assert not pm.is_alive("p")


def test_restart_of_a_python_child(pm):
    pm.add_target("c", helpers.crasher, restart="on_failure", backoff=0.01)
    pm.start("c")
    assert pm.receive("c", timeout=60).topic == "started"
    first = pm.status("c")["pid"]
    pm.send("c", sleet.Message("die", code=1))  # a failure: the policy restarts it
    assert pm.receive("c", timeout=60).topic == "started"
    assert pm.status("c")["pid"] != first and pm.status("c")["restarts"] == 1
    pm.restart("c")  # asked for
    assert pm.receive("c", timeout=60).topic == "started"
    pm.send("c", sleet.Message("die", code=0))
    assert pm.wait("c", timeout=60) == 0


def test_argv_target_and_bad_input(pm):
    pm.add_target("true", [sys.executable, "-c", "import sys; sys.exit(4)"])
    pm.start("true")
    assert pm.wait("true", timeout=60) == 4
    with pytest.raises(sleet.AlreadyExists):
        pm.add_target("true", ["/bin/true"])
    with pytest.raises(sleet.NotFound):
        pm.start("nobody")
    with pytest.raises(ValueError, match="restart"):
        pm.add_target("x", ["/bin/true"], restart="sometimes")
    with pytest.raises(ValueError, match="importable"):
        pm.add_target("y", lambda: 0)
    with pytest.raises(TypeError, match="Message field 'bad'"):
        pm.send("true", {"bad": [1]})


def test_this_process_outside_a_manager():
    assert not sleet.this_process.managed()
    with pytest.raises(sleet.NotManaged):
        sleet.this_process.active_channel()
