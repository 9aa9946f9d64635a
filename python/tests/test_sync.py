"""Mutex, Semaphore, Event, SharedValue across processes."""

import multiprocessing
import threading

import pytest

import helpers
import sleet

SPAWN = multiprocessing.get_context("spawn")


def test_mutex_serialises_processes_and_survives_its_owner(name):
    m = sleet.Mutex.create(name("mutex"))
    v = sleet.SharedValue.create(name("count"), int, 0)
    procs = [SPAWN.Process(target=helpers.locked_increments, args=(m.name, v.name, 500)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert v.load() == 1500
    p = SPAWN.Process(target=helpers.die_holding, args=(m.name,))
    p.start()
    p.join(60)
    assert m.lock(timeout=10)
    assert m.owner_died
    m.unlock()
    assert not m.owner_died


def test_mutex_errors(name):
    m = sleet.Mutex.create(name("mutexerr"))
    with m:
        with pytest.raises(sleet.Busy):
            m.lock()
        err = []
        t = threading.Thread(target=lambda: err.append(pytest.raises(sleet.NotOwner, m.unlock)))
        t.start()
        t.join()
        assert err
        other = []
        t = threading.Thread(target=lambda: other.append(m.lock(timeout=0.05)))
        t.start()
        t.join()
        assert other == [False]
    with pytest.raises(sleet.NotOwner):
        m.unlock()


def test_semaphore_and_event(name):
    s = sleet.Semaphore.create(name("sem"), 1, max=2)
    with s:
        assert s.value == 0
        assert not s.acquire(timeout=0.02)
    s.release()
    with pytest.raises(sleet.Full):
        s.release()
    e = sleet.Event.create(name("event"))
    assert not e.wait(timeout=0.02)
    p = SPAWN.Process(target=helpers.set_event_later, args=(e.name,))
    p.start()
    assert e.wait(timeout=60)
    p.join(60)
    assert e.is_set()
    e.clear()
    assert not e.is_set()


def test_shared_value(name):
    v = sleet.SharedValue.create(name("val"), float, 1.5)
    assert v.load() == 1.5
    assert v.fetch_add(1.0) == 1.5 and v.value == 2.5
    assert v.compare_exchange(2.5, 4.0) and not v.compare_exchange(2.5, 5.0)
    assert v.exchange(0.0) == 4.0
    with pytest.raises(sleet.TypeMismatch):
        sleet.SharedValue.open(v.name, int)
    with pytest.raises(TypeError, match="int or float"):
        sleet.SharedValue.create(name("val2"), str)
