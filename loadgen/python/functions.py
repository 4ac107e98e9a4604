"""The functions loadgen experiments run, serialized with dill by the executors' own Python.

Run as a script (so dill pickles the functions by value, like a user's __main__ functions):
reads one JSON request on stdin, prints {"function": base64, "params": base64}.
Every task gets one bytes argument of `arg_bytes` bytes, plus what its function needs.
"""
import codecs
import json
import sys

import dill


def noop(arg):
    return None


def sleep(arg, seconds):
    import time
    time.sleep(seconds)
    return seconds


def cpu(arg, n):
    return sum(range(n))


def payload(arg, size):
    return b"x" * size


def main():
    request = json.load(sys.stdin)
    kind = request["function"]
    arg = b"a" * request.get("arg_bytes", 0)
    extra = {
        "noop": (),
        "sleep": (request.get("sleep_s", 0.0),),
        "cpu": (request.get("cpu_n", 0),),
        "payload": (request.get("result_bytes", 0),),
    }[kind]
    function = {"noop": noop, "sleep": sleep, "cpu": cpu, "payload": payload}[kind]
    encode = lambda obj: codecs.encode(dill.dumps(obj), "base64").decode()
    print(json.dumps({"function": encode(function), "params": encode(((arg,) + extra, {}))}))


if __name__ == "__main__":
    main()
