"""KvStore across processes, type errors, update, compare_exchange,
wait_for_change, and the host's publish / on_subscriber_receive."""

import multiprocessing
import threading

import pytest

import helpers
import sleet

SPAWN = multiprocessing.get_context("spawn")


def test_set_get_across_processes_and_get_all(name):
    n = name("kv")
    kv = sleet.KvStore.create(n, capacity=64)
    p = SPAWN.Process(target=helpers.store_writer, args=(n, 10))
    p.start()
    p.join(30)
    assert p.exitcode == 0
    assert kv.get("k3") == {"i": 3, "sq": [3, 9]}
    assert kv.get("done") is True
    everything = kv.get_all()
    assert len(everything) == 11 and everything["k9"] == {"i": 9, "sq": [9, 81]}
    # and the other way: a child reads what this process set
    kv.set("from-parent", ("tuple", 1.5, None))
    out = sleet.Channel.create(n + ".out")
    p = SPAWN.Process(target=helpers.store_reader, args=(n, "from-parent", n + ".out"))
    p.start()
    assert out.receive(timeout=30) == ("tuple", 1.5, None)
    p.join(30)


def test_values_keep_their_python_types(name):
    kv = sleet.KvStore.create(name("kvtypes"))
    values = {"s": "text", "i": -3, "f": 2.5, "b": False, "y": b"\x01", "n": None, "l": [1, [2]],
              "m": sleet.Message("t", x=1)}
    for k, v in values.items():
        kv.set(k, v)
    for k, v in values.items():
        got = kv.get(k)
        assert got == v and type(got) is type(v), k
    assert kv.get("m").topic == "t"
    assert kv.get("missing") is None and kv.get("missing", 7) == 7
    kv.set("s", 5)  # a key may change type
    assert kv.get("s") == 5
    assert kv.delete("s") and not kv.delete("s")
    assert "i" in kv and len(kv) == len(values) - 1
    with pytest.raises(KeyError):
        kv["s"]


def test_bad_input(name):
    n = name("kvbad")
    kv = sleet.KvStore.create(n, capacity=2, max_key_size=8, max_value_size=32)
    with pytest.raises(sleet.TooLarge, match=n):
        kv.set("k", "x" * 100)
    with pytest.raises(sleet.TooLarge, match=n):
        kv.set("a-very-long-key", 1)
    with pytest.raises(sleet.InvalidArgument, match=n):
        kv.set("", 1)
    with pytest.raises(TypeError, match="pickle=True"):
        kv.set("k", object())
    kv.set("a", 1)
    kv.set("b", 2)
    with pytest.raises(sleet.Full, match=n):
        kv.set("c", 3)
    with pytest.raises(sleet.KindMismatch):
        sleet.Channel.open(n, object)
    with pytest.raises(sleet.NotFound):
        sleet.KvStore.open(n + ".none")


def test_update_and_compare_exchange(name):
    kv = sleet.KvStore.create(name("kvupd"))
    assert kv.update("hits", lambda v: (v or 0) + 1) == 1
    threads = [threading.Thread(target=lambda: [kv.update("hits", lambda v: v + 1) for _ in range(200)])
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert kv.get("hits") == 801
    with pytest.raises(TypeError, match="expected int"):
        kv.update("hits", lambda v: "not an int")
    assert kv.get("hits") == 801
    assert kv.compare_exchange("hits", 801, 5)
    assert not kv.compare_exchange("hits", 801, 6)
    assert kv.get("hits") == 5
    with pytest.raises(TypeError, match="differ in type"):
        kv.compare_exchange("hits", 5, "x")


def test_wait_for_change(name):
    kv = sleet.KvStore.create(name("kvwait"))
    kv.set("mode", "slow")
    assert not kv.wait_for_change("mode", 0.05)
    t = threading.Timer(0.05, kv.set, ("mode", "fast"))
    t.start()
    assert kv.wait_for_change("mode", 10)
    t.join()
    assert kv.get("mode") == "fast"


def test_publish_and_on_subscriber_receive(name):
    n = name("kvpub")
    kv = sleet.KvStore.create(n)
    topic = name("news")
    got = []
    done = threading.Event()

    @kv.on_subscriber_receive(topic, filter_func=lambda d: d.get("important"))
    def on_news(data):
        got.append(data["text"])
        if data["text"] == "last":
            done.set()

    other = sleet.KvStore.open(n)
    other.publish(topic, {"text": "first", "important": True})
    other.publish(topic, {"text": "skip", "important": False})
    other.publish(topic, {"text": "last", "important": True})
    assert done.wait(10)
    assert got == ["first", "last"]
    kv.close()


def test_pickled_values_are_opt_in(name):
    n = name("kvpickle")
    kv = sleet.KvStore.create(n, pickle=True)
    kv.set("c", complex(1, 2))
    assert kv.get("c") == complex(1, 2)
    plain = sleet.KvStore.open(n)
    with pytest.raises(sleet.DecodeFailed, match="pickle=True"):
        plain.get("c")
    with pytest.raises(TypeError, match="pickle=True"):
        plain.set("d", complex(3, 4))
