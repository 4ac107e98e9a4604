"""The spec's own test style: module-level functions serialized with plain ``dill.dumps``.

dill pickles a module-level function of an importable module *by reference*
(``tests.test_spec_style.double``), so the executor must import this module to run it. That
works when the dispatcher runs from the repository root (the executor's working directory is
on its import path) and the executor environment has this module's imports (requests, dill).
This module therefore imports nothing the executor environment lacks.
"""

import codecs
import random
import time

import dill
import requests


def serialize(obj) -> str:
    return codecs.encode(dill.dumps(obj), "base64").decode()


def deserialize(text: str):
    return dill.loads(codecs.decode(text.encode(), "base64"))


def double(x):
    return x * 2


def test_fn_registration_invalid(base_url):
    resp = requests.post(base_url + "/register_function",
                         json={"name": "hello", "payload": "payload"}, timeout=30)
    assert resp.status_code in [500, 400]
    assert resp.status_code == 400, resp.text


def test_fn_registration(base_url):
    resp = requests.post(base_url + "/register_function",
                         json={"name": "double", "payload": serialize(double)}, timeout=30)
    assert resp.status_code in [200, 201]
    assert "function_id" in resp.json()


def test_execute_fn(base_url):
    resp = requests.post(base_url + "/register_function",
                         json={"name": "double", "payload": serialize(double)}, timeout=30)
    fn_info = resp.json()
    resp = requests.post(base_url + "/execute_function",
                         json={"function_id": fn_info["function_id"],
                               "payload": serialize(((2,), {}))}, timeout=30)
    assert resp.status_code in [200, 201]
    assert "task_id" in resp.json()
    task_id = resp.json()["task_id"]
    resp = requests.get(f"{base_url}/status/{task_id}", timeout=30)
    assert resp.status_code == 200
    assert resp.json()["task_id"] == task_id
    assert resp.json()["status"] in ["QUEUED", "RUNNING", "COMPLETED", "FAILED"]


def test_roundtrip(base_url):
    resp = requests.post(base_url + "/register_function",
                         json={"name": "double", "payload": serialize(double)}, timeout=30)
    fn_info = resp.json()
    number = random.randint(0, 10000)
    resp = requests.post(base_url + "/execute_function",
                         json={"function_id": fn_info["function_id"],
                               "payload": serialize(((number,), {}))}, timeout=30)
    assert resp.status_code in [200, 201]
    task_id = resp.json()["task_id"]
    for _ in range(20):
        resp = requests.get(f"{base_url}/result/{task_id}", timeout=30)
        assert resp.status_code == 200
        assert resp.json()["task_id"] == task_id
        if resp.json()["status"] in ["COMPLETED", "FAILED"]:
            result = deserialize(resp.json()["result"])
            assert result == number * 2, result
            break
        time.sleep(0.01)
    else:
        raise AssertionError("task did not finish within 20 polls 10 ms apart")
