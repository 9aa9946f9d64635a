"""Channel, Pipe, Topic and Subscriber: the Python face of the C++ objects
in _sleet, plus what only Python has (on_receive dispatch threads,
async_receive for asyncio, iteration)."""

import asyncio
import atexit
import threading
import traceback
import weakref

from . import _errors, _sleet
from ._message import Message

# type= argument -> the C++ kind the binding names its classes after.
_KINDS = {str: "str", int: "int", float: "float", bytes: "bytes", Message: "message", object: "object"}
for _k in list(_KINDS.values()):
    _KINDS[_k] = _k
_TYPE_NAMES = {v: k for k, v in _sleet.type_names().items()}  # C++ type name -> kind

# How long a dispatcher thread waits per call before it looks at its stop
# flag: the bound on how long close() and interpreter exit wait for it.
_DISPATCH_SLICE = 0.05
_EMPTY = object()


def _kind(type_):
    try:
        return _KINDS[type_]
    except (KeyError, TypeError):
        raise TypeError("type must be one of str, int, float, bytes, sleet.Message or object, not %r" % (type_,)) from None


def _forward(attr, doc=None):
    """A read-only property that reads the C++ object's attribute."""
    return property(lambda self: getattr(self._impl, attr), doc=doc)


class _Dispatcher:
    """One thread that receives for on_receive handlers. It waits in C++
    without the GIL and takes it only to run filters and handlers."""

    _live = weakref.WeakSet()

    def __init__(self, impl, label):
        self._impl = impl
        self._label = label
        self._handlers = []
        self._stop = threading.Event()
        self._thread = None
        self.unhandled = 0  # messages no handler accepted

    def add(self, handler, filter_func):
        self._handlers.append((handler, filter_func))
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sleet-dispatch " + self._label, daemon=True)
            _Dispatcher._live.add(self)
            self._thread.start()

    def _run(self):
        impl, stop = self._impl, self._stop
        while not stop.is_set():
            try:
                msg = impl.receive_or(_DISPATCH_SLICE, _EMPTY)
            except _errors.Closed:
                return
            if msg is _EMPTY:
                continue
            taken = False
            for handler, filter_func in list(self._handlers):
                try:
                    if filter_func is None or filter_func(msg):
                        taken = True
                        handler(msg)
                except Exception:  # a handler's error must not end the dispatcher
                    traceback.print_exc()
            if not taken:
                self.unhandled += 1

    def stop(self):
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join()


@atexit.register
def _stop_dispatchers():
    # Before the interpreter finalises: a thread waking then would find no GIL.
    for d in list(_Dispatcher._live):
        d.stop()


class _Receiver:
    """receive / try_receive / iteration / on_receive / async_receive over
    an _sleet object; active (receive) and passive (on_receive) use of one
    object exclude each other, as in C++ (sleet.WrongMode)."""

    def _setup_receiver(self, impl, label):
        self._impl = impl
        self._fast = impl.fast_methods()  # C++ functions without pybind11's dispatch
        self._label = label
        self._dispatcher = None
        self._active = False

    closed = _forward("closed")

    name = _forward("name")

    def set_spin(self, seconds):
        """How long this object's blocking calls busy-wait before they sleep
        (default 50 us; 0 on a machine with more busy processes than CPUs)."""
        self._impl.set_spin(seconds)

    def _go_active(self):
        if self._dispatcher is not None:
            raise _errors.make("wrong_mode", "%s: receive on an object with on_receive handlers (passive mode)" % self._label)
        if not self._active:
            self._active = True
            # From now on the C++ methods are called directly: no Python frame per call.
            self.receive = self._fast["receive"]
            self.try_receive = self._fast["try_receive"]

    def receive(self, timeout=None):
        """The next message; waits up to ``timeout`` seconds (None: forever),
        then raises sleet.Timeout. sleet.Closed once closed and drained."""
        self._go_active()
        return self._impl.receive(timeout)

    def try_receive(self, default=None):
        """The next message if one is waiting, else ``default`` (pass a
        sentinel when None is a message)."""
        self._go_active()
        return self._impl.try_receive(default)

    def __iter__(self):
        """Messages until the object is closed and drained."""
        self._go_active()
        impl = self._impl
        while True:
            try:
                yield impl.receive(None)
            except _errors.Closed:
                return

    def on_receive(self, filter_func=None):
        """Decorator: ``handler(msg)`` runs on this object's dispatcher thread
        for every message ``filter_func(msg)`` accepts (all if None)."""
        if self._active:
            raise _errors.make("wrong_mode", "%s: on_receive on an object already used with receive (active mode)" % self._label)

        def register(handler):
            if self._dispatcher is None:
                self._dispatcher = _Dispatcher(self._impl, self._label)
            self._dispatcher.add(handler, filter_func)
            return handler

        return register

    @property
    def unhandled(self):
        """Messages the dispatcher read that no filter accepted."""
        return 0 if self._dispatcher is None else self._dispatcher.unhandled

    def stop_dispatch(self):
        """Ends the on_receive thread (after the handler it may be running)."""
        if self._dispatcher is not None:
            self._dispatcher.stop()

    async def async_receive(self, timeout=None):
        """The next message, awaited in an asyncio loop: the loop watches the
        object's notify descriptor (no thread per call). sleet.Timeout after
        ``timeout`` seconds."""
        self._go_active()
        impl = self._impl
        msg = impl.try_receive(_EMPTY)
        if msg is not _EMPTY:
            return msg
        loop = asyncio.get_running_loop()
        fd = impl.notify_fd()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            ready = loop.create_future()
            loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
            try:
                msg = impl.try_receive(_EMPTY)  # again, now that the reader is armed
                if msg is not _EMPTY:
                    return msg
                if impl.closed:
                    return impl.receive(0.0)  # a message sent before close, or sleet.Closed
                remaining = None if deadline is None else max(0.0, deadline - loop.time())
                try:
                    await asyncio.wait_for(ready, remaining)
                except asyncio.TimeoutError:
                    raise _errors.make("timeout", "%s: nothing within the timeout of %s s" % (self._label, timeout)) from None
            finally:
                loop.remove_reader(fd)
            msg = impl.try_receive(_EMPTY)
            if msg is not _EMPTY:
                return msg


class _Endpoint(_Receiver):
    """What a channel and a pipe end share: the send side and close."""

    def __init__(self, impl, kind, label):
        self.kind = kind
        self._setup_receiver(impl, label)
        # The send side has no mode: call C++ directly.
        self.send = self._fast["send"]
        self.try_send = self._fast["try_send"]

    def send(self, value, timeout=None):  # replaced per instance by the C++ method
        """Sends ``value``, waiting while full (sleet.Timeout after ``timeout``
        seconds). sleet.TooLarge over max_message_size, TypeError for a
        value of another type than the object carries."""
        return self._impl.send(value, timeout)

    def try_send(self, value):  # replaced per instance by the C++ method
        """Sends if there is room; returns whether it did."""
        return self._impl.try_send(value)

    def close(self):
        """Refuses later sends (every process); receivers drain, then get sleet.Closed."""
        self._impl.close()
        self.stop_dispatch()


class Channel(_Endpoint):
    """A named message queue in shared memory; any process that opens it
    sends and receives. ``type`` is what it carries: object (default: None,
    bool, int, float, str, bytes, lists, tuples, dicts; C++ sleet::Dynamic),
    str, int, float, bytes or sleet.Message, checked on open as in C++."""

    @classmethod
    def create(cls, name, type=object, *, capacity=1024, max_message_size=256, topology="mpmc", permissions=0o600,
               pickle=False):
        """A new channel (sleet.AlreadyExists if the name is taken)."""
        k = _kind(type)
        return cls(getattr(_sleet, "Channel_" + k).create(name, capacity, max_message_size, topology, permissions, pickle),
                   k, "channel '%s'" % name)

    @classmethod
    def open(cls, name, type=None, *, pickle=False):
        """An existing channel; type None: the type it was created with
        (sleet.TypeMismatch if another type is given)."""
        k = _kind(type) if type is not None else _detect(name)
        return cls(getattr(_sleet, "Channel_" + k).open(name, pickle), k, "channel '%s'" % name)

    @classmethod
    def open_or_create(cls, name, type=object, *, capacity=1024, max_message_size=256, topology="mpmc",
                       permissions=0o600, pickle=False):
        k = _kind(type)
        return cls(getattr(_sleet, "Channel_" + k).open_or_create(name, capacity, max_message_size, topology,
                                                                  permissions, pickle), k, "channel '%s'" % name)

    @staticmethod
    def remove(name):
        """Deletes the channel's shared memory; False if there was none."""
        return _sleet.remove_channel_object(name)

    capacity = _forward("capacity")

    max_message_size = _forward("max_message_size")

    topology = _forward("topology")

    def stats(self):
        """Counters: sent, received, queued, times_full, ... (a racy snapshot)."""
        return self._impl.stats()

    def __repr__(self):
        return "<sleet.Channel %r of %s>" % (self.name, self.kind)


def _detect(name):
    for c in _sleet.list_channels():
        if c["name"] == name:
            k = _TYPE_NAMES.get(c["type_name"])
            if k is None:
                raise _errors.make("type_mismatch", "channel '%s' carries %s, which Python has no mapping for"
                                   % (name, c["type_name"]))
            return k
    raise _errors.make("not_found", "channel '%s': no such channel" % name)


def get_channel(name, *, pickle=False):
    """Opens an existing channel with the type it was created with."""
    return Channel.open(name, pickle=pickle)


def list_channels():
    """Every channel and pipe on the machine: dicts of name, kind, topology,
    type_name, capacity, max_message_size, queued, sent."""
    return _sleet.list_channels()


class Pipe(_Endpoint):
    """One end of a two-way connection (two spsc rings): what one end sends
    the other receives, as multiprocessing.Pipe(duplex=True)."""

    @classmethod
    def create(cls, name, type=object, *, capacity=1024, max_message_size=256, permissions=0o600, pickle=False):
        """Creates the pipe; returns its ends (a, b)."""
        k = _kind(type)
        a, b = getattr(_sleet, "Pipe_" + k).create(name, capacity, max_message_size, permissions, pickle)
        return cls(a, k, "pipe '%s' end a" % name), cls(b, k, "pipe '%s' end b" % name)

    @classmethod
    def open(cls, name, end, type=object, *, pickle=False):
        """Attaches end "a" or "b" of an existing pipe."""
        k = _kind(type)
        return cls(getattr(_sleet, "Pipe_" + k).open(name, end, pickle), k, "pipe '%s' end %s" % (name, end))

    @staticmethod
    def remove(name):
        return _sleet.remove_pipe_object(name)


class Subscriber(_Receiver):
    """A topic's reader: sees every message published after it subscribed."""

    def __init__(self, impl, label):
        self._setup_receiver(impl, label)

    def lost(self):
        """Messages an overwrite topic made this subscriber miss."""
        return self._impl.lost()


class Topic:
    """Publish/subscribe: every subscriber in every process sees every
    message. overflow "block" (publishers wait for the slowest subscriber)
    or "overwrite" (slow subscribers skip ahead and count what they lost)."""

    def __init__(self, impl, kind, label):
        self.kind = kind
        self._impl = impl
        self._label = label
        self.publish = impl.fast_publish()

    @classmethod
    def create(cls, name, type=object, *, capacity=1024, max_message_size=256, max_subscribers=64, overflow="block",
               permissions=0o600, pickle=False):
        k = _kind(type)
        return cls(getattr(_sleet, "Topic_" + k).create(name, capacity, max_message_size, max_subscribers, overflow,
                                                        permissions, pickle), k, "topic '%s'" % name)

    @classmethod
    def open(cls, name, type=object, *, pickle=False):
        k = _kind(type)
        return cls(getattr(_sleet, "Topic_" + k).open(name, pickle), k, "topic '%s'" % name)

    @classmethod
    def open_or_create(cls, name, type=object, *, capacity=1024, max_message_size=256, max_subscribers=64,
                       overflow="block", permissions=0o600, pickle=False):
        k = _kind(type)
        return cls(getattr(_sleet, "Topic_" + k).open_or_create(name, capacity, max_message_size, max_subscribers,
                                                                overflow, permissions, pickle), k, "topic '%s'" % name)

    @staticmethod
    def remove(name):
        return _sleet.remove_topic_object(name)

    def publish(self, value, timeout=None):  # replaced per instance by the C++ method
        """Publishes to every subscriber (block: waits for the slowest)."""
        return self._impl.publish(value, timeout)

    def try_publish(self, value):
        return self._impl.try_publish(value)

    def subscribe(self, oldest=False):
        """A Subscriber from the next message on (oldest=True: from the
        oldest message the ring still holds)."""
        return Subscriber(self._impl.subscribe(oldest), self._label)

    def close(self):
        self._impl.close()

    closed = _forward("closed")

    name = _forward("name")

    def stats(self):
        return self._impl.stats()
