"""KvStore: the shared key-value store, plus the host's publish /
on_subscriber_receive on topics next to it."""

from . import _errors, _sleet
from ._message import Opaque
from ._messaging import Topic

_MISSING = object()


class KvStore:
    """A named key-value store in shared memory that every process reads
    directly (lock-free reads, no round trip to an owner process).

    A value is stored as the C++ type a C++ reader asks for: str as
    std::string, int as std::int64_t, float as double, bool, bytes as
    std::vector<std::uint8_t>, sleet.Message, anything else as
    sleet::Dynamic (None, lists, tuples, dicts; pickled objects with
    pickle=True)."""

    def __init__(self, impl, pickle):
        self._impl = impl
        self._pickle = pickle
        self._topics = {}
        self._subscribers = []
        # Straight to C++: no Python frame (and no pybind11 dispatch) per call.
        fast = impl.fast_methods()
        self.get = fast["get"]
        self.set = fast["set"]
        self.contains = impl.contains

    @classmethod
    def create(cls, name, *, capacity=4096, max_key_size=64, max_value_size=256, overflow_bytes=0,
               permissions=0o600, pickle=False):
        return cls(_sleet.KvStore.create(name, capacity, max_key_size, max_value_size, overflow_bytes, permissions,
                                         pickle), pickle)

    @classmethod
    def open(cls, name, *, pickle=False):
        return cls(_sleet.KvStore.open(name, pickle), pickle)

    @classmethod
    def open_or_create(cls, name, *, capacity=4096, max_key_size=64, max_value_size=256, overflow_bytes=0,
                       permissions=0o600, pickle=False):
        return cls(_sleet.KvStore.open_or_create(name, capacity, max_key_size, max_value_size, overflow_bytes,
                                                 permissions, pickle), pickle)

    @staticmethod
    def remove(name):
        return _sleet.KvStore.remove(name)

    def set(self, key, value):  # replaced per instance by the C++ method
        """Stores ``value`` under ``key`` (sleet.TooLarge over max_value_size,
        sleet.Full when no slot is free)."""
        self._impl.set(key, value)

    def get(self, key, default=None):  # replaced per instance by the C++ method
        """The value, or ``default`` if the key is missing. sleet.TypeMismatch
        for a value of a C++ type Python has no mapping for."""
        return self._impl.get(key, default)

    def delete(self, key):
        """Removes the key; returns whether it was there."""
        return self._impl.delete(key)

    def contains(self, key):  # replaced per instance by the C++ method
        return self._impl.contains(key)

    def get_all(self):
        """{key: value} of every entry (a snapshot); values of C++ types
        without a Python mapping are sleet.Opaque(type_name, data)."""
        return self._impl.get_all(Opaque)

    def update(self, key, fn):
        """Atomically replaces the value with ``fn(old)`` (old None when
        missing) and returns it. fn runs under the key's lock: keep it short,
        and do not write to the store from it."""
        return self._impl.update(key, fn)

    def compare_exchange(self, key, expected, desired):
        """Sets ``desired`` if the value equals ``expected``; returns whether it did."""
        return self._impl.compare_exchange(key, expected, desired)

    def wait_for_change(self, key, timeout=None):
        """Waits until someone writes ``key``; False at the timeout."""
        return self._impl.wait_for_change(key, timeout)

    def clear(self):
        self._impl.clear()

    def __len__(self):
        return self._impl.size()

    def __contains__(self, key):
        return self._impl.contains(key)

    def __getitem__(self, key):
        v = self._impl.get(key, _MISSING)
        if v is _MISSING:
            raise KeyError(key)
        return v

    def __setitem__(self, key, value):
        self._impl.set(key, value)

    def __delitem__(self, key):
        if not self._impl.delete(key):
            raise KeyError(key)

    @property
    def name(self):
        return self._impl.name

    # The host's shared_memory.publish / @on_subscriber_receive: a topic of
    # that name (sleet.Topic of objects, created on first use). A subscriber
    # sees what is published after it subscribed.
    def _topic(self, topic):
        t = self._topics.get(topic)
        if t is None:
            t = self._topics[topic] = Topic.open_or_create(topic, pickle=self._pickle)
        return t

    def publish(self, topic, data):
        """Publishes ``data`` on the topic named ``topic``."""
        self._topic(topic).publish(data)

    def on_subscriber_receive(self, topic, filter_func=None):
        """Decorator: ``handler(data)`` runs on a dispatcher thread for every
        message published on ``topic`` from now on."""
        sub = self._topic(topic).subscribe()
        self._subscribers.append(sub)
        return sub.on_receive(filter_func)

    def close(self):
        """Ends the on_subscriber_receive threads."""
        for s in self._subscribers:
            s.stop_dispatch()
        self._subscribers.clear()
