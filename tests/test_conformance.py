"""Conformance tests for the Function-as-a-Service REST API.

Every function that is sent to the server is defined *inside* the test that uses it, so
that dill pickles it by value (the executor cannot import ``tests``). Functions sent to
the server must only use builtins, their own imports and closure variables -- never
names from this module (see ``tests/client.py``).
"""

from __future__ import annotations

import codecs
import concurrent.futures
import json
import os
import random
import threading
import time
import uuid

import pytest
import requests

from . import client as c
from .client import COMPLETED, FAILED, QUEUED, RUNNING, describe

MB = 1024 * 1024
LARGE_SIZE = 10 * MB

# Invalid `payload` strings for both /register_function and /execute_function.
INVALID_PAYLOADS = {
    "literal-payload": "payload",
    "base64-random-bytes": codecs.encode(random.Random(20240501).randbytes(512), "base64").decode(),
    "base64-json": codecs.encode(json.dumps({"fn": "lambda x: x", "args": [1, 2]}).encode(), "base64").decode(),
    "empty": "",
    "non-base64": "this is %%% not ### base64 !!! \u00e9\u00e8",
}


# --------------------------------------------------------------------------------------
# local assertion helpers (never sent to the server)
# --------------------------------------------------------------------------------------


def assert_4xx(resp: requests.Response, what: str) -> None:
    assert 400 <= resp.status_code < 500, f"{what}: expected a 4xx status: {describe(resp)}"


def assert_json_object(resp: requests.Response, what: str) -> dict:
    body = c.json_body(resp)
    assert isinstance(body, dict), f"{what}: expected a JSON object body: {describe(resp)}"
    return body


def assert_json_error(resp: requests.Response, what: str) -> None:
    """400 with a JSON object body carrying a non-empty "error" string."""
    assert resp.status_code == 400, f"{what}: expected HTTP 400: {describe(resp)}"
    body = assert_json_object(resp, what)
    error = body.get("error")
    assert isinstance(error, str) and error.strip(), (
        f"{what}: expected an 'error' string explaining the problem: {describe(resp)}"
    )


def assert_traceback_note(exc: BaseException, fn_name: str, body: dict) -> None:
    notes = getattr(exc, "__notes__", None)
    assert isinstance(notes, list) and notes, (
        f"remote exception must carry the remote traceback in __notes__, got {notes!r}; body={body!r:.2000}"
    )
    assert all(isinstance(n, str) for n in notes), f"__notes__ must be a list of str: {notes!r}"
    assert any(fn_name in n for n in notes), (
        f"remote traceback in __notes__ should mention {fn_name!r}: {notes!r}"
    )


def assert_worker_failure(status: str, value, body: dict, mentions=None) -> None:
    assert status == FAILED, f"expected FAILED, got {status}: value={value!r} body={body!r:.2000}"
    assert isinstance(value, BaseException), f"FAILED result must be an exception, got {value!r}"
    assert type(value).__name__ == "WorkerFailure", (
        f"expected a WorkerFailure, got {type(value).__module__}.{type(value).__qualname__}: {value!r}"
    )
    message = str(value)
    assert message.strip(), f"WorkerFailure must say what happened, got an empty message: {value!r}"
    if mentions:
        assert any(m in message.lower() for m in mentions), (
            f"WorkerFailure message should mention one of {mentions}: {message!r}"
        )


def assert_still_serving(session: requests.Session, base_url: str) -> None:
    """A fresh task on a fresh function completes correctly (the platform recovered)."""

    def after_failure(x):
        return ("alive", x + 1)

    x = random.randint(0, 10**6)
    status, value = c.run(session, base_url, after_failure, x)
    assert (status, value) == (COMPLETED, ("alive", x + 1)), (
        f"the next task after a failure did not complete correctly: status={status} value={value!r}"
    )


def run_body(session, base_url, fn, /, *args, **kwargs):
    """Register + execute + wait; return (status, value, final body)."""
    function_id = c.register(session, base_url, fn)
    task_id = c.execute(session, base_url, function_id, *args, **kwargs)
    body = c.wait_result_body(session, base_url, task_id)
    return body["status"], c.decode_result(body), body


def valid_function_payload() -> str:
    def identity(x):
        return x

    return c.serialize_function(identity)


# --------------------------------------------------------------------------------------
# registration
# --------------------------------------------------------------------------------------


def test_register_returns_uuid(session, base_url):
    def double(x):
        return x * 2

    resp = c.post_register(session, base_url, "double", c.serialize_function(double))
    assert resp.status_code in (200, 201), describe(resp)
    body = assert_json_object(resp, "register_function")
    assert c.is_uuid(body.get("function_id")), f"function_id must be a UUID: {describe(resp)}"


def test_register_twice_gives_usable_ids(session, base_url):
    def triple(x):
        return x * 3

    first = c.register(session, base_url, triple)
    second = c.register(session, base_url, triple)
    for function_id in (first, second):
        task_id = c.execute(session, base_url, function_id, 7)
        assert c.wait_result(session, base_url, task_id) == (COMPLETED, 21)


@pytest.mark.parametrize("payload", list(INVALID_PAYLOADS.values()), ids=list(INVALID_PAYLOADS))
def test_register_invalid_payload_is_400(session, base_url, payload):
    resp = c.post_register(session, base_url, "bad", payload)
    assert_json_error(resp, f"register_function with payload={payload[:40]!r}")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": "f"},
        {"payload": "VALID"},
        {"name": 5, "payload": "VALID"},
        {"name": "f", "payload": 5},
        {"name": "f", "payload": None},
        {"name": "f", "payload": ["VALID"]},
        [],
        "just a string",
    ],
    ids=[
        "empty-object",
        "missing-payload",
        "missing-name",
        "name-int",
        "payload-int",
        "payload-null",
        "payload-list",
        "json-array",
        "json-string",
    ],
)
def test_register_missing_fields_and_wrong_types_are_4xx(session, base_url, body):
    if isinstance(body, dict) and body.get("payload") == "VALID":
        body = dict(body, payload=valid_function_payload())
    elif isinstance(body, dict) and body.get("payload") == ["VALID"]:
        body = dict(body, payload=[valid_function_payload()])
    resp = session.post(f"{base_url}/register_function", json=body, timeout=c.REQUEST_TIMEOUT)
    assert_4xx(resp, f"register_function with {str(body)[:80]}")
    assert_json_object(resp, "register_function error")


@pytest.mark.parametrize("raw", ['{"name": "f", "payload": ', "not json at all", "", "{'name': 'f'}"])
def test_register_malformed_json_is_4xx(session, base_url, raw):
    resp = session.post(
        f"{base_url}/register_function",
        data=raw.encode(),
        headers={"Content-Type": "application/json"},
        timeout=c.REQUEST_TIMEOUT,
    )
    assert_4xx(resp, f"register_function with malformed JSON {raw!r}")
    assert_json_object(resp, "register_function malformed JSON")


# --------------------------------------------------------------------------------------
# execution basics
# --------------------------------------------------------------------------------------


def test_execute_returns_uuid_task_id(session, base_url):
    def double(x):
        return x * 2

    function_id = c.register(session, base_url, double)
    resp = c.post_execute(session, base_url, function_id, c.serialize_args(21))
    assert resp.status_code in (200, 201), describe(resp)
    body = assert_json_object(resp, "execute_function")
    assert c.is_uuid(body.get("task_id")), f"task_id must be a UUID: {describe(resp)}"
    assert c.wait_result(session, base_url, body["task_id"]) == (COMPLETED, 42)


def test_status_right_after_execute(session, base_url):
    def double(x):
        return x * 2

    function_id = c.register(session, base_url, double)
    task_id = c.execute(session, base_url, function_id, 5)
    resp = c.get_status(session, base_url, task_id)
    assert resp.status_code == 200, describe(resp)
    body = assert_json_object(resp, "status")
    assert body.get("task_id") == task_id, f"status must echo the task_id: {describe(resp)}"
    assert body.get("status") in (QUEUED, RUNNING, COMPLETED), (
        f"status right after execute must be QUEUED, RUNNING or COMPLETED: {describe(resp)}"
    )


def test_round_trip_double_within_20_polls(session, base_url):
    """The public suite's check: at most 20 polls of GET /result, 10 ms apart."""

    def double(x):
        return x * 2

    function_id = c.register(session, base_url, double)
    x = random.randint(-(10**9), 10**9)
    task_id = c.execute(session, base_url, function_id, x)
    finished = False
    last = None
    for _ in range(20):
        resp = c.get_result(session, base_url, task_id)
        assert resp.status_code == 200, describe(resp)
        body = assert_json_object(resp, "result")
        last = describe(resp)
        assert body.get("task_id") == task_id, last
        if body.get("status") in (COMPLETED, FAILED):
            assert body["status"] == COMPLETED, last
            assert c.deserialize(body["result"]) == 2 * x, last
            finished = True
            break
        time.sleep(0.01)
    assert finished, f"double({x}) did not finish within 20 polls 10 ms apart; last: {last}"


def test_result_is_null_while_not_final(session, base_url):
    def slow(x):
        import time

        time.sleep(1.5)
        return x

    function_id = c.register(session, base_url, slow)
    task_id = c.execute(session, base_url, function_id, "done")
    resp = c.get_result(session, base_url, task_id)
    assert resp.status_code == 200, describe(resp)
    body = assert_json_object(resp, "result")
    assert body.get("task_id") == task_id, describe(resp)
    assert body.get("status") in (QUEUED, RUNNING), (
        f"a 1.5 s task must not be final immediately after submission: {describe(resp)}"
    )
    assert "result" in body and body["result"] is None, (
        f"result must be present and null while not final: {describe(resp)}"
    )
    assert c.wait_result(session, base_url, task_id) == (COMPLETED, "done")


def test_status_endpoint_reports_final_states(session, base_url):
    def maybe_fail(fail):
        if fail:
            raise RuntimeError("asked to fail")
        return "ok"

    function_id = c.register(session, base_url, maybe_fail)
    ok_task = c.execute(session, base_url, function_id, False)
    bad_task = c.execute(session, base_url, function_id, fail=True)
    assert c.wait_result(session, base_url, ok_task) == (COMPLETED, "ok")
    status, value = c.wait_result(session, base_url, bad_task)
    assert status == FAILED and isinstance(value, RuntimeError), (status, value)
    for task_id, expected in ((ok_task, COMPLETED), (bad_task, FAILED)):
        resp = c.get_status(session, base_url, task_id)
        assert resp.status_code == 200, describe(resp)
        body = assert_json_object(resp, "status")
        assert body.get("task_id") == task_id and body.get("status") == expected, describe(resp)


def test_positional_and_keyword_arguments(session, base_url):
    def combine(a, b, *, c=1):
        return (a, b, c, a * b + c)

    function_id = c.register(session, base_url, combine)
    cases = [
        ((2, 3), {}, (2, 3, 1, 7)),
        ((2, 3), {"c": 10}, (2, 3, 10, 16)),
        ((4,), {"b": 5, "c": 0}, (4, 5, 0, 20)),
        ((), {"a": 1, "b": 1, "c": 1}, (1, 1, 1, 2)),
    ]
    tasks = [(c.execute(session, base_url, function_id, *args, **kwargs), args, kwargs, expected)
             for args, kwargs, expected in cases]
    for task_id, args, kwargs, expected in tasks:
        status, value = c.wait_result(session, base_url, task_id)
        assert (status, value) == (COMPLETED, expected), f"combine(*{args}, **{kwargs}) -> {status} {value!r}"


def test_varargs_and_rich_python_values(session, base_url):
    def collect(*args, **kwargs):
        return args, kwargs

    args = (None, True, 1.5, 2 + 3j, b"\x00\xff", "h\u00e9llo", [1, [2]], {"k": (1, 2)}, {3, 4}, frozenset({5}))
    kwargs = {"alpha": 10**40, "beta": bytearray(b"xyz"), "gamma": range(3)}
    status, value = c.run(session, base_url, collect, *args, **kwargs)
    assert (status, value) == (COMPLETED, (args, kwargs)), f"{status} {value!r}"


def test_closure_and_nested_helper(session, base_url):
    offset = random.randint(1, 1000)

    def helper(v):
        return v * 10

    def uses_closure(x):
        return helper(x) + offset

    status, value = c.run(session, base_url, uses_closure, 4)
    assert (status, value) == (COMPLETED, 40 + offset), f"{status} {value!r}"


def test_recursive_nested_function(session, base_url):
    def fib(n):
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    status, value = c.run(session, base_url, fib, 20)
    assert (status, value) == (COMPLETED, 6765), f"{status} {value!r}"


def test_numpy_imported_inside_function(session, base_url):
    def numpy_sum_of_squares(n):
        import numpy as np

        a = np.arange(n, dtype=np.int64)
        return int((a * a).sum())

    n = random.randint(10, 10_000)
    status, value = c.run(session, base_url, numpy_sum_of_squares, n)
    assert (status, value) == (COMPLETED, sum(i * i for i in range(n))), f"{status} {value!r}"


def test_numpy_array_result(session, base_url):
    import numpy as np

    def numpy_matmul(a, b):
        import numpy as np

        return np.asarray(a) @ np.asarray(b)

    rng = np.random.default_rng(7)
    a = rng.integers(-100, 100, size=(8, 5))
    b = rng.integers(-100, 100, size=(5, 3))
    status, value = c.run(session, base_url, numpy_matmul, a, b)
    assert status == COMPLETED, f"{status} {value!r}"
    assert isinstance(value, np.ndarray) and np.array_equal(value, a @ b), f"{value!r}"


# --------------------------------------------------------------------------------------
# exceptions raised by user code
# --------------------------------------------------------------------------------------


def test_value_error_is_returned(session, base_url):
    def failing_value_error(n):
        raise ValueError(f"bad value: {n}")

    status, value, body = run_body(session, base_url, failing_value_error, 17)
    assert status == FAILED, f"expected FAILED: {body!r:.2000}"
    assert type(value) is ValueError, f"expected ValueError, got {type(value)!r}: {value!r}"
    assert str(value) == "bad value: 17", f"message changed: {value!r}"
    assert_traceback_note(value, "failing_value_error", body)


def test_custom_exception_is_returned(session, base_url):
    class QuotaExceededError(Exception):
        pass

    def failing_custom(limit):
        raise QuotaExceededError(f"quota {limit} exceeded")

    status, value, body = run_body(session, base_url, failing_custom, 3)
    assert status == FAILED, f"expected FAILED: {body!r:.2000}"
    # dill recreates a by-value class on load, so compare by name rather than identity.
    assert type(value).__name__ == "QuotaExceededError", f"got {type(value)!r}: {value!r}"
    assert isinstance(value, Exception), f"{type(value).__mro__!r}"
    assert str(value) == "quota 3 exceeded", f"message changed: {value!r}"
    assert_traceback_note(value, "failing_custom", body)


def test_sys_exit_fails_task_and_system_keeps_serving(session, base_url):
    def calls_sys_exit():
        import sys

        sys.exit(3)

    status, value, body = run_body(session, base_url, calls_sys_exit)
    assert status == FAILED, f"expected FAILED: {body!r:.2000}"
    assert type(value) is SystemExit, f"expected SystemExit, got {type(value)!r}: {value!r}"
    assert value.code == 3, f"SystemExit code changed: {value.code!r}"
    assert_still_serving(session, base_url)


# --------------------------------------------------------------------------------------
# platform failures
# --------------------------------------------------------------------------------------


def test_os_exit_is_worker_failure(session, base_url):
    def calls_os_exit():
        import os

        os._exit(1)

    status, value, body = run_body(session, base_url, calls_os_exit)
    assert_worker_failure(status, value, body)
    assert_still_serving(session, base_url)


def test_segfault_is_worker_failure(session, base_url):
    def segfaults():
        import ctypes

        return ctypes.string_at(0)

    status, value, body = run_body(session, base_url, segfaults)
    assert_worker_failure(status, value, body)
    assert_still_serving(session, base_url)


def test_deadline_is_worker_failure(session, base_url):
    raw = os.environ.get("FAAS_TASK_TIMEOUT")
    if not raw:
        pytest.skip("set FAAS_TASK_TIMEOUT (seconds) to the server's task deadline to run this test")
    try:
        task_timeout = float(raw)
    except ValueError:
        pytest.fail(f"FAAS_TASK_TIMEOUT must be a number of seconds, got {raw!r}")

    def spins_forever():
        while True:
            pass

    function_id = c.register(session, base_url, spins_forever)
    task_id = c.execute(session, base_url, function_id)
    body = c.wait_result_body(session, base_url, task_id, timeout=task_timeout + 30, interval=0.1)
    value = c.decode_result(body)
    assert_worker_failure(body["status"], value, body, mentions=("deadline", "timeout", "timed out", "time limit"))
    assert_still_serving(session, base_url)


# --------------------------------------------------------------------------------------
# output, sizes, unpicklable results
# --------------------------------------------------------------------------------------


def test_noisy_output_does_not_corrupt_result(session, base_url):
    def noisy(n):
        import os
        import sys

        for i in range(10_000):
            print(f"stdout line {i} {{\"status\": \"COMPLETED\"}}")
            print(f"stderr line {i} Traceback (most recent call last):", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os.write(1, b"\x00\x01\xfe\xff raw bytes on fd 1 \r\n\x80\x04\x95")
        os.write(2, b"\x00\xff raw bytes on fd 2 \n\n")
        os.write(1, b"no trailing newline")
        return {"n": n, "squared": n * n}

    n = random.randint(1, 10**6)
    status, value = c.run(session, base_url, noisy, n)
    assert (status, value) == (COMPLETED, {"n": n, "squared": n * n}), f"{status} {value!r:.500}"


def test_large_argument(session, base_url):
    def digest(data):
        import hashlib

        return len(data), hashlib.sha256(data).hexdigest()

    import hashlib

    data = os.urandom(LARGE_SIZE)
    status, value = c.run(session, base_url, digest, data)
    assert (status, value) == (COMPLETED, (len(data), hashlib.sha256(data).hexdigest())), f"{status} {value!r:.500}"


def test_large_result(session, base_url):
    def make_blob(size):
        import hashlib
        import os

        blob = os.urandom(size)
        return hashlib.sha256(blob).hexdigest(), blob

    import hashlib

    status, value = c.run(session, base_url, make_blob, LARGE_SIZE)
    assert status == COMPLETED, f"{status} {value!r:.500}"
    digest, blob = value
    assert isinstance(blob, bytes) and len(blob) == LARGE_SIZE, f"got {type(blob)!r} of length {len(blob)}"
    assert hashlib.sha256(blob).hexdigest() == digest, "10 MB result corrupted in transit"


def test_large_argument_and_result_round_trip(session, base_url):
    def reverse_bytes(data):
        return data[::-1]

    data = os.urandom(LARGE_SIZE)
    status, value = c.run(session, base_url, reverse_bytes, data)
    assert status == COMPLETED, f"{status} {value!r:.500}"
    assert value == data[::-1], "10 MB round trip not equal"


def test_unpicklable_result_fails(session, base_url):
    def returns_generator(n):
        return (i * i for i in range(n))

    status, value, body = run_body(session, base_url, returns_generator, 5)
    assert status == FAILED, f"a generator cannot be pickled, expected FAILED: {body!r:.2000}"
    assert isinstance(value, BaseException), f"FAILED result must be an exception, got {value!r}"
    assert str(value).strip(), f"exception should explain the problem: {value!r}"
    assert_still_serving(session, base_url)


# --------------------------------------------------------------------------------------
# concurrency / reuse
# --------------------------------------------------------------------------------------


def test_200_concurrent_tasks(session, base_url):
    def square_plus(x, plus=0):
        import time

        time.sleep(0.005)
        return x * x + plus

    function_id = c.register(session, base_url, square_plus)
    inputs = [(i, random.randint(0, 1000)) for i in range(200)]
    tasks = [(c.execute(session, base_url, function_id, x, plus=p), x, p) for x, p in inputs]
    assert len({t for t, _, _ in tasks}) == 200, "task ids must be unique"

    local = threading.local()
    sessions = []
    lock = threading.Lock()

    def collect(task):
        task_id, x, p = task
        s = getattr(local, "session", None)
        if s is None:
            s = local.session = requests.Session()
            with lock:
                sessions.append(s)
        return task, c.wait_result(s, base_url, task_id, timeout=60, interval=0.02)

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(collect, tasks))
    finally:
        for s in sessions:
            s.close()
    wrong = [(x, p, status, value) for (_, x, p), (status, value) in results
             if (status, value) != (COMPLETED, x * x + p)]
    assert not wrong, f"{len(wrong)} of 200 tasks wrong, first ones: {wrong[:5]!r}"


def test_same_function_executed_many_times(session, base_url):
    def tag(i):
        return f"call-{i}"

    function_id = c.register(session, base_url, tag)
    for i in range(5):  # sequential
        task_id = c.execute(session, base_url, function_id, i)
        assert c.wait_result(session, base_url, task_id) == (COMPLETED, f"call-{i}")
    task_ids = [(i, c.execute(session, base_url, function_id, i)) for i in range(5, 55)]  # batched
    for i, task_id in task_ids:
        status, value = c.wait_result(session, base_url, task_id)
        assert (status, value) == (COMPLETED, f"call-{i}"), f"tag({i}) -> {status} {value!r}"


# --------------------------------------------------------------------------------------
# execute_function errors
# --------------------------------------------------------------------------------------


def test_execute_unknown_function_is_404(session, base_url):
    resp = c.post_execute(session, base_url, str(uuid.uuid4()), c.serialize_args(1))
    assert resp.status_code == 404, f"unknown function_id must be 404: {describe(resp)}"


@pytest.mark.parametrize("function_id", ["not-a-uuid", "123", "", "00000000-0000-0000-0000-00000000000g"])
def test_execute_malformed_function_id_is_4xx(session, base_url, function_id):
    resp = c.post_execute(session, base_url, function_id, c.serialize_args(1))
    assert_4xx(resp, f"execute_function with function_id={function_id!r}")


@pytest.mark.parametrize("payload", list(INVALID_PAYLOADS.values()), ids=list(INVALID_PAYLOADS))
def test_execute_invalid_payload_is_400(session, base_url, payload):
    def double(x):
        return x * 2

    function_id = c.register(session, base_url, double)
    resp = c.post_execute(session, base_url, function_id, payload)
    assert resp.status_code == 400, f"execute_function with payload={payload[:40]!r}: {describe(resp)}"
    assert_json_object(resp, "execute_function invalid payload")


def test_execute_payload_of_wrong_shape_never_5xx(session, base_url):
    """A valid pickle that is not ((args...), {kwargs}): rejected (4xx) or the task FAILs."""

    def double(x):
        return x * 2

    function_id = c.register(session, base_url, double)
    resp = c.post_execute(session, base_url, function_id, c.serialize(42))
    assert resp.status_code < 500, f"must never be 5xx: {describe(resp)}"
    if resp.status_code in (200, 201):
        task_id = assert_json_object(resp, "execute_function")["task_id"]
        status, value = c.wait_result(session, base_url, task_id)
        assert status == FAILED and isinstance(value, BaseException), f"{status} {value!r}"
    else:
        assert_4xx(resp, "execute_function with a non-(args, kwargs) payload")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"function_id": "FID"},
        {"payload": "ARGS"},
        {"function_id": 5, "payload": "ARGS"},
        {"function_id": None, "payload": "ARGS"},
        {"function_id": "FID", "payload": 5},
        {"function_id": "FID", "payload": None},
        [],
    ],
    ids=[
        "empty-object",
        "missing-payload",
        "missing-function-id",
        "function-id-int",
        "function-id-null",
        "payload-int",
        "payload-null",
        "json-array",
    ],
)
def test_execute_missing_fields_and_wrong_types_are_4xx(session, base_url, body):
    def double(x):
        return x * 2

    function_id = c.register(session, base_url, double)
    if isinstance(body, dict):
        body = {k: (function_id if v == "FID" else c.serialize_args(1) if v == "ARGS" else v) for k, v in body.items()}
    resp = session.post(f"{base_url}/execute_function", json=body, timeout=c.REQUEST_TIMEOUT)
    assert_4xx(resp, f"execute_function with {str(body)[:80]}")
    assert_json_object(resp, "execute_function error")


@pytest.mark.parametrize("raw", ['{"function_id": ', "not json at all", "", "{'function_id': 1}"])
def test_execute_malformed_json_is_4xx(session, base_url, raw):
    resp = session.post(
        f"{base_url}/execute_function",
        data=raw.encode(),
        headers={"Content-Type": "application/json"},
        timeout=c.REQUEST_TIMEOUT,
    )
    assert_4xx(resp, f"execute_function with malformed JSON {raw!r}")
    assert_json_object(resp, "execute_function malformed JSON")


# --------------------------------------------------------------------------------------
# status / result errors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["status", "result"])
def test_unknown_task_is_404(session, base_url, endpoint):
    resp = session.get(f"{base_url}/{endpoint}/{uuid.uuid4()}", timeout=c.REQUEST_TIMEOUT)
    assert resp.status_code == 404, f"unknown task must be 404: {describe(resp)}"


@pytest.mark.parametrize("task_id", ["not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g", "%20"])
@pytest.mark.parametrize("endpoint", ["status", "result"])
def test_malformed_task_id_is_4xx(session, base_url, endpoint, task_id):
    resp = session.get(f"{base_url}/{endpoint}/{task_id}", timeout=c.REQUEST_TIMEOUT)
    assert_4xx(resp, f"GET /{endpoint}/{task_id}")
