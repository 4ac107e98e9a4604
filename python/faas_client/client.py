"""Synchronous client for the FaaS REST API.

Wire format: functions, arguments and results travel as
``base64(dill.dumps(obj))`` strings; arguments are ``((args...), {kwargs})``.
"""

import builtins
import codecs
import os
import sys
import threading
import time
import types

import dill
import requests

from .errors import FaaSError, IncompatibleEnvironment, TaskCancelled, TaskFailed, WorkerFailure

#: Statuses after which a task never changes again.
FINAL_STATUSES = ("COMPLETED", "FAILED")
#: Longest single long poll (``?wait=``) the client asks for, in seconds.
MAX_POLL = 30.0
#: Items per ``/execute_batch`` request.
BATCH_SIZE = 1000
#: Answers after which an idempotent request is sent again: the gateway or a proxy in front
#: of it is restarting, overloaded or cannot reach Redis for a moment.
RETRY_STATUSES = (502, 503, 504)
#: Attempts of an idempotent request in all, and the first pause between two (doubled each
#: time, at most 2 s).
RETRY_ATTEMPTS = 5
RETRY_FIRST_PAUSE = 0.1
#: The gateway's address when neither the caller nor ``FAAS_URL`` names one.
DEFAULT_URL = "http://127.0.0.1:8000"


def configured(url=None, token=None):
    """The gateway's URL and bearer token: as given, else from the environment
    (``FAAS_URL``, ``FAAS_AUTH_TOKEN``, the names the server side uses), else the local
    default and no token."""
    if url is None:
        url = os.environ.get("FAAS_URL") or DEFAULT_URL
    if token is None:
        token = os.environ.get("FAAS_AUTH_TOKEN") or None
    return url, token


def serialize(obj):
    """``base64(dill.dumps(obj))`` as text, the API's payload encoding."""
    return codecs.encode(dill.dumps(obj), "base64").decode()


def serialize_function(fn):
    """Serialize ``fn`` with its referenced globals (``recurse=True``), falling back
    to plain ``dill.dumps`` when recursion blows the stack."""
    try:
        data = dill.dumps(fn, recurse=True)
    except RecursionError:
        data = dill.dumps(fn)
    return codecs.encode(data, "base64").decode()


def deserialize(text):
    """Inverse of :func:`serialize`."""
    return dill.loads(codecs.decode(text.encode(), "base64"))


def _major_minor(version):
    """``"0.4.1"`` or ``(3, 11, 7)`` -> ``(0, 4)`` / ``(3, 11)``."""
    if isinstance(version, str):
        version = version.split(".")
    parts = []
    for part in list(version)[:2]:
        digits = "".join(c for c in str(part) if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _version_probe():
    """Runs on a worker: report its Python and dill versions. Imports are local so
    dill ships the function by value with no dependency on this package."""
    import sys as _sys

    import dill as _dill

    return tuple(_sys.version_info[:3]), _dill.__version__


def _standalone_probe():
    """A copy of :func:`_version_probe` with empty globals: dill cannot find it by
    import, so it ships by value and the worker needs no ``faas_client``."""
    return types.FunctionType(_version_probe.__code__, {"__builtins__": builtins},
                              "faas_client_version_probe")


def outcome(task_id, body):
    """Turn a final ``/result`` body into a value, or raise the task's failure.

    COMPLETED -> the deserialized value. FAILED -> re-raise the deserialized
    exception; the server's dynamically built ``WorkerFailure`` and ``TaskCancelled``
    become :class:`faas_client.WorkerFailure` and :class:`faas_client.TaskCancelled`
    (chained ``from`` the original); anything
    that is not an exception raises :class:`TaskFailed`.
    """
    status, payload = body.get("status"), body.get("result")
    if status == "COMPLETED":
        return deserialize(payload) if payload is not None else None
    if status != "FAILED":
        raise ValueError(f"task {task_id} is not final (status {status!r})")
    if payload is None:
        raise TaskFailed(task_id, "no result payload")
    try:
        exc = deserialize(payload)
    except Exception as err:  # e.g. the exception's class is not importable locally
        raise TaskFailed(task_id, f"cannot deserialize the failure: {err!r}", payload) from err
    if isinstance(exc, BaseException):
        if type(exc).__name__ == "WorkerFailure":
            raise WorkerFailure(str(exc), task_id) from exc
        if type(exc).__name__ == "TaskCancelled":
            raise TaskCancelled(str(exc), task_id) from exc
        raise exc
    raise TaskFailed(task_id, f"failure payload is not an exception: {exc!r}", exc)


class Client:
    """Client for one FaaS server.

    :param url: base URL of the gateway (default: ``FAAS_URL``, else
        ``http://127.0.0.1:8000``).
    :param token: optional bearer token (``Authorization: Bearer <token>``; default:
        ``FAAS_AUTH_TOKEN``, else none).
    :param timeout: HTTP timeout in seconds for ordinary requests (long polls get
        this on top of their wait).
    :param check_versions: run :meth:`check_compatibility` before the first
        registration (recommended: dill pickles are not portable across minor
        Python versions).

    Not thread-safe (one ``requests.Session``); use one client per thread or
    :class:`faas_client.FaaSExecutor`.
    """

    def __init__(self, url=None, token=None, timeout=30, check_versions=True):
        url, token = configured(url, token)
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.check_versions = check_versions
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self._functions = {}  # id(fn) -> (fn, function_id); fn kept alive so id() stays unique
        self._compat = None  # cached check_compatibility() outcome: dict or exception
        self._compat_lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------------

    def _request(self, method, path, json=None, params=None, timeout=None):
        """One API call. Reads (GET) are sent again, with a growing pause, after a 502, 503
        or 504 or a failed connection, up to :data:`RETRY_ATTEMPTS` times; a submission or a
        cancellation is sent once, since repeating it could run a task twice or answer 409."""
        attempts = RETRY_ATTEMPTS if method == "GET" else 1
        pause = RETRY_FIRST_PAUSE
        for attempt in range(1, attempts + 1):
            try:
                resp = self.session.request(
                    method, self.url + path, json=json, params=params,
                    timeout=self.timeout if timeout is None else timeout,
                )
            except requests.ConnectionError:
                if attempt == attempts:
                    raise
            else:
                if resp.status_code not in RETRY_STATUSES or attempt == attempts:
                    break
            time.sleep(pause)
            pause = min(pause * 2, 2.0)
        if resp.status_code >= 400:
            try:
                message = resp.json().get("error", resp.text)
            except ValueError:
                message = resp.text
            raise FaaSError(resp.status_code, message)
        return resp.json()

    def close(self):
        """Close the HTTP session."""
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- functions --------------------------------------------------------------------

    def register(self, fn, name=None):
        """Register ``fn`` and return its ``function_id`` (always a new registration;
        :meth:`submit` caches). Checks environment compatibility first, once per client."""
        if self.check_versions:
            self.check_compatibility()
        return self._register(fn, name)

    def _register(self, fn, name=None):
        name = name or getattr(fn, "__name__", None) or "function"
        body = self._request("POST", "/register_function",
                             json={"name": name, "payload": serialize_function(fn)})
        return body["function_id"]

    def _function_id(self, fn_or_id):
        """A function id for ``fn_or_id``: strings pass through, callables are
        registered once per client (cached by object identity)."""
        if isinstance(fn_or_id, str):
            return fn_or_id
        if not callable(fn_or_id):
            raise TypeError(f"expected a callable or a function id, got {fn_or_id!r}")
        cached = self._functions.get(id(fn_or_id))
        if cached is None:
            cached = (fn_or_id, self.register(fn_or_id))
            self._functions[id(fn_or_id)] = cached
        return cached[1]

    def check_compatibility(self, timeout=60):
        """Run a probe on a worker and compare its Python and dill versions with ours.

        Returns ``{"local": {...}, "remote": {...}}``. Raises
        :class:`IncompatibleEnvironment` when Python major.minor or dill major.minor
        differ, or when the probe itself fails on the worker. The outcome is cached
        per client (success and failure alike); server/HTTP errors are not cached.
        """
        with self._compat_lock:
            if self._compat is None:
                self._compat = self._probe(timeout)
            if isinstance(self._compat, Exception):
                raise self._compat
            return self._compat

    def _probe(self, timeout):
        local_py, local_dill = tuple(sys.version_info[:3]), dill.__version__
        local = f"Python {'.'.join(map(str, local_py))}, dill {local_dill}"
        task_id = self.submit(self._register(_standalone_probe(), "faas_client_version_probe"))
        try:
            remote_py, remote_dill = self.result(task_id, timeout=timeout)
        except Exception as err:
            if isinstance(err, (FaaSError, TimeoutError, requests.RequestException)):
                raise  # infrastructure trouble: not a verdict, do not cache
            exc = IncompatibleEnvironment(
                f"the version probe failed on the worker ({type(err).__name__}: {err}); "
                f"local {local} may be incompatible with the workers")
            exc.__cause__ = err
            return exc
        remote = f"Python {'.'.join(map(str, remote_py))}, dill {remote_dill}"
        if (_major_minor(remote_py) != _major_minor(local_py)
                or _major_minor(remote_dill) != _major_minor(local_dill)):
            return IncompatibleEnvironment(
                f"workers run {remote} but this client runs {local}; Python and dill "
                "major.minor versions must match for dill payloads to be exchanged "
                "(pass check_versions=False to skip this check)")
        return {"local": {"python": local_py, "dill": local_dill},
                "remote": {"python": tuple(remote_py), "dill": remote_dill}}

    # -- tasks ------------------------------------------------------------------------

    def submit(self, fn_or_id, *args, **kwargs):
        """Execute ``fn_or_id(*args, **kwargs)`` remotely; returns the ``task_id``."""
        body = self._request("POST", "/execute_function", json={
            "function_id": self._function_id(fn_or_id), "payload": serialize((args, kwargs))})
        return body["task_id"]

    def submit_many(self, fn_or_id, iterable_of_args):
        """Submit one task per item via ``/execute_batch`` (chunks of 1000); returns the
        task ids in order. Each item is a tuple of positional arguments; any other
        item is passed as a single argument."""
        function_id = self._function_id(fn_or_id)
        payloads = [serialize((a if isinstance(a, tuple) else (a,), {}))
                    for a in iterable_of_args]
        task_ids = []
        for start in range(0, len(payloads), BATCH_SIZE):
            body = self._request("POST", "/execute_batch", json={
                "function_id": function_id, "payloads": payloads[start:start + BATCH_SIZE]})
            task_ids.extend(body["task_ids"])
        return task_ids

    def status(self, task_id):
        """Current status: ``QUEUED``, ``RUNNING``, ``COMPLETED`` or ``FAILED``."""
        return self._request("GET", f"/status/{task_id}")["status"]

    def cancel(self, task_id):
        """Cancel a task that is not final (``POST /cancel/{id}``): a queued one never runs,
        a running one's executor is stopped; its result becomes :class:`TaskCancelled`.
        Returns the status it had (``QUEUED`` or ``RUNNING``); raises :class:`FaaSError`
        with status 409 if it was already final, 404 if there is no such task."""
        return self._request("POST", f"/cancel/{task_id}")["previous_status"]

    def poll(self, task_id, wait=0.0):
        """One ``GET /result/{id}?wait=`` call; returns the raw body
        ``{"task_id", "status", "result"}``."""
        wait = max(0.0, min(float(wait), 60.0))
        params = {"wait": f"{wait:.3f}"} if wait > 0 else None
        return self._request("GET", f"/result/{task_id}", params=params,
                             timeout=self.timeout + wait)

    def result(self, task_id, timeout=None):
        """Wait for the task (long polling, at most 30 s per request) and return its
        value; re-raise its exception if it FAILED (:class:`WorkerFailure` for
        platform failures); ``TimeoutError`` after ``timeout`` seconds (None: forever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = MAX_POLL if deadline is None else deadline - time.monotonic()
            body = self.poll(task_id, min(max(remaining, 0.0), MAX_POLL))
            if body["status"] in FINAL_STATUSES:
                return outcome(task_id, body)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"task {task_id} still {body['status']} after {timeout} s")

    def map(self, fn, *iterables, timeout=None):
        """Like the built-in ``map`` but remote: submits everything at once (batched)
        and returns an iterator of results in input order; ``timeout`` bounds the
        whole iteration from the call. Raises the first failing task's exception."""
        task_ids = self.submit_many(fn, zip(*iterables))
        deadline = None if timeout is None else time.monotonic() + timeout

        def results():
            for task_id in task_ids:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                yield self.result(task_id, timeout=left)

        return results()

    # -- misc -------------------------------------------------------------------------

    def task(self, task_id):
        """The task's timeline (timestamps in µs since the epoch)."""
        return self._request("GET", f"/task/{task_id}")

    def health(self):
        """``GET /health``; returns the body (``{"status": "ok"}``) or raises."""
        return self._request("GET", "/health")
