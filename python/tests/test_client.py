"""Tests against a live FaaS server: set FAAS_URL (e.g. http://127.0.0.1:8000).

Functions sent to the server are defined inside the tests so dill ships them by value.
"""

import os
import time

import pytest
import requests

from faas_client import (Client, FaaSExecutor, IncompatibleEnvironment, TaskCancelled,
                         TaskFailed, WorkerFailure)
from faas_client.errors import FaaSError

URL = os.environ.get("FAAS_URL", "http://127.0.0.1:8000")

try:
    requests.get(URL + "/health", timeout=5).raise_for_status()
except Exception as err:  # pragma: no cover - depends on the environment
    pytest.skip(f"no FaaS server at FAAS_URL={URL} (GET /health failed: {err})",
                allow_module_level=True)


@pytest.fixture
def client():
    with Client(URL) as c:
        yield c


def test_health(client):
    assert client.health() == {"status": "ok"}


def test_round_trip_nested_function_with_args_and_kwargs(client):
    offset = 100

    def helper(x):
        return x * 2

    def compute(a, b, *, scale=1, extra=()):
        return (helper(a) + b) * scale + offset + sum(extra)

    task_id = client.submit(compute, 3, 4, scale=10, extra=(1, 2))
    assert client.result(task_id, timeout=60) == (6 + 4) * 10 + 100 + 3
    assert client.status(task_id) == "COMPLETED"
    assert client.task(task_id)["status"] == "COMPLETED"


def test_map_keeps_order(client):
    def square_plus(x, y):
        return x * x + y

    xs = list(range(50))
    assert list(client.map(square_plus, xs, reversed(xs), timeout=120)) == [
        x * x + y for x, y in zip(xs, reversed(xs))]


def test_function_exception_comes_back_as_same_type(client):
    class Custom(Exception):
        pass

    def fails(kind):
        if kind == "key":
            raise KeyError("missing thing")
        raise Custom("custom message")

    with pytest.raises(KeyError) as info:
        client.result(client.submit(fails, "key"), timeout=60)
    assert info.value.args == ("missing thing",)
    with pytest.raises(Exception) as info:
        client.result(client.submit(fails, "custom"), timeout=60)
    assert type(info.value).__name__ == "Custom" and str(info.value) == "custom message"


def test_submit_many_distinct_ids_and_all_results(client):
    def add(a, b=0):
        return a + b

    task_ids = client.submit_many(add, [(i, i) for i in range(30)] + [7])
    assert len(task_ids) == 31 and len(set(task_ids)) == 31
    assert [client.result(t, timeout=60) for t in task_ids] == [2 * i for i in range(30)] + [7]


def test_registration_is_cached_per_callable(client):
    def ident(x):
        return x

    client.submit(ident, 1)
    client.submit(ident, 2)
    assert len(client._functions) == 1


def test_executor_futures_and_exception():
    def cube(x):
        return x ** 3

    def divide(a, b):
        return a / b

    with FaaSExecutor(URL, max_waiters=8) as ex:
        futures = [ex.submit(cube, i) for i in range(20)]
        bad = ex.submit(divide, 1, 0)
        assert [f.result(timeout=60) for f in futures] == [i ** 3 for i in range(20)]
        with pytest.raises(ZeroDivisionError):
            bad.result(timeout=60)
        assert list(ex.map(cube, [2, 3], timeout=60)) == [8, 27]
    assert all(f.done() for f in futures)
    with pytest.raises(RuntimeError):
        ex.submit(cube, 1)


def test_result_timeout_is_quick(client):
    def slow():
        import time as t
        t.sleep(1.5)  # well inside the suite's 3 s task deadline
        return "done"

    task_id = client.submit(slow)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        client.result(task_id, timeout=0.5)
    assert time.monotonic() - start < 2
    assert client.result(task_id, timeout=60) == "done"


def test_version_check_passes(client):
    info = client.check_compatibility()
    assert info["remote"]["python"][:2] == info["local"]["python"][:2]
    assert client.check_compatibility() is info  # cached


def test_version_mismatch_raises(monkeypatch):
    import faas_client.client as module

    monkeypatch.setattr(module.dill, "__version__", "99.1.0")
    with Client(URL) as c, pytest.raises(IncompatibleEnvironment, match="99.1.0"):
        c.register(lambda: None)


def test_unknown_task_is_404(client):
    with pytest.raises(FaaSError) as info:
        client.status("00000000-0000-4000-8000-000000000000")
    assert info.value.status_code == 404 and info.value.message
    with pytest.raises(FaaSError):
        client.result("00000000-0000-4000-8000-000000000000")


def test_worker_crash_is_worker_failure(client):
    def crash():
        import os as o
        o._exit(3)

    with pytest.raises(WorkerFailure) as info:
        client.result(client.submit(crash), timeout=120)
    assert isinstance(info.value, TaskFailed) and str(info.value)
    assert type(info.value.__cause__).__name__ == "WorkerFailure"


def test_executor_shutdown_cancel_futures_returns_at_once():
    def nap():
        import time as t
        t.sleep(1)

    ex = FaaSExecutor(URL)
    futures = [ex.submit(nap) for _ in range(2)]
    start = time.monotonic()
    ex.shutdown(wait=True, cancel_futures=True)
    assert time.monotonic() - start < 0.5
    assert all(f.cancelled() for f in futures)


def test_the_gateway_and_token_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("FAAS_URL", URL)
    monkeypatch.setenv("FAAS_AUTH_TOKEN", "from-env")
    with Client() as c:
        assert c.url == URL.rstrip("/")
        assert c.session.headers["Authorization"] == "Bearer from-env"
        assert c.health() == {"status": "ok"}
    with Client(URL, token="given") as c:
        assert c.session.headers["Authorization"] == "Bearer given"
    with FaaSExecutor(check_versions=False) as ex:
        assert ex._client.url == URL.rstrip("/")
        assert ex._token == "from-env"
    monkeypatch.delenv("FAAS_URL")
    monkeypatch.delenv("FAAS_AUTH_TOKEN")
    with Client() as c:
        assert c.url == "http://127.0.0.1:8000"
        assert "Authorization" not in c.session.headers


def test_a_cancelled_task_raises_task_cancelled(client):
    def nap():
        import time as t
        t.sleep(2)  # inside the suite's 3 s task deadline, should the cancel come late
        return "woke"

    task_id = client.submit(nap)
    assert client.cancel(task_id) in ("QUEUED", "RUNNING")
    with pytest.raises(TaskCancelled) as caught:
        client.result(task_id, timeout=60)
    assert isinstance(caught.value, TaskFailed)
    assert caught.value.task_id == task_id
    with pytest.raises(FaaSError) as again:
        client.cancel(task_id)
    assert again.value.status_code == 409


def test_reads_are_retried_after_502_503_504_and_submissions_are_not():
    """A stand-in for a gateway behind a proxy that is restarting: it answers each path's
    first requests with 503, 502 and 504, then 200."""
    import http.server
    import json
    import threading

    answers = {"/health": [503, 502, 504], "/execute_function": [503]}
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self):
            seen.append((self.command, self.path))
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            pending = answers.get(self.path, [])
            status = pending.pop(0) if pending else 200
            body = json.dumps({"status": "ok"} if status == 200 else {"error": "busy"})
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        do_GET = do_POST = answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with Client(f"http://127.0.0.1:{server.server_port}", check_versions=False) as c:
            assert c.health() == {"status": "ok"}
            assert seen.count(("GET", "/health")) == 4
            with pytest.raises(FaaSError) as refused:
                c._request("POST", "/execute_function", json={})
            assert refused.value.status_code == 503
            assert seen.count(("POST", "/execute_function")) == 1
    finally:
        server.shutdown()
        server.server_close()
