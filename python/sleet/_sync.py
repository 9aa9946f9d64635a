"""Mutex, Semaphore, Event, SharedValue: named cross-process primitives
(multiprocessing.Lock / Semaphore / Event / Value, across any processes)."""

from . import _sleet


class _Named:
    _cls = None

    def __init__(self, impl):
        self._impl = impl

    @classmethod
    def open(cls, name):
        return cls(cls._cls.open(name))

    @classmethod
    def remove(cls, name):
        return cls._cls.remove(name)

    @property
    def name(self):
        return self._impl.name


class Mutex(_Named):
    """A mutex that survives the death of its owner: the next locker takes
    it over and sees ``owner_died`` True until it unlocks. The owner is a
    thread. ``with m:`` locks and unlocks.

    sleet.Busy if the thread already holds it, sleet.NotOwner for an unlock
    by another thread."""

    _cls = _sleet.Mutex

    @classmethod
    def create(cls, name, *, permissions=0o600):
        return cls(_sleet.Mutex.create(name, permissions))

    @classmethod
    def open_or_create(cls, name, *, permissions=0o600):
        return cls(_sleet.Mutex.open_or_create(name, permissions))

    def lock(self, timeout=None):
        """Waits for the lock; False after ``timeout`` seconds."""
        return self._impl.lock(timeout)

    def try_lock(self):
        return self._impl.try_lock()

    def unlock(self):
        self._impl.unlock()

    @property
    def owner_died(self):
        return self._impl.owner_died

    def __enter__(self):
        self._impl.lock(None)
        return self

    def __exit__(self, *exc):
        self._impl.unlock()


class Semaphore(_Named):
    """A counting semaphore; ``with s:`` acquires and releases one."""

    _cls = _sleet.Semaphore

    @classmethod
    def create(cls, name, initial=0, *, max=_sleet.kSemaphoreMax, permissions=0o600):
        return cls(_sleet.Semaphore.create(name, initial, max, permissions))

    @classmethod
    def open_or_create(cls, name, initial=0, *, max=_sleet.kSemaphoreMax, permissions=0o600):
        return cls(_sleet.Semaphore.open_or_create(name, initial, max, permissions))

    def acquire(self, timeout=None):
        """Takes one; False after ``timeout`` seconds."""
        return self._impl.acquire(timeout)

    def try_acquire(self):
        return self._impl.try_acquire()

    def release(self, n=1):
        """Gives n back (sleet.Full past max)."""
        self._impl.release(n)

    @property
    def value(self):
        return self._impl.value

    def __enter__(self):
        self._impl.acquire(None)
        return self

    def __exit__(self, *exc):
        self._impl.release(1)


class Event(_Named):
    """A flag processes wait for (set / clear / wait)."""

    _cls = _sleet.Event

    @classmethod
    def create(cls, name, *, initially_set=False, permissions=0o600):
        return cls(_sleet.Event.create(name, initially_set, permissions))

    @classmethod
    def open_or_create(cls, name, *, initially_set=False, permissions=0o600):
        return cls(_sleet.Event.open_or_create(name, initially_set, permissions))

    def set(self):
        self._impl.set()

    def clear(self):
        self._impl.clear()

    def is_set(self):
        return self._impl.is_set()

    def wait(self, timeout=None):
        """True once set; False after ``timeout`` seconds."""
        return self._impl.wait(timeout)


class SharedValue:
    """One int (64-bit) or float in shared memory, C++'s SharedValue<std::int64_t>
    or SharedValue<double>: load, store, exchange, compare_exchange,
    fetch_add, fetch_sub (atomic)."""

    def __init__(self, impl):
        self._impl = impl
        self.load = impl.load
        self.store = impl.store

    @staticmethod
    def _cls_for(type_):
        if type_ is int:
            return _sleet.SharedValue_int
        if type_ is float:
            return _sleet.SharedValue_float
        raise TypeError("SharedValue type must be int or float, not %r" % (type_,))

    @classmethod
    def create(cls, name, type=int, initial=0, *, permissions=0o600):
        return cls(cls._cls_for(type).create(name, initial, permissions))

    @classmethod
    def open(cls, name, type=int):
        return cls(cls._cls_for(type).open(name))

    @classmethod
    def open_or_create(cls, name, type=int, initial=0, *, permissions=0o600):
        return cls(cls._cls_for(type).open_or_create(name, initial, permissions))

    @staticmethod
    def remove(name):
        return _sleet.SharedValue_int.remove(name)

    def exchange(self, v):
        return self._impl.exchange(v)

    def compare_exchange(self, expected, desired):
        return self._impl.compare_exchange(expected, desired)

    def fetch_add(self, d):
        return self._impl.fetch_add(d)

    def fetch_sub(self, d):
        return self._impl.fetch_sub(d)

    @property
    def value(self):
        return self._impl.load()

    @property
    def name(self):
        return self._impl.name
