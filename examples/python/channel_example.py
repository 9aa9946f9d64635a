#!/usr/bin/env python3
"""The host's channel example: a main process and a child, the child
handling passive messages with a filter and receiving actively.

    PYTHONPATH=build/python /usr/bin/python3 examples/python/channel_example.py
"""

import time

import sleet


def child():
    active = sleet.this_process.active_channel()  # {name}-active: the conversation
    passive = sleet.this_process.passive_channel()  # {name}-passive: handled as it comes

    @passive.on_receive(filter_func=lambda m: m.topic == "greeting")
    def on_greeting(m):
        active.send(sleet.Message("greeted", text="hello, " + m["who"]))

    for job in active:  # active mode: receive until the channel is closed
        if job.topic == "quit":
            return 0
        active.send(sleet.Message("result", n=job["n"], square=job["n"] ** 2))
    return 0


def main():
    with sleet.ProcessManager() as pm:
        pm.add_target("worker", child)
        pm.start_all()
        pm.post("worker", sleet.Message("noise"))  # the filter lets it pass by
        pm.post("worker", sleet.Message("greeting", who="main"))
        print(pm.receive("worker", timeout=30)["text"])
        for n in range(1, 4):
            pm.send("worker", sleet.Message("job", n=n))
            reply = pm.receive("worker", timeout=30)
            print("%d squared is %d" % (reply["n"], reply["square"]))
        pm.send("worker", sleet.Message("quit"))
        print("worker exited with", pm.wait("worker", timeout=30))


if __name__ == "__main__":
    main()
