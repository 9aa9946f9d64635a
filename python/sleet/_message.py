"""Message (sleet::Message) and Opaque (a store value Python cannot read)."""

import collections


class Message(dict):
    """A topic plus named fields, each None, bool, int, float or str: the C++
    sleet::Message, the message type of a ProcessManager's channels.

        m = sleet.Message("resize", path="/tmp/a.png", width=640)
        m.topic, m["width"]
    """

    __slots__ = ("topic",)

    def __init__(self, topic="", /, *args, **fields):
        super().__init__(*args, **fields)
        self.topic = topic

    def __repr__(self):
        return "Message(%r, %s)" % (self.topic, dict.__repr__(self))

    def __eq__(self, other):
        if isinstance(other, Message):
            return self.topic == other.topic and dict.__eq__(self, other)
        return dict.__eq__(self, other)

    __hash__ = None

    def __reduce__(self):
        return (Message, (self.topic, dict(self)))


Opaque = collections.namedtuple("Opaque", "type_name data")
Opaque.__doc__ = "A store value of a C++ type Python has no mapping for: its type name and encoded bytes."
