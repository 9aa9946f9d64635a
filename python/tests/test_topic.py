"""Topics: fan-out to several Python subscriber processes, overwrite losses,
closing, bad options."""

import multiprocessing

import pytest

import helpers
import sleet

SPAWN = multiprocessing.get_context("spawn")


def test_fan_out_to_several_python_subscribers(name):
    t = name("topic")
    topic = sleet.Topic.create(t, capacity=64)
    ready = sleet.Channel.create(name("ready"))
    out = sleet.Channel.create(name("out"))
    n, subscribers = 200, 3
    procs = [SPAWN.Process(target=helpers.subscriber, args=(t, ready.name, out.name, n)) for _ in range(subscribers)]
    for p in procs:
        p.start()
    for _ in procs:
        assert ready.receive(timeout=60) == "ready"
    for i in range(n):
        topic.publish({"v": i})
    totals = [out.receive(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert totals == [n * (n - 1) // 2] * subscribers


def test_overwrite_counts_what_a_slow_subscriber_lost(name):
    topic = sleet.Topic.create(name("ow"), int, capacity=4, overflow="overwrite")
    sub = topic.subscribe()
    for i in range(20):
        topic.publish(i)
    got = []
    while True:
        v = sub.try_receive(None)
        if v is None:
            break
        got.append(v)
    assert got == sorted(got) and got[-1] == 19
    assert sub.lost() == 20 - len(got)


def test_close_and_subscriber_modes(name):
    topic = sleet.Topic.create(name("tclose"), str)
    sub = topic.subscribe()
    topic.publish("a")
    topic.close()
    with pytest.raises(sleet.Closed):
        topic.publish("b")
    assert list(sub) == ["a"]
    with pytest.raises(ValueError, match="overflow"):
        sleet.Topic.create(name("tbad"), overflow="drop")
    with pytest.raises(sleet.TypeMismatch):
        sleet.Topic.open(topic.name, int)
