#!/usr/bin/env python3
"""Python talking to a C++ process: a Python ProcessManager starts the C++
program cpp_worker (examples/python/cpp_worker.cpp, built as
build/python/cpp_worker) and exchanges sleet.Message with it; then a
Channel of sleet::Dynamic shows that dicts and lists read the same in C++.

    PYTHONPATH=build/python /usr/bin/python3 examples/python/cpp_example.py build/python/cpp_worker
"""

import sys

import sleet


def main(worker):
    with sleet.ProcessManager() as pm:
        pm.add_target("summer", [worker])
        pm.start("summer")
        for topic, numbers in (("small", {"a": 1, "b": 2}), ("big", {"x": 10**12, "y": 5})):
            pm.send("summer", sleet.Message(topic, **numbers))
            reply = pm.receive("summer", timeout=30)
            print("%s: sum %d computed by %s" % (reply["of"], reply["sum"], reply["by"]))
        pm.send("summer", sleet.Message("quit"))
        print("C++ worker exited with", pm.wait("summer", timeout=30))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "build/python/cpp_worker")
