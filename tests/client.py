"""Tiny client helpers for the FaaS REST API, written the way external clients use it.

Wire format (see the README of this package):

* function payload  = ``codecs.encode(dill.dumps(fn), "base64").decode()``
* argument payload  = ``codecs.encode(dill.dumps(((args...), {kwargs})), "base64").decode()``
* result            = ``dill.loads(codecs.decode(result.encode(), "base64"))``

Functions under test are defined *inside* test functions. Their ``__module__`` is
``tests.test_conformance``, which the executor cannot import, so they must be pickled
fully by value, including the module globals they use. ``dill.dumps(fn)`` alone does not
do that (it pickles the globals as a reference to the importing module, so loading fails
with ``ModuleNotFoundError: No module named 'tests'``); ``dill.dumps(fn, recurse=True)``
does. ``recurse=True`` overflows the stack on self-referencing closures (a nested
recursive function), so for those we fall back to :func:`_detach`, which rebuilds the
function with a small, self-contained globals dict.
"""

from __future__ import annotations

import builtins
import codecs
import time
import types
import uuid
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

import dill
import requests

#: Per-request timeout (seconds) for every HTTP call, so nothing hangs.
REQUEST_TIMEOUT = 30.0

#: Statuses defined by the contract.
QUEUED = "QUEUED"
RUNNING = "RUNNING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
ALL_STATUSES = (QUEUED, RUNNING, COMPLETED, FAILED)
FINAL_STATUSES = (COMPLETED, FAILED)


# --------------------------------------------------------------------------------------
# serialization
# --------------------------------------------------------------------------------------


def b64encode(data: bytes) -> str:
    """``codecs`` base64 form used by the contract (MIME-style, with newlines)."""
    return codecs.encode(data, "base64").decode()


def b64decode(text: str) -> bytes:
    return codecs.decode(text.encode(), "base64")


def serialize(obj: Any) -> str:
    """base64(dill.dumps(obj)) in the contract's codecs form."""
    return b64encode(_dumps(obj))


def deserialize(text: str) -> Any:
    """Inverse of :func:`serialize`, exactly as a client decodes results."""
    return dill.loads(b64decode(text))


def serialize_function(fn: Callable) -> str:
    """Payload for ``POST /register_function``; safe for nested (test-local) functions."""
    return b64encode(_dumps(fn))


def serialize_args(*args: Any, **kwargs: Any) -> str:
    """Payload for ``POST /execute_function``: base64(dill.dumps(((args...), {kwargs})))."""
    return b64encode(_dumps((tuple(args), dict(kwargs))))


def _dumps(obj: Any) -> bytes:
    try:
        return dill.dumps(obj, recurse=True)
    except RecursionError:
        # dill.detect.globalvars recurses forever on self-referencing closures.
        if isinstance(obj, types.FunctionType):
            return dill.dumps(_detach(obj))
        raise


def _code_names(code: types.CodeType) -> Iterable[str]:
    """All global-ish names referenced by ``code`` and the code objects nested in it."""
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_names(const)


def _detach(fn: types.FunctionType, _memo: Optional[Dict[int, Any]] = None) -> types.FunctionType:
    """Copy ``fn`` so that it no longer refers to its defining module's ``__dict__``.

    The copy gets a fresh globals dict holding only the names its code uses; closure
    cells are copied too. Functions defined in the same module as ``fn`` (found in its
    globals or closure) are detached recursively, so the whole thing pickles by value.
    Recursion through closures (``def fib(n): ... fib(n - 1)``) is handled via the memo.
    """
    memo: Dict[int, Any] = {} if _memo is None else _memo
    if id(fn) in memo:
        return memo[id(fn)]
    home = fn.__module__

    def convert(value: Any) -> Any:
        if isinstance(value, types.FunctionType) and value.__module__ == home:
            return _detach(value, memo)
        return value

    globs: Dict[str, Any] = {"__name__": home, "__builtins__": builtins}
    cells = None
    if fn.__closure__ is not None:
        cells = tuple(types.CellType() for _ in fn.__closure__)
    new = types.FunctionType(fn.__code__, globs, fn.__name__, fn.__defaults__, cells)
    memo[id(fn)] = new
    new.__kwdefaults__ = dict(fn.__kwdefaults__) if fn.__kwdefaults__ else None
    new.__qualname__ = fn.__qualname__
    new.__module__ = home
    new.__doc__ = fn.__doc__
    new.__annotations__ = dict(getattr(fn, "__annotations__", {}) or {})
    new.__dict__.update(fn.__dict__)
    for name in set(_code_names(fn.__code__)):
        if name in fn.__globals__ and not name.startswith("__"):
            globs[name] = convert(fn.__globals__[name])
    if cells is not None:
        for old_cell, new_cell in zip(fn.__closure__, cells):
            try:
                new_cell.cell_contents = convert(old_cell.cell_contents)
            except ValueError:  # empty cell
                pass
    return new


# --------------------------------------------------------------------------------------
# HTTP helpers
# --------------------------------------------------------------------------------------


def describe(resp: requests.Response, limit: int = 2000) -> str:
    """Short human-readable description of a response for assertion messages."""
    try:
        body = resp.text
    except Exception as exc:  # pragma: no cover - defensive
        body = f"<unreadable body: {exc!r}>"
    if len(body) > limit:
        body = body[:limit] + f"... [{len(body) - limit} more chars]"
    return f"{resp.request.method} {resp.url} -> HTTP {resp.status_code}, body={body!r}"


def is_uuid(value: Any) -> bool:
    """True if ``value`` is a string in canonical (hyphenated, 36 chars) UUID form."""
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def json_body(resp: requests.Response) -> Any:
    """Parse the JSON body or fail with a clear message."""
    try:
        return resp.json()
    except ValueError as exc:
        raise AssertionError(f"response body is not valid JSON ({exc}): {describe(resp)}") from None


def post_register(session: requests.Session, base_url: str, name: Any, payload: Any) -> requests.Response:
    return session.post(
        f"{base_url}/register_function",
        json={"name": name, "payload": payload},
        timeout=REQUEST_TIMEOUT,
    )


def post_execute(session: requests.Session, base_url: str, function_id: Any, payload: Any) -> requests.Response:
    return session.post(
        f"{base_url}/execute_function",
        json={"function_id": function_id, "payload": payload},
        timeout=REQUEST_TIMEOUT,
    )


def get_status(session: requests.Session, base_url: str, task_id: str) -> requests.Response:
    return session.get(f"{base_url}/status/{task_id}", timeout=REQUEST_TIMEOUT)


def get_result(session: requests.Session, base_url: str, task_id: str) -> requests.Response:
    return session.get(f"{base_url}/result/{task_id}", timeout=REQUEST_TIMEOUT)


def register(session: requests.Session, base_url: str, fn: Callable, name: Optional[str] = None) -> str:
    """Register ``fn`` and return its function_id (asserting the contract on the way)."""
    resp = post_register(session, base_url, name or fn.__name__, serialize_function(fn))
    assert resp.status_code in (200, 201), f"register_function failed: {describe(resp)}"
    body = json_body(resp)
    assert isinstance(body, dict) and is_uuid(body.get("function_id")), (
        f"register_function must return {{'function_id': <uuid>}}: {describe(resp)}"
    )
    return body["function_id"]


def execute(session: requests.Session, base_url: str, function_id: str, /, *args: Any, **kwargs: Any) -> str:
    """Execute a registered function with ``*args, **kwargs``; return the task_id."""
    resp = post_execute(session, base_url, function_id, serialize_args(*args, **kwargs))
    assert resp.status_code in (200, 201), f"execute_function failed: {describe(resp)}"
    body = json_body(resp)
    assert isinstance(body, dict) and is_uuid(body.get("task_id")), (
        f"execute_function must return {{'task_id': <uuid>}}: {describe(resp)}"
    )
    return body["task_id"]


def wait_result_body(
    session: requests.Session,
    base_url: str,
    task_id: str,
    timeout: float = 30,
    interval: float = 0.01,
) -> Dict[str, Any]:
    """Poll ``GET /result/{task_id}`` until the task is final; return the final JSON body."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        resp = get_result(session, base_url, task_id)
        assert resp.status_code == 200, f"GET /result failed while polling: {describe(resp)}"
        body = json_body(resp)
        assert isinstance(body, dict), f"GET /result must return a JSON object: {describe(resp)}"
        status = body.get("status")
        assert status in ALL_STATUSES, f"unknown status {status!r}: {describe(resp)}"
        assert body.get("task_id") == task_id, f"task_id mismatch: {describe(resp)}"
        if status in FINAL_STATUSES:
            return body
        assert body.get("result") is None, (
            f"result must be null while the task is {status}: {describe(resp)}"
        )
        last = describe(resp)
        if time.monotonic() >= deadline:
            raise AssertionError(f"task {task_id} not finished after {timeout}s; last response: {last}")
        time.sleep(interval)


def decode_result(body: Dict[str, Any]) -> Any:
    """Deserialize the ``result`` field of a final /result body."""
    result = body.get("result")
    assert isinstance(result, str), f"final result must be a base64 string, got {body!r:.2000}"
    try:
        return deserialize(result)
    except Exception as exc:
        raise AssertionError(
            f"could not deserialize result with plain dill ({type(exc).__name__}: {exc}); "
            f"body={body!r:.2000}"
        ) from exc


def wait_result(
    session: requests.Session,
    base_url: str,
    task_id: str,
    timeout: float = 30,
    interval: float = 0.01,
) -> Tuple[str, Any]:
    """Poll until COMPLETED/FAILED; return ``(status, value)`` with the result deserialized."""
    body = wait_result_body(session, base_url, task_id, timeout=timeout, interval=interval)
    return body["status"], decode_result(body)


def run(session: requests.Session, base_url: str, fn: Callable, /, *args: Any, **kwargs: Any) -> Tuple[str, Any]:
    """Register + execute + wait; convenience for one-shot tests."""
    function_id = register(session, base_url, fn)
    task_id = execute(session, base_url, function_id, *args, **kwargs)
    return wait_result(session, base_url, task_id)
