"""FaaS executor runtime: runs tasks for its Rust parent, one at a time, over a framed pipe.

Started as ``python -c "...import faas_executor; faas_executor.main()"`` so ``__main__`` (which
dill binds users' ``__main__`` functions to) holds nothing of ours.

Protocol, both directions: a 4-byte big-endian length, then a UTF-8 JSON object.

- executor -> parent, once at start: {"ready": true, "pid", "python", "dill"}
- parent -> executor: {"task_id", "function_id", "function": base64 | null, "params": base64}
  ("function" may be null when the parent believes this executor has the function cached)
- executor -> parent: {"task_id", "outcome": "completed" | "raised" | "need_function" |
  "too_large", "result": base64 (dill of the value or of the exception), "started_at",
  "finished_at" (us), "retire": bool}; for "too_large" (the base64 is longer than the limit
  the parent passed as argv[2]) "result" is null and "size" the base64's length; "retire"
  asks the parent for a fresh executor (the task left threads running here)

The protocol uses private copies of fds 0 and 1; fd 0 then reads /dev/null and fd 1 goes to
fd 2, so nothing a user's function prints or writes to fd 1/2 can corrupt the protocol.

A task's answer is its own: a process forked by a function loses the protocol descriptors at
the fork and never reaches the reply (it exits where the executor would answer), and before
each answer every process the function left behind is killed: in a sandbox (a PID namespace
of its own) every other process there; elsewhere its children and the daemons that left
with ``setsid`` (this process is their subreaper). A task that leaves
threads behind retires its executor. The parent checks each answer's task id as well. The
function still runs in this process, so it can tamper with this runtime for the executor's
later tasks; only a process per task would prevent that.
"""

import base64
import collections
import ctypes
import json
import os
import pickle
import signal
import struct
import sys
import threading
import time
import traceback

_FUNCTION_CACHE_SIZE = 256
_HEADER = struct.Struct(">I")
_PR_SET_CHILD_SUBREAPER = 36
# Whether this process runs in a PID namespace of its own (a sandbox): every other process
# there that it may signal is then the task's. Set from the parent's arguments at start.
_SANDBOXED = False
_PR_SET_NO_NEW_PRIVS = 38


def main():
    """Arguments after the runtime's directory: the longest result (base64 bytes), the uid
    to become ("" to stay), and "sandboxed" when in a PID namespace of its own."""
    global _SANDBOXED
    max_result = int(sys.argv[2])
    if sys.argv[3]:
        _become(int(sys.argv[3]))
    _SANDBOXED = sys.argv[4] == "sandboxed"
    proto_in, proto_out = _take_protocol_fds()
    owner = os.getpid()
    _forget_protocol_at_fork(proto_in, proto_out)
    _become_subreaper()
    import faulthandler

    faulthandler.enable()  # a segfault leaves a Python traceback in the parent's log
    import dill

    _send(proto_out, {
        "ready": True,
        "pid": os.getpid(),
        "python": "%d.%d.%d" % sys.version_info[:3],
        "dill": dill.__version__,
    })
    cache = collections.OrderedDict()
    reader = _Reader(proto_in)
    while True:
        request = reader.recv()
        if request is None:
            return  # the parent closed the pipe: it is gone or wants us gone
        reply = _run(dill, cache, request)
        if os.getpid() != owner:
            os._exit(0)  # a fork of the function's came back here: it has nothing to say
        _flush_user_output()
        _kill_leftovers()
        reply["retire"] = threading.active_count() > 1
        result = reply["result"]
        if result is not None and len(result) > max_result:
            reply.update(outcome="too_large", result=None, size=len(result))
        _send(proto_out, reply)


def _take_protocol_fds():
    proto_in = os.dup(0)  # dup'd descriptors are non-inheritable: user subprocesses
    proto_out = os.dup(1)  # never hold the protocol pipe open
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    return proto_in, proto_out


def _become(uid):
    """Drops root for good before any task runs: no groups, the unprivileged uid and gid,
    and no way back (no setuid binaries either)."""
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")


def _forget_protocol_at_fork(*fds):
    """Closes the protocol descriptors in every child forked from Python (os.fork,
    multiprocessing), so that no copy of this process can read requests or answer them."""
    def close_in_child():
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
    os.register_at_fork(after_in_child=close_in_child)


def _become_subreaper():
    """Makes orphaned descendants (a daemon that double-forked, a ``setsid`` child whose
    parent exited) children of this process instead of init, so _kill_leftovers finds them."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    except OSError as exc:
        print("faas executor: cannot adopt orphaned processes (%s); daemons a function "
              "leaves may outlive its task" % exc, file=sys.stderr)


def _children():
    """The pids of this process's children (of every thread), reaped or not."""
    found = []
    try:
        threads = os.listdir("/proc/self/task")
    except OSError:
        return found
    for tid in threads:
        try:
            with open("/proc/self/task/%s/children" % tid) as f:
                found.extend(int(pid) for pid in f.read().split())
        except OSError:
            continue
    return found


def _kill_leftovers():
    """Kills and reaps every process the task left running. In a sandbox one kill(-1) reaches
    every other process there this one may signal (all the task's: the namespace's init is
    spared), whatever its parent; elsewhere, killing a child orphans its own children onto
    this subreaper, so repeat until none is left."""
    if _SANDBOXED:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return
    while True:
        children = _children()
        if not children:
            break
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for _ in children:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break


def _run(dill, cache, request):
    task_id = request["task_id"]
    started = _now_us()

    def reply(outcome, result=None):
        return {"task_id": task_id, "outcome": outcome, "result": result,
                "started_at": started, "finished_at": _now_us()}

    function_id = request["function_id"]
    fn = cache.get(function_id)
    if fn is None:
        body = request.get("function")
        if body is None:
            return reply("need_function")
        try:
            fn = dill.loads(base64.b64decode(body))
        except BaseException as exc:  # noqa: BLE001 - any failure is the user's to see
            return reply("raised", _serialize_exception(dill, exc))
        cache[function_id] = fn
        if len(cache) > _FUNCTION_CACHE_SIZE:
            cache.popitem(last=False)
    else:
        cache.move_to_end(function_id)

    try:
        args, kwargs = _unpack_params(dill.loads(base64.b64decode(request["params"])))
        if not callable(fn):
            raise TypeError("the registered object of type %s is not callable"
                            % type(fn).__name__)
        value = fn(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - SystemExit and friends included
        return reply("raised", _serialize_exception(dill, exc, skip_frames=1))

    try:
        data = _dumps_result(dill, value)
    except BaseException as exc:  # noqa: BLE001
        error = TypeError("the function returned a %s, which cannot be serialized: %s"
                          % (type(value).__name__, exc))
        return reply("raised", _serialize_exception(dill, error))
    return reply("completed", base64.b64encode(data).decode("ascii"))


def _dumps_result(dill, value):
    """The C pickler where it can (the same bytes dill writes for plain data, 10 to 60 times
    faster), dill for what only dill can serialize (lambdas, closures, classes made at run
    time). Either way the client reads it with dill.loads."""
    try:
        return pickle.dumps(value, protocol=dill.settings["protocol"])
    except Exception:  # noqa: BLE001 - PicklingError, TypeError, AttributeError...
        return dill.dumps(value)


def _unpack_params(params):
    if (isinstance(params, (tuple, list)) and len(params) == 2
            and isinstance(params[0], (tuple, list)) and isinstance(params[1], dict)):
        return params[0], params[1]
    raise TypeError("task parameters must be an (args, kwargs) pair such as ((1, 2), {}), "
                    "got %s" % type(params).__name__)


def _serialize_exception(dill, exc, skip_frames=0):
    """base64(dill(exc)) carrying the remote traceback text in ``__notes__``. Falls back to a
    RuntimeError with the same text when the exception does not survive a round trip (for
    example a custom exception whose __init__ takes extra arguments)."""
    tb = exc.__traceback__
    for _ in range(skip_frames):
        if tb is not None:
            tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    note = "Remote traceback (FaaS executor pid %d):\n%s" % (os.getpid(), text)
    try:
        _add_note(exc, note)
        data = dill.dumps(exc)
        dill.loads(data)
    except BaseException:  # noqa: BLE001
        fallback = RuntimeError("%s: %s" % (type(exc).__qualname__, exc))
        _add_note(fallback, note)
        data = dill.dumps(fallback)
    return base64.b64encode(data).decode("ascii")


def _add_note(exc, note):
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    else:  # before 3.11 notes are not printed, but stay readable as an attribute
        exc.__notes__ = list(getattr(exc, "__notes__", [])) + [note]


def _flush_user_output():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a user may have closed or replaced them
            pass


def _now_us():
    return time.time_ns() // 1000


class _Reader:
    """Frames from the protocol pipe, read in large chunks: a frame usually arrives whole, in
    one read, where reading its header and then its body took two system calls."""

    def __init__(self, fd):
        self.fd = fd
        self.buffer = bytearray()

    def recv(self):
        header = self._take(_HEADER.size)
        if header is None:
            return None
        (length,) = _HEADER.unpack(header)
        body = self._take(length)
        if body is None:
            return None
        return json.loads(body)

    def _take(self, n):
        while len(self.buffer) < n:
            chunk = os.read(self.fd, max(n - len(self.buffer), 1 << 16))
            if not chunk:
                return None
            self.buffer += chunk
        taken = bytes(self.buffer[:n])
        del self.buffer[:n]
        return taken


def _send(fd, message):
    body = json.dumps(message, separators=(",", ":")).encode("utf-8")
    view = memoryview(_HEADER.pack(len(body)) + body)
    while view:
        written = os.write(fd, view)
        view = view[written:]
