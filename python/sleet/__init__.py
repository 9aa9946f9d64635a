"""sleet: shared-memory channels, topics and a key-value store between
processes on one Linux machine, shared with C++ processes.

    import sleet
    ch = sleet.Channel.open_or_create("jobs")        # any process
    ch.send({"path": "/tmp/a.png", "width": 640})
    job = ch.receive(timeout=1.0)

    @ch.on_receive(filter_func=lambda m: isinstance(m, str))
    def on_text(m): ...

    store = sleet.KvStore.open_or_create("settings")
    store.set("mode", "fast"); store.get("mode")

Values that a C++ process reads too: None, bool, int (64-bit), float, str,
bytes, and lists, tuples and dicts of those (sleet::Dynamic in C++); typed
channels (type=str, int, float, bytes, sleet.Message) are C++'s
Channel<std::string>, <std::int64_t>, <double>, <std::vector<std::uint8_t>>
and <sleet::Message>. Other objects travel pickled only on objects opened
with pickle=True: unpickling runs code chosen by the sender, so enable it
only between processes that trust each other.

Blocking calls release the GIL and wake every 20 ms to let Ctrl-C
(KeyboardInterrupt) through. Errors are sleet.Error subclasses carrying the
C++ errc as ``.code``.
"""

from . import _sleet
from ._errors import *  # noqa: F401,F403
from ._errors import Error
from ._message import Message, Opaque
from ._messaging import Channel, Pipe, Subscriber, Topic, get_channel, list_channels
from ._store import KvStore
from ._manager import ProcessManager
from ._sync import Event, Mutex, Semaphore, SharedValue
from . import this_process

_sleet._init(Message, __import__("sleet._errors", fromlist=["BY_VALUE"]).BY_VALUE)

__all__ = [
    "Channel", "Pipe", "Topic", "Subscriber", "KvStore", "ProcessManager", "Message", "Opaque",
    "Mutex", "Semaphore", "Event", "SharedValue",
    "get_channel", "list_channels", "this_process", "Error",
]
