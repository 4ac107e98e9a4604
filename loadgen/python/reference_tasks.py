"""The task functions every loadgen workload runs: on the platform (functions.py serializes
them by value with dill: loadgen runs this file's text followed by functions.py as one
script, so they live in __main__) and on the reference targets (reference.py imports this
module, so every target's serializer sends them by reference, by module and name). One
definition for both, so the platform and its references run exactly the same code.

Every task gets one bytes argument `arg` of `arg_bytes` bytes, plus what its function needs.
Imports go inside the functions: a function pickled by value takes no module globals along.
"""


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


TASKS = {"noop": noop, "sleep": sleep, "cpu": cpu, "payload": payload}
