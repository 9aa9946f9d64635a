"""The managed child's view of itself: its name and its two channels."""

from . import _sleet
from ._messaging import Channel, Pipe

_tp = _sleet.this_process
_active = None
_passive = None


def managed():
    """True in a process a ProcessManager started."""
    return _tp.managed()


def name():
    """This target's name (sleet.NotManaged outside a managed child)."""
    return _tp.name()


def active_channel():
    """The child's end of ``{name}-active``: receive() what the manager
    send()s, send() replies it receive()s."""
    global _active
    if _active is None:
        impl = _tp.active_channel()
        _active = Pipe(impl, "message", "pipe '%s'" % impl.name)
    return _active


def passive_channel():
    """``{name}-passive``: use on_receive(filter_func=...) for what is post()ed."""
    global _passive
    if _passive is None:
        impl = _tp.passive_channel()
        _passive = Channel(impl, "message", "channel '%s'" % impl.name)
    return _passive


def request_stop(reason=""):
    _tp.request_stop(reason)


def request_restart(reason=""):
    _tp.request_restart(reason)
