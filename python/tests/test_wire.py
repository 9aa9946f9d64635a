"""The direct encoder and decoder of objects (python/src/wire.hpp) against
cereal's encoding of the equivalent sleet::Dynamic, and the decoder on
truncated and hostile bytes."""

import random
import struct

import pytest

import sleet
from sleet import _sleet

VALUES = [
    None, True, False, 0, 1, -1, 2**63 - 1, -2**63, 0.0, -0.0, 1.5, float("inf"), 1e-300,
    "", "a", "héllo wörld", "日本語", "x" * 300, b"", b"\x00\xff" * 10, bytearray(b"abc"),
    [], (), {}, [1, "two", [3.0, None]], (1, (2, "x")), ((),), [[[]]],
    {"topic": "job", "id": 1, "path": "/tmp/a.png", "ok": True},
    {"a": 1, "nested": {"b": [True]}, 7: "int key", (1, 2): "tuple key", None: 0, 2.5: b"f"},
    {"list": list(range(50)), "tuple": tuple("abc"), "deep": [[{"k": [1]}]]},
]


def random_value(rng, depth=0):
    kinds = ["none", "bool", "int", "float", "str", "bytes"] + (["list", "tuple", "dict"] if depth < 4 else [])
    k = rng.choice(kinds)
    if k == "none":
        return None
    if k == "bool":
        return rng.random() < 0.5
    if k == "int":
        return rng.randint(-2**63, 2**63 - 1)
    if k == "float":
        return rng.uniform(-1e9, 1e9)
    if k == "str":
        return "".join(chr(rng.choice([rng.randint(32, 126), rng.randint(0xA0, 0x2FFF)])) for _ in range(rng.randint(0, 12)))
    if k == "bytes":
        return bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 12)))
    items = [random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    if k == "list":
        return items
    if k == "tuple":
        return tuple(items)
    return {("k%d" % i if rng.random() < 0.7 else i): v for i, v in enumerate(items)}


def all_values():
    rng = random.Random(14)
    return VALUES + [random_value(rng) for _ in range(300)]


def test_the_direct_encoder_writes_cerals_bytes():
    for v in all_values():
        assert _sleet._wire_encode(v) == _sleet._cereal_encode(v), v


def test_the_direct_decoder_reads_cerals_bytes():
    for v in all_values():
        data = _sleet._cereal_encode(v)
        ours, theirs = _sleet._wire_decode(data), _sleet._cereal_decode(data)
        assert ours == theirs
        assert type(ours) is type(theirs)
        expected = bytes(v) if isinstance(v, bytearray) else v
        assert ours == expected


def test_pickled_objects_encode_the_same_and_stay_opt_in():
    v = {"c": complex(1, 2), "s": [{1, 2}]}
    data = _sleet._wire_encode(v, True)
    assert data == _sleet._cereal_encode(v, True)
    assert _sleet._wire_decode(data, True) == v
    with pytest.raises(sleet.DecodeFailed, match="pickle=True"):
        _sleet._wire_decode(data)
    with pytest.raises(TypeError, match="pickle=True"):
        _sleet._wire_encode(complex(1, 2))


def test_encoding_errors_are_those_of_the_conversion():
    with pytest.raises(ValueError, match="64-bit range"):
        _sleet._wire_encode([2**64])
    deep = 1
    for _ in range(64):
        deep = [deep]
    with pytest.raises(sleet.InvalidArgument, match="nested deeper than 64"):
        _sleet._wire_encode(deep)
    _sleet._wire_encode(deep[0])  # 64 levels travel
    with pytest.raises(UnicodeEncodeError):
        _sleet._wire_encode("\ud800")


def test_every_truncation_is_a_decode_failure():
    data = _sleet._wire_encode({"topic": "job", "ids": [1, 2.5, None, (b"x", True)]})
    for n in range(len(data)):
        with pytest.raises(sleet.DecodeFailed, match="is not a sleet::Dynamic"):
            _sleet._wire_decode(data[:n])


def test_trailing_bytes_are_a_decode_failure():
    with pytest.raises(sleet.DecodeFailed, match="1 bytes after the value"):
        _sleet._wire_decode(_sleet._wire_encode([1]) + b"\x00")


def kind(i):
    return struct.pack("<i", i)


@pytest.mark.parametrize("index", [4, 5, 6, 7, 8, 9])
def test_a_hostile_length_is_refused_before_allocating(index):
    # 2**62 items or bytes: an allocation of that size would be the crash.
    for length in (2**62, 2**64 - 1, 17):
        with pytest.raises(sleet.DecodeFailed, match="of length %d in the 16 bytes left" % length):
            _sleet._wire_decode(kind(index) + struct.pack("<Q", length) + b"\x00" * 16, True)


def test_a_container_needs_four_bytes_per_item():
    # A list of 5 items in 16 bytes cannot be: each item is at least its index.
    with pytest.raises(sleet.DecodeFailed, match="list of length 5 in the 16 bytes left"):
        _sleet._wire_decode(kind(6) + struct.pack("<Q", 5) + b"\x00" * 16)
    assert _sleet._wire_decode(kind(6) + struct.pack("<Q", 4) + b"\x00" * 16) == [None] * 4


def test_garbage_kinds_bools_and_nesting_are_decode_failures():
    for i in (10, -1, 2**31 - 1):
        with pytest.raises(sleet.DecodeFailed, match="kind index %d is not" % i):
            _sleet._wire_decode(kind(i))
    with pytest.raises(sleet.DecodeFailed, match="a bool of value 2"):
        _sleet._wire_decode(kind(1) + b"\x02")
    nested = (kind(6) + struct.pack("<Q", 1)) * 70 + kind(0)
    with pytest.raises(sleet.DecodeFailed, match="nested deeper than 64"):
        _sleet._wire_decode(nested)
    with pytest.raises(sleet.DecodeFailed, match="the record ends inside a kind index"):
        _sleet._wire_decode(b"")


def test_an_unhashable_key_from_a_peer_is_a_type_error():
    data = kind(8) + struct.pack("<Q", 1) + _sleet._wire_encode([1]) + _sleet._wire_encode(2)
    with pytest.raises(TypeError, match="unhashable"):
        _sleet._wire_decode(data)


def test_random_garbage_never_crashes():
    rng = random.Random(7)
    good = [_sleet._wire_encode(v) for v in VALUES]
    for _ in range(3000):
        data = bytearray(rng.choice(good))
        for _ in range(rng.randint(1, 4)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            ours = _sleet._wire_decode(bytes(data))
        except (sleet.DecodeFailed, TypeError):
            continue
        # Compared as repr: a flipped float may be a NaN, unequal to itself.
        assert repr(ours) == repr(_sleet._cereal_decode(bytes(data)))


def test_repeated_keys_share_one_str_and_non_utf8_arrives_escaped():
    a = _sleet._wire_decode(_sleet._wire_encode({"topic": 1}))
    b = _sleet._wire_decode(_sleet._wire_encode({"topic": 2}))
    assert next(iter(a)) is next(iter(b))
    raw = kind(8) + struct.pack("<Q", 1) + kind(4) + struct.pack("<Q", 2) + b"\xff\xfe" + kind(0)
    assert _sleet._wire_decode(raw) == {"\udcff\udcfe": None}
    assert _sleet._cereal_decode(raw) == {"\udcff\udcfe": None}


def test_a_record_that_does_not_decode_is_consumed_and_named(name):
    n = name("undecodable")
    tx = sleet.Channel.create(n, pickle=True, max_message_size=512)
    tx.send(complex(1, 2))
    tx.send({"ok": 1})
    rx = sleet.Channel.open(n, object)
    with pytest.raises(sleet.DecodeFailed, match="channel '%s'.*pickle=True" % n):
        rx.receive(timeout=1)
    assert rx.receive(timeout=1) == {"ok": 1}
    assert rx.try_receive("empty") == "empty"
