"""The examples in examples/python run and print what they promise."""

import os
import subprocess
import sys

import pytest

EXAMPLES = os.environ.get("SLEET_PYTHON_EXAMPLES")


def run(*args):
    if not EXAMPLES:
        pytest.skip("SLEET_PYTHON_EXAMPLES is not set (ctest sets it)")
    out = subprocess.run([sys.executable, os.path.join(EXAMPLES, args[0])] + list(args[1:]), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_channel_example():
    assert run("channel_example.py") == [
        "hello, main", "1 squared is 1", "2 squared is 4", "3 squared is 9", "worker exited with 0"]


def test_storage_example():
    lines = run("storage_example.py")
    assert "child reads mode = fast" in lines
    assert "parent got news: hello from the child" in lines
    assert "parent reads {'pid': 'child', 'tags': ['a', 'b']}" in lines
    assert "keys: ['child-was-here', 'mode']" in lines


def test_cpp_example():
    worker = os.environ.get("SLEET_CPP_WORKER")
    if not worker:
        pytest.skip("SLEET_CPP_WORKER is not set (ctest sets it)")
    assert run("cpp_example.py", worker) == [
        "small: sum 3 computed by c++", "big: sum 1000000000005 computed by c++", "C++ worker exited with 0"]
