#!/usr/bin/env python3
"""The host's storage example: set/get from any process, publish/subscribe.

    PYTHONPATH=build/python /usr/bin/python3 examples/python/storage_example.py
"""

import multiprocessing
import os
import threading

import sleet

STORE = "example-store-%d" % os.getpid()
NEWS = "example-news-%d" % os.getpid()


def other_process(store, news):
    kv = sleet.KvStore.open(store)
    print("child reads mode =", kv.get("mode"))  # no round trip to the parent
    kv.set("child-was-here", {"pid": "child", "tags": ["a", "b"]})
    kv.publish(news, {"text": "hello from the child"})


def main():
    kv = sleet.KvStore.create(STORE)
    try:
        kv.set("mode", "fast")
        got = threading.Event()

        @kv.on_subscriber_receive(NEWS)
        def on_news(data):
            print("parent got news:", data["text"])
            got.set()

        p = multiprocessing.get_context("spawn").Process(target=other_process, args=(STORE, NEWS))
        p.start()
        p.join()
        got.wait(30)
        print("parent reads", kv.get("child-was-here"))
        print("keys:", sorted(kv.get_all()))
        kv.close()
    finally:
        sleet.KvStore.remove(STORE)
        sleet.Topic.remove(NEWS)


if __name__ == "__main__":
    main()
