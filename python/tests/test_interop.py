"""Python <-> C++: every kind through a C++ process (python_peer), store
keys of C++ types both ways, the sleet CLI."""

import os
import subprocess

import pytest

import sleet

KINDS = [
    ("str", str, ["plain", "\u00e9\u2603", ""]),
    ("int", int, [0, -(2**63), 2**63 - 1]),
    ("float", float, [0.0, -2.5, 1e-300]),
    ("bytes", bytes, [b"", b"\x00\x01\xff"]),
    ("message", sleet.Message, [sleet.Message("t", a=1, b=2.5, c="s", d=None, e=False), sleet.Message()]),
    ("object", object, [None, True, 7, 1.25, "s", b"b", [1, [2]], (1, "x"), {"k": {"n": None}, 3: (4,)}]),
]


@pytest.mark.parametrize("kind,type_,values", KINDS, ids=[k[0] for k in KINDS])
def test_every_kind_through_a_cpp_process(name, peer, kind, type_, values):
    to_cpp = sleet.Channel.create(name("tocpp"), type_, max_message_size=512)
    from_cpp = sleet.Channel.create(name("fromcpp"), type_, max_message_size=512)
    p = subprocess.Popen([peer, "echo", kind, to_cpp.name, from_cpp.name, str(len(values))])
    for v in values:
        to_cpp.send(v)
    got = [from_cpp.receive(timeout=30) for _ in values]
    assert p.wait(30) == 0
    assert got == values
    assert [type(g) for g in got] == [type(v) for v in values]


def test_a_cpp_channel_of_another_type_is_refused(name, peer):
    ch = sleet.Channel.create(name("typed"), float)
    with pytest.raises(sleet.TypeMismatch, match="double"):
        sleet.Channel.open(ch.name, str)


def test_store_keys_of_cpp_types_both_ways(name, peer):
    kv = sleet.KvStore.create(name("kvx"))
    assert subprocess.run([peer, "kv-set", kv.name]).returncode == 0
    assert kv.get("s") == "from c++" and kv.get("i") == -42 and kv.get("f") == 0.25
    assert kv.get("b") is True and kv.get("y") == b"\x01\x02\x03"
    m = kv.get("m")
    assert isinstance(m, sleet.Message) and m.topic == "hello" and m == {"n": 7}
    assert kv.get("d") == {"list": [1, "x", None]}
    everything = kv.get_all()
    assert set(everything) == {"s", "i", "f", "b", "y", "m", "d", "u"}
    assert isinstance(everything["u"], sleet.Opaque) and "short unsigned int" in everything["u"].type_name
    assert everything["u"].data == b"\x05\x00"
    with pytest.raises(sleet.TypeMismatch, match="'u'"):
        kv.get("u")
    kv.set("s", "from python")
    kv.set("i", 1 << 40)
    kv.set("f", 1.5)
    kv.set("b", False)
    kv.set("y", b"\x09\x08")
    kv.set("d", {"k": (1, 2.5), "none": None})
    assert subprocess.run([peer, "kv-check", kv.name]).returncode == 0


def test_the_sleet_cli_reads_a_python_str_channel(name, peer):
    cli = os.path.join(os.path.dirname(os.path.dirname(peer)), "tools", "sleet")
    if not os.path.exists(cli):
        pytest.skip("the sleet CLI is not built")
    ch = sleet.Channel.create(name("cli"), str)
    ch.send("one")
    ch.send("two \u2603")
    ch.close()
    out = subprocess.run([cli, "recv", ch.name], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["one", "two \u2603"]
    back = sleet.Channel.create(name("cli2"), str)
    sent = subprocess.run([cli, "send", back.name], input="alpha\nbeta\n", text=True, timeout=30)
    assert sent.returncode == 0
    assert [back.receive(timeout=5), back.receive(timeout=5)] == ["alpha", "beta"]
