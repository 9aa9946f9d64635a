"""Fixtures of the sleet Python tests: unique names, /dev/shm cleanup, the
C++ peer."""

import glob
import itertools
import os

import pytest

import sleet

PREFIX = "py.%d." % os.getpid()
_counter = itertools.count()


def _ours():
    # Our names, and the channels of the ProcessManagers this process ran
    # (their namespace is "pm-<manager pid>-<n>").
    return glob.glob("/dev/shm/sleet." + PREFIX + "*") + glob.glob("/dev/shm/sleet.pm-%d-*" % os.getpid())


@pytest.fixture
def name(request):
    """A unique object name; whatever the test leaves under it is removed
    afterwards, and the session checks that nothing was left."""
    made = []

    def make(tag="o"):
        n = "%s%s.%d" % (PREFIX, tag, next(_counter))
        made.append(n)
        return n

    yield make
    for path in _ours():
        if any(os.path.basename(path).startswith("sleet." + n) for n in made):
            os.unlink(path)


@pytest.fixture
def peer():
    path = os.environ.get("SLEET_PYTHON_PEER")
    if not path:
        pytest.skip("SLEET_PYTHON_PEER is not set (ctest sets it)")
    return path


def pytest_sessionfinish(session, exitstatus):
    left = _ours()
    for path in left:
        os.unlink(path)
    if left and exitstatus == 0:
        session.exitstatus = 1
        print("\nsleet tests left objects in /dev/shm: %s" % left)
