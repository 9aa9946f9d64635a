"""ProcessManager: named child processes, each with its own channels."""

import atexit
import os
import sys
import weakref

from . import _sleet

_HOOKS = ("before_start", "after_start", "before_shutdown", "before_restart")

# The child's first lines: the parent's sys.path, then sleet._child.main.
_BOOTSTRAP = "import sys; sys.path[:0] = sys.argv[1].split({sep!r}); import sleet._child; sleet._child.main(sys.argv[2:])"


class ProcessManager:
    """Starts named children and keeps them running (restart policies),
    each with two channels: ``{name}-active`` (a Pipe of sleet.Message: the
    conversation, send() / receive()) and ``{name}-passive`` (a Channel of
    sleet.Message, post(), for the child's on_receive handlers). A child
    reaches its own with sleet.this_process.active_channel() /
    passive_channel().

    A target is a function (run in a new interpreter, like
    multiprocessing's spawn: it must be importable, at module level; it
    returns the exit code or None for 0) or an argv list (exec'd: any
    program, e.g. a C++ one using sleet::this_process).

    Hooks are decorators: @pm.before_start, @pm.after_start (name, pid),
    @pm.before_shutdown, @pm.before_restart; they run on the manager's
    supervisor thread.
    """

    def __init__(self):
        self._hooks = {h: [] for h in _HOOKS}
        self._impl = _sleet.ProcessManager(self._on_event)
        ref = weakref.ref(self)
        atexit.register(lambda: ref() is not None and ref().close())

    def _on_event(self, event, name, pid):
        for fn in self._hooks[event]:
            if event == "after_start":
                fn(name, pid)
            else:
                fn(name)

    def __getattr__(self, attr):
        if attr in _HOOKS:
            def register(fn):
                self._hooks[attr].append(fn)
                return fn
            return register
        raise AttributeError(attr)

    def add_target(self, name, target, *, restart="never", max_restarts=5, backoff=0.1, stop_grace=2.0,
                   channel_capacity=64, max_message_size=16384):
        """Adds a target: a function or an argv list. restart: "never",
        "on_failure" or "always"; backoff and stop_grace in seconds."""
        if callable(target):
            argv = [sys.executable, "-c", _BOOTSTRAP.format(sep=os.pathsep), os.pathsep.join(sys.path)]
            argv += _function_ref(target)
        else:
            argv = [str(a) for a in target]
            if not argv:
                raise ValueError("ProcessManager: target '%s': empty argv" % name)
        self._impl.add_target(name, argv, restart, max_restarts, backoff, stop_grace, channel_capacity,
                              max_message_size)

    def start(self, name):
        self._impl.start(name)

    def start_all(self):
        self._impl.start_all()

    def stop(self, name, grace=None):
        """SIGTERM, SIGKILL after ``grace`` seconds; returns once it is reaped."""
        self._impl.stop(name, grace)

    def stop_all(self):
        self._impl.stop_all()

    def restart(self, name):
        self._impl.restart(name)

    def is_alive(self, name):
        return self._impl.is_alive(name)

    def wait(self, name, timeout=None):
        """Waits until the target ended for good; its exit status (code, or
        128 + signal). sleet.Timeout after ``timeout`` seconds."""
        return self._impl.wait(name, timeout)

    def status(self, name):
        """dict: name, state, pid, restarts, exit_code, exit_signal, error."""
        return self._impl.status(name)

    def targets(self):
        return self._impl.targets()

    def active_channel_name(self, name):
        return self._impl.active_channel_name(name)

    def passive_channel_name(self, name):
        return self._impl.passive_channel_name(name)

    def send(self, name, message):
        """To the child's active channel (a sleet.Message or a dict)."""
        self._impl.send(name, message)

    def post(self, name, message):
        """To the child's passive channel (its on_receive handlers)."""
        self._impl.post(name, message)

    def receive(self, name, timeout=None):
        """The child's next message. sleet.Timeout after ``timeout`` seconds;
        sleet.PeerDead once it ended and everything it sent was read."""
        return self._impl.receive(name, timeout)

    def try_receive(self, name):
        return self._impl.try_receive(name)

    def close(self):
        """Stops every child and the supervisor."""
        self._impl.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _function_ref(fn):
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    if module is None or "<" in qualname:
        raise ValueError("ProcessManager: %r is not importable (define it at module level)" % (fn,))
    if module == "__main__":
        path = getattr(sys.modules["__main__"], "__file__", None)
        if path is None:
            raise ValueError("ProcessManager: %r lives in an interactive __main__; put it in a module" % (fn,))
        return ["file", os.path.abspath(path), qualname]
    return ["module", module, qualname]
