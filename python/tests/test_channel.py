"""Channels and pipes: every value kind between Python processes, typed
channels, bad input, on_receive, async_receive, Ctrl-C."""

import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import helpers
import sleet

SPAWN = multiprocessing.get_context("spawn")

EVERY_KIND = [
    None, True, False, 0, -1, 2**63 - 1, -2**63, 1.5, float("inf"), "", "h\u00e9llo \u2603", b"", b"\x00\xff",
    [1, "two", [3.0, None]], (1, (2, "x")), {"a": 1, "nested": {"b": [True]}, 7: "int key", (1, 2): "tuple key"},
]


def run(target, *args):
    p = SPAWN.Process(target=target, args=args)
    p.start()
    return p


def test_every_kind_round_trips_between_python_processes(name):
    n = name("kinds")
    ch = sleet.Channel.create(n, capacity=64, max_message_size=512)
    back = sleet.Channel.create(n + ".back", capacity=64, max_message_size=512)
    p = run(helpers.echo, n, len(EVERY_KIND), object)
    for v in EVERY_KIND:
        ch.send(v)
    got = [back.receive(timeout=30) for _ in EVERY_KIND]
    p.join(30)
    assert p.exitcode == 0
    assert got == EVERY_KIND
    assert [type(g) for g in got] == [type(v) for v in EVERY_KIND]


@pytest.mark.parametrize("kind,values", [
    (str, ["a", "\u2603" * 10]), (int, [0, -5, 2**62]), (float, [0.5, -1e300]), (bytes, [b"x", bytes(range(256))]),
    (sleet.Message, [sleet.Message("t", a=1, b="s", c=None, d=2.5, e=True)]),
])
def test_typed_channels_round_trip(name, kind, values):
    n = name("typed")
    ch = sleet.Channel.create(n, kind, max_message_size=1024)
    back = sleet.Channel.create(n + ".back", kind, max_message_size=1024)
    p = run(helpers.echo, n, len(values), kind)
    for v in values:
        ch.send(v)
    got = [back.receive(timeout=30) for _ in values]
    p.join(30)
    assert got == values
    if kind is sleet.Message:
        assert got[0].topic == "t"


def test_open_detects_the_type_and_checks_a_given_one(name):
    n = name("detect")
    sleet.Channel.create(n, int)
    assert sleet.get_channel(n).kind == "int"
    with pytest.raises(sleet.TypeMismatch, match=n):
        sleet.Channel.open(n, str)
    assert any(c["name"] == n for c in sleet.list_channels())


def test_bad_input_raises_the_right_exception_naming_the_object(name):
    n = name("bad")
    ch = sleet.Channel.create(n, max_message_size=64)
    with pytest.raises(sleet.TooLarge, match=n):
        ch.send("x" * 100)
    with pytest.raises(TypeError, match="channel '%s'.*pickle=True" % n):
        ch.send(object())
    with pytest.raises(ValueError, match="64-bit range"):
        ch.send(2**64)
    deep = 1
    for _ in range(70):
        deep = [deep]
    with pytest.raises(sleet.InvalidArgument, match="nested deeper than 64"):
        ch.send(deep)
    typed = sleet.Channel.create(n + ".s", str)
    with pytest.raises(TypeError, match="expected str, got int"):
        typed.send(1)
    with pytest.raises(sleet.AlreadyExists, match=n):
        sleet.Channel.create(n)
    with pytest.raises(sleet.NotFound, match=n + ".none"):
        sleet.Channel.open(n + ".none", object)
    with pytest.raises(sleet.InvalidName):
        sleet.Channel.create("bad name!")
    with pytest.raises(TypeError, match="type must be"):
        sleet.Channel.create(n + ".t", list)
    with pytest.raises(ValueError, match="topology"):
        sleet.Channel.create(n + ".u", topology="ring")
    with pytest.raises(ValueError, match="timeout"):
        ch.receive(timeout=-1)
    assert ch.try_receive("empty") == "empty"


def test_errors_carry_the_errc():
    with pytest.raises(sleet.Error) as e:
        sleet.Channel.open("py-no-such-channel-%d" % os.getpid(), object)
    assert e.value.code == "not_found"
    assert isinstance(e.value, sleet.NotFound) and isinstance(e.value, FileNotFoundError)


def test_receive_timeout_and_closed(name):
    ch = sleet.Channel.create(name("closed"))
    t0 = time.monotonic()
    with pytest.raises(sleet.Timeout):
        ch.receive(timeout=0.1)
    assert time.monotonic() - t0 >= 0.09
    ch.send("last")
    ch.close()
    assert ch.closed
    with pytest.raises(sleet.Closed):
        ch.send("more")
    assert list(ch) == ["last"]
    with pytest.raises(sleet.Closed):
        ch.receive(timeout=1)


def test_full_channel_try_send_and_send_timeout(name):
    ch = sleet.Channel.create(name("full"), capacity=2)
    assert ch.try_send(1) and ch.try_send(2)
    assert not ch.try_send(3)
    with pytest.raises(sleet.Timeout, match="full"):
        ch.send(3, timeout=0.05)
    assert ch.stats()["sent"] == 2


def test_pickle_is_opt_in(name):
    n = name("pickle")
    tx = sleet.Channel.create(n, pickle=True, max_message_size=512)
    tx.send({"when": complex(1, 2), "set": {1, 2}})
    rx_plain = sleet.Channel.open(n, object)
    with pytest.raises(sleet.DecodeFailed, match="pickle=True"):
        rx_plain.receive(timeout=1)
    tx.send(complex(3, 4))
    assert sleet.Channel.open(n, object, pickle=True).receive(timeout=1) == complex(3, 4)


def test_on_receive_filters_and_wrong_mode(name):
    n = name("passive")
    ch = sleet.Channel.create(n)
    texts, numbers = [], []
    done = threading.Event()

    @ch.on_receive(filter_func=lambda m: isinstance(m, str))
    def on_text(m):
        texts.append(m)

    @ch.on_receive(filter_func=lambda m: isinstance(m, int))
    def on_number(m):
        numbers.append(m)
        if m == 3:
            done.set()

    tx = sleet.Channel.open(n)
    for m in ["a", 1, 2.5, "b", 3]:
        tx.send(m)
    assert done.wait(10)
    assert texts == ["a", "b"] and numbers == [1, 3]
    assert ch.unhandled == 1
    with pytest.raises(sleet.WrongMode, match=n):
        ch.receive()
    active = sleet.Channel.open(n)
    active.try_receive()
    with pytest.raises(sleet.WrongMode, match=n):
        active.on_receive()
    ch.stop_dispatch()


def test_async_receive_in_an_asyncio_loop(name):
    n = name("async")
    ch = sleet.Channel.create(n)
    tx = sleet.Channel.open(n)

    async def main():
        with pytest.raises(sleet.Timeout):
            await ch.async_receive(timeout=0.05)
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, tx.send, {"x": 1})
        first = await ch.async_receive(timeout=5)
        tx.send("queued")
        second = await ch.async_receive(timeout=5)
        # Two receivers awaiting at once on two objects of one channel.
        other = sleet.Channel.open(n)
        loop.call_later(0.02, lambda: (tx.send(1), tx.send(2)))
        both = await asyncio.gather(ch.async_receive(timeout=5), other.async_receive(timeout=5))
        return first, second, sorted(both)

    assert asyncio.run(main()) == ({"x": 1}, "queued", [1, 2])


def test_pipe_between_processes(name):
    n = name("pipe")
    a, b = sleet.Pipe.create(n)
    b.send("from b")
    assert a.receive(timeout=1) == "from b"
    a.send([1, 2])
    assert b.receive(timeout=1) == [1, 2]
    other_b = sleet.Pipe.open(n, "b")
    with pytest.raises(ValueError, match="end"):
        sleet.Pipe.open(n, "c")
    del other_b


def test_ctrl_c_interrupts_a_blocking_receive(name):
    n = name("sigint")
    sleet.Channel.create(n)
    code = textwrap.dedent("""
        import sys, time, sleet
        ch = sleet.Channel.open(sys.argv[1])
        print("waiting", flush=True)
        t0 = time.monotonic()
        try:
            ch.receive()
        except KeyboardInterrupt:
            print("interrupted %.3f" % (time.monotonic() - t0), flush=True)
    """)
    p = subprocess.Popen([sys.executable, "-c", code, n], stdout=subprocess.PIPE, text=True, env=os.environ)
    assert p.stdout.readline().strip() == "waiting"
    time.sleep(0.2)
    sent = time.monotonic()
    p.send_signal(signal.SIGINT)
    line = p.stdout.readline().strip()
    latency = time.monotonic() - sent
    p.wait(10)
    assert line.startswith("interrupted"), line
    # The wait wakes every 20 ms to look for signals (the bound is
    # 100 ms); the test allows a loaded machine's scheduling on top of it.
    # Without the slicing the receive would never return.
    assert latency < 2.0, latency


def test_fast_methods_take_keywords_check_arguments_and_keep_their_object(name):
    n = name("fast")
    ch = sleet.Channel.create(n)
    ch.send(value=1, timeout=1.0)
    ch.send(2, timeout=None)
    assert ch.receive(timeout=1) == 1 and ch.receive(1.0) == 2
    assert ch.try_receive(default="none") == "none"
    with pytest.raises(TypeError, match="missing required argument 'value'"):
        ch.send(timeout=1)
    with pytest.raises(TypeError, match="unexpected or repeated keyword argument 'bogus'"):
        ch.send(1, bogus=2)
    with pytest.raises(TypeError, match="unexpected or repeated keyword argument 'value'"):
        ch.send(1, value=2)
    with pytest.raises(TypeError, match="positional arguments"):
        ch.receive(1, 2)
    send = sleet.Channel.open(n).send  # the function keeps its channel object alive
    import gc
    gc.collect()
    send("still works")
    assert ch.receive(timeout=1) == "still works"
