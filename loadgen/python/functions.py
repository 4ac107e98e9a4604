"""The experiment's function and arguments, serialized with dill by the executors' Python.

Run by loadgen as one script after reference_tasks.py (which defines the functions, in
__main__, so dill pickles them by value like a user's own functions): reads one JSON request
on stdin, prints {"function": base64, "params": base64}.
"""
import codecs
import json
import sys

import dill


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
    encode = lambda obj: codecs.encode(dill.dumps(obj), "base64").decode()
    print(json.dumps({"function": encode(TASKS[kind]), "params": encode(((arg,) + extra, {}))}))


if __name__ == "__main__":
    main()
