#!/usr/bin/env python3
"""sleet's Python module against multiprocessing, in one run.

    PYTHONPATH=build/python /usr/bin/python3 bench/python_bench.py [--rounds 5] [--quick]

Rows (each measured in --rounds interleaved rounds: sleet, then its
baseline, then the next round; the ratio is baseline / sleet per round,
reported as the median with its range):
  round trip    two processes, a small dict there and back: sleet.Pipe vs multiprocessing.Pipe
                (", spin 0": both ends with set_spin(0), sleeping at once instead of
                busy-waiting 50 us: better when processes outnumber CPUs;
                ", pinned": both sides of both mechanisms pinned to CPUs 0 and 1, so the
                two processes never share a CPU: what the mechanisms cost without the
                scheduler's choice of placing them on one CPU, which costs two context
                switches a round trip)
  one-way       small dicts from one process to another: sleet.Channel vs multiprocessing.Queue
  store get     a child reads a key: sleet.KvStore.get vs a multiprocessing.Manager().dict() lookup
  binding       Python Channel(int).send + try_receive vs the same C++ calls (cpp_send_receive_ns)
"""

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import time

import sleet

CTX = mp.get_context("spawn")
MSG = {"topic": "job", "id": 1, "path": "/tmp/a.png", "ok": True}
PREFIX = "pybench.%d." % os.getpid()


# --- round trip ---------------------------------------------------------

class Pinned:
    """Pins this process to one CPU for a block (cpu None: leaves it alone)."""

    def __init__(self, cpu):
        self.cpu = cpu

    def __enter__(self):
        if self.cpu is not None:
            self.saved = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {self.cpu})

    def __exit__(self, *exc):
        if self.cpu is not None:
            os.sched_setaffinity(0, self.saved)


def pin_child(pinned):
    if pinned:
        os.sched_setaffinity(0, {1})


def sleet_echo(name, n, spin, pinned=False):
    pin_child(pinned)
    end = sleet.Pipe.open(name, "b")
    if spin is not None:
        end.set_spin(spin)
    for _ in range(n):
        end.send(end.receive())


def mp_echo(conn, n, pinned=False):
    pin_child(pinned)
    for _ in range(n):
        conn.send(conn.recv())


def round_trip_sleet(n, spin=None, pinned=False):
    name = PREFIX + "rt"
    a, b = sleet.Pipe.create(name, capacity=64)
    if spin is not None:
        a.set_spin(spin)
    p = CTX.Process(target=sleet_echo, args=(name, n + 1, spin, pinned))
    p.start()
    with Pinned(0 if pinned else None):
        a.send(MSG)
        a.receive()  # the child is up
        t0 = time.perf_counter()
        for _ in range(n):
            a.send(MSG)
            a.receive()
        t = time.perf_counter() - t0
    p.join()
    del a, b
    sleet.Pipe.remove(name)
    return t / n


def round_trip_mp(n, pinned=False):
    here, there = CTX.Pipe(duplex=True)
    p = CTX.Process(target=mp_echo, args=(there, n + 1, pinned))
    p.start()
    with Pinned(0 if pinned else None):
        here.send(MSG)
        here.recv()
        t0 = time.perf_counter()
        for _ in range(n):
            here.send(MSG)
            here.recv()
        t = time.perf_counter() - t0
    p.join()
    return t / n


# --- one-way ------------------------------------------------------------

def sleet_sink(name, done, n, spin):
    ch = sleet.Channel.open(name)
    if spin is not None:
        ch.set_spin(spin)
    for _ in range(n):
        ch.receive()
    sleet.Channel.open(done).send(1)


def mp_sink(q, done, n):
    for _ in range(n):
        q.get()
    done.put(1)


def one_way_sleet(n, spin=None):
    name, done_name = PREFIX + "ow", PREFIX + "owdone"
    ch = sleet.Channel.create(name, capacity=1024)
    if spin is not None:
        ch.set_spin(spin)
    done = sleet.Channel.create(done_name)
    p = CTX.Process(target=sleet_sink, args=(name, done_name, n + 1, spin))
    p.start()
    ch.send(MSG)
    while ch.stats()["queued"]:  # the child is receiving
        time.sleep(0.001)
    t0 = time.perf_counter()
    for _ in range(n):
        ch.send(MSG)
    done.receive()
    t = time.perf_counter() - t0
    p.join()
    del ch, done
    sleet.Channel.remove(name)
    sleet.Channel.remove(done_name)
    return t / n


def one_way_mp(n):
    q, done = CTX.Queue(), CTX.Queue()
    p = CTX.Process(target=mp_sink, args=(q, done, n + 1))
    p.start()
    q.put(MSG)
    while not q.empty():
        time.sleep(0.001)
    t0 = time.perf_counter()
    for _ in range(n):
        q.put(MSG)
    done.get()
    t = time.perf_counter() - t0
    p.join()
    return t / n


# --- store get ----------------------------------------------------------

def sleet_reader(name, n, out):
    kv = sleet.KvStore.open(name)
    get = kv.get
    get("mode")
    t0 = time.perf_counter()
    for _ in range(n):
        get("mode")
    out.put((time.perf_counter() - t0) / n)


def mp_reader(d, n, out):
    d["mode"]
    t0 = time.perf_counter()
    for _ in range(n):
        d["mode"]
    out.put((time.perf_counter() - t0) / n)


def store_get_sleet(n):
    name = PREFIX + "kv"
    kv = sleet.KvStore.create(name)
    kv.set("mode", MSG)
    out = CTX.Queue()
    p = CTX.Process(target=sleet_reader, args=(name, n, out))
    p.start()
    t = out.get()
    p.join()
    del kv
    sleet.KvStore.remove(name)
    return t


def store_get_mp(n, manager):
    d = manager.dict()
    d["mode"] = MSG
    out = CTX.Queue()
    p = CTX.Process(target=mp_reader, args=(d, n, out))
    p.start()
    t = out.get()
    p.join()
    return t


# --- binding overhead ---------------------------------------------------

def binding_python(n):
    name = PREFIX + "ovh"
    ch = sleet.Channel.create(name, int, capacity=64)
    ch.try_receive()  # the first receive puts the object in active mode (and binds the C++ method)
    send, try_receive = ch.send, ch.try_receive
    t0 = time.perf_counter()
    for i in range(n):
        send(i)
        try_receive()
    t = time.perf_counter() - t0
    del ch
    sleet.Channel.remove(name)
    return t / n


def binding_cpp(n):
    name = PREFIX + "ovhc"
    ch = sleet.Channel.create(name, int, capacity=64)
    t = sleet._sleet.cpp_send_receive_ns(name, n) * 1e-9
    del ch
    sleet.Channel.remove(name)
    return t


def summary(ratios):
    return statistics.median(ratios), min(ratios), max(ratios)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="fewer operations per round")
    ap.add_argument("--out", help="also write the table (markdown) here")
    args = ap.parse_args()
    k = 10 if args.quick else 1
    cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True,
                         text=True).stdout.strip()
    rows = {"round trip": [], "round trip, spin 0": [], "round trip, pinned": [], "one-way": [], "one-way, spin 0": [],
            "store get": [], "binding": []}
    times = {key: ([], []) for key in rows}
    manager = CTX.Manager()
    for r in range(args.rounds):
        for key, ours, theirs in (
            ("round trip", lambda: round_trip_sleet(20000 // k), lambda: round_trip_mp(20000 // k)),
            ("round trip, spin 0", lambda: round_trip_sleet(20000 // k, 0.0), lambda: round_trip_mp(20000 // k)),
            ("round trip, pinned", lambda: round_trip_sleet(20000 // k, pinned=True),
             lambda: round_trip_mp(20000 // k, pinned=True)),
            ("one-way", lambda: one_way_sleet(200000 // k), lambda: one_way_mp(200000 // k)),
            ("one-way, spin 0", lambda: one_way_sleet(200000 // k, 0.0), lambda: one_way_mp(200000 // k)),
            ("store get", lambda: store_get_sleet(200000 // k), lambda: store_get_mp(20000 // k, manager)),
            ("binding", lambda: binding_python(1000000 // k), lambda: binding_cpp(1000000 // k)),
        ):
            a, b = ours(), theirs()
            times[key][0].append(a)
            times[key][1].append(b)
            rows[key].append(b / a)
        print("round %d/%d done" % (r + 1, args.rounds), file=sys.stderr)
    manager.shutdown()

    lines = [
        "CPU: %s, %d CPUs; Python %s (%s); %d rounds, interleaved" % (cpu, os.cpu_count(), platform.python_version(),
                                                                  sys.executable, args.rounds),
        "",
        "| row | sleet (median) | baseline (median) | baseline | ratio median [min, max] |",
        "|---|---|---|---|---|",
    ]
    base = {"round trip": "multiprocessing.Pipe", "round trip, spin 0": "multiprocessing.Pipe",
            "round trip, pinned": "multiprocessing.Pipe (pinned too)",
            "one-way": "multiprocessing.Queue", "one-way, spin 0": "multiprocessing.Queue",
            "store get": "Manager().dict() lookup", "binding": "C++ send+try_receive"}
    for key in rows:
        med, lo, hi = summary(rows[key])
        ours = statistics.median(times[key][0]) * 1e9
        theirs = statistics.median(times[key][1]) * 1e9
        if key == "binding":
            lines.append("| binding overhead | %.0f ns/pair | %.0f ns/pair | %s | %.0f ns per call more than C++ "
                         "(a pair is 2 calls; Python/C++ %.1fx, range %.1f-%.1f) |"
                         % (ours, theirs, base[key], (ours - theirs) / 2, 1 / med, 1 / hi, 1 / lo))
        else:
            lines.append("| %s | %.2f us | %.2f us | %s | **%.1fx** [%.1f, %.1f] |"
                         % (key, ours / 1e3, theirs / 1e3, base[key], med, lo, hi))
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
