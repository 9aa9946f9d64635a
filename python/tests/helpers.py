"""Functions the tests run in other processes (importable, for the spawn
start method and for ProcessManager)."""

import sys
import time

import sleet


def echo(name, n, kind, pickle=False):
    """Receives n messages on channel `name`, sends each back on `name`.back."""
    rx = sleet.Channel.open(name, kind, pickle=pickle)
    tx = sleet.Channel.open(name + ".back", kind, pickle=pickle)
    for _ in range(n):
        tx.send(rx.receive(timeout=30))


def store_writer(name, n):
    kv = sleet.KvStore.open(name)
    for i in range(n):
        kv.set("k%d" % i, {"i": i, "sq": [i, i * i]})
    kv.set("done", True)


def store_reader(name, key, out):
    kv = sleet.KvStore.open(name)
    tx = sleet.Channel.open(out)
    tx.send(kv.get(key))


def subscriber(topic, ready, out, n):
    sub = sleet.Topic.open(topic).subscribe()
    sleet.Channel.open(ready).send("ready")
    tx = sleet.Channel.open(out)
    total = 0
    for _ in range(n):
        total += sub.receive(timeout=30)["v"]
    tx.send(total)


def worker():
    """A ProcessManager child: answers each message with its field x doubled."""
    ch = sleet.this_process.active_channel()
    for m in ch:
        if m.topic == "exit":
            return int(m["code"])
        ch.send(sleet.Message("done", x=m["x"] * 2, me=sleet.this_process.name()))
    return 0


def passive_worker():
    """A ProcessManager child: passive handlers with a string filter, replies on the active pipe."""
    active = sleet.this_process.active_channel()
    passive = sleet.this_process.passive_channel()

    @passive.on_receive(filter_func=lambda m: m.topic == "greet")
    def on_greet(m):
        active.send(sleet.Message("greeted", who=m["who"]))

    while True:
        time.sleep(0.05)


def crasher():
    ch = sleet.this_process.active_channel()
    ch.send(sleet.Message("started"))
    m = ch.receive()
    sys.exit(int(m["code"]))


def locked_increments(mutex, value, n):
    """n increments of a SharedValue as load+store under the mutex (racy without it)."""
    m = sleet.Mutex.open(mutex)
    v = sleet.SharedValue.open(value, int)
    for _ in range(n):
        with m:
            v.store(v.load() + 1)


def die_holding(mutex):
    import os
    sleet.Mutex.open(mutex).lock()
    os._exit(0)


def set_event_later(event):
    time.sleep(0.05)
    sleet.Event.open(event).set()
