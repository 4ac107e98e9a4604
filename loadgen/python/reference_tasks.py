"""The task functions reference.py runs on the reference targets (Ray, Dask, Celery, a process pool,
a bare ZeroMQ loop): the same four as functions.py, but in an importable module, so that every
target's serializer (pickle, cloudpickle, dill) sends them by reference, by module and name.

Every task gets one bytes argument `arg` of `arg_bytes` bytes, plus what its function needs.
"""
import time


def noop(arg):
    return None


def sleep(arg, seconds):
    time.sleep(seconds)
    return seconds


def cpu(arg, n):
    return sum(range(n))


def payload(arg, size):
    return b"x" * size


TASKS = {"noop": noop, "sleep": sleep, "cpu": cpu, "payload": payload}
