"""Drives reference.py as loadgen does (one JSON request on stdin, JSON lines on stdout), for every
reference target with tiny workloads, and checks the protocol and that no process is left behind.

    scripts/peers && .venv-peers/bin/python -m pip install pytest
    .venv-peers/bin/python -m pytest loadgen/python/test_reference.py

The driver runs under .venv-peers/bin/python when that exists, else under the Python running the
tests; a target whose package is missing there is skipped (test_unavailable checks that line with
a Python that lacks the package). Celery's tests start a private redis-server.
"""
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DRIVER = ROOT / "loadgen" / "python" / "reference.py"
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
PYTHON = str(PEERS_PYTHON) if PEERS_PYTHON.exists() else sys.executable
TARGETS = ["process_pool", "zmq", "ray", "celery", "dask"]
VERSION_PREFIX = {"process_pool": "python 3.", "zmq": "pyzmq ", "ray": "ray ",
                  "celery": "celery ", "dask": "dask "}
PACKAGES = {"zmq": ["zmq", "dill"], "ray": ["ray"], "celery": ["celery", "redis"],
            "dask": ["dask", "distributed"]}
# Setup (ray.init is the slowest, a few seconds) plus the tiny workloads here.
RUN_TIMEOUT_S = 120


@pytest.fixture(scope="session")
def redis_url():
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (scripts/prerequisites installs it)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait()


def request(target, redis_url="redis://127.0.0.1:1/0", **overrides):
    base = {"target": target, "function": "noop", "sleep_s": 0.0, "cpu_n": 0, "result_bytes": 0,
            "arg_bytes": 16, "executors": 2, "shape": "burst", "clients": 4, "rate": None,
            "batch_size": 8, "tasks": 20, "duration_s": None, "warmup_tasks": 4,
            "repetitions": 2, "timeout_s": 30.0, "redis_url": redis_url}
    base.update(overrides)
    return base


def alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def descendants(pid):
    """The pids of pid's living descendants (Linux /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found and alive(child):
                found.add(child)
                todo.append(child)
    return found


class Run:
    """reference.py started as loadgen starts it; its stdout read line by line on a thread."""

    def __init__(self, req, python=PYTHON):
        self.stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen([python, str(DRIVER)], cwd=ROOT, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.stderr)
        self.process.stdin.write(json.dumps(req).encode())
        self.process.stdin.close()
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.deadline = time.monotonic() + RUN_TIMEOUT_S
        self.tree = set()

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next_line(self):
        """The next stdout line, parsed (each must be one JSON object); None at EOF."""
        line = self.lines.get(timeout=max(0.0, self.deadline - time.monotonic()))
        if line is None:
            return None
        parsed = json.loads(line)
        assert isinstance(parsed, dict), line
        return parsed

    def rest(self):
        """The remaining lines, then the exit code, once no descendant is left."""
        lines = []
        while (line := self.next_line()) is not None:
            lines.append(line)
        return lines, self.finish()

    def finish(self):
        code = self.process.wait(timeout=max(1.0, self.deadline - time.monotonic()))
        deadline = time.monotonic() + 5
        while (left := {pid for pid in self.tree if alive(pid)}) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, f"processes left behind: {left}\n{self.log()}"
        return code

    def log(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-4000:]

    def ready(self, target):
        """Reads the ready line (skipping the test when the target is unavailable here) and notes
        the driver's process tree."""
        line = self.next_line()
        assert line is not None, f"no ready line\n{self.log()}"
        if "unavailable" in line:
            self.finish()
            pytest.skip(line["unavailable"])
        assert line == {"ready": True, "target": target, "version": line.get("version")}, line
        assert line["version"].startswith(VERSION_PREFIX[target]), line
        self.tree = descendants(self.process.pid)
        return line

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def run(req):
    """Runs one request to its end; returns the repetition lines (exit code 0 checked)."""
    driver = Run(req)
    try:
        driver.ready(req["target"])
        reps, code = driver.rest()
    finally:
        driver.kill()
    assert code == 0, driver.log()
    assert [r["rep"] for r in reps] == list(range(req["repetitions"])), reps
    for rep in reps:
        assert set(rep) == {"rep", "completed", "failed", "lost", "makespan_s", "latencies_us"}
        assert len(rep["latencies_us"]) == rep["completed"] + rep["failed"]
        assert all(isinstance(l, int) and l >= 0 for l in rep["latencies_us"])
        assert isinstance(rep["makespan_s"], float) and rep["makespan_s"] >= 0
        # no task's latency exceeds the makespan by more than rounding (open loop: scheduled)
        assert max(rep["latencies_us"], default=0) <= rep["makespan_s"] * 1e6 + 1000
    return reps


@pytest.mark.parametrize("shape", ["burst", "closed", "open"])
@pytest.mark.parametrize("target", TARGETS)
def test_shape(target, shape, redis_url):
    reps = run(request(target, redis_url, shape=shape, rate=400.0 if shape == "open" else None))
    for rep in reps:
        assert (rep["completed"], rep["failed"], rep["lost"]) == (20, 0, 0), rep
        assert rep["makespan_s"] > 0


@pytest.mark.parametrize("target", TARGETS)
def test_failed(target, redis_url):
    # time.sleep(-1) raises ValueError
    reps = run(request(target, redis_url, function="sleep", sleep_s=-1.0, tasks=6,
                       warmup_tasks=0, repetitions=1))
    assert (reps[0]["completed"], reps[0]["failed"], reps[0]["lost"]) == (0, 6, 0), reps


@pytest.mark.parametrize("target", TARGETS)
def test_lost(target, redis_url):
    started = time.monotonic()
    reps = run(request(target, redis_url, function="sleep", sleep_s=3.0, tasks=2,
                       warmup_tasks=0, repetitions=1, timeout_s=0.5))
    assert (reps[0]["completed"], reps[0]["failed"], reps[0]["lost"]) == (0, 0, 2), reps
    assert reps[0]["latencies_us"] == []
    # the driver neither waited for the lost tasks nor for the workers running them
    assert time.monotonic() - started < 2.5 + (10 if target == "ray" else 5)


@pytest.mark.parametrize("target", TARGETS)
def test_duration(target, redis_url):
    closed, = run(request(target, redis_url, shape="closed", function="sleep", sleep_s=0.01,
                          clients=2, tasks=1, duration_s=0.3, repetitions=1))
    assert closed["completed"] >= 4 and closed["lost"] == closed["failed"] == 0, closed
    assert closed["makespan_s"] >= 0.3
    opened, = run(request(target, redis_url, shape="open", rate=50.0, tasks=1, duration_s=0.3,
                          repetitions=1))
    assert (opened["completed"], opened["lost"]) == (15, 0), opened  # ceil(50 * 0.3)
    assert opened["makespan_s"] >= 14 / 50


@pytest.mark.parametrize("target", TARGETS)
def test_sigterm_leaves_nothing(target, redis_url):
    driver = Run(request(target, redis_url, shape="closed", function="sleep", sleep_s=0.05,
                         tasks=100000, repetitions=1))
    try:
        driver.ready(target)
        assert driver.tree, "the target started no process"
        time.sleep(0.5)
        driver.process.send_signal(signal.SIGTERM)
        lines, code = driver.rest()
    finally:
        driver.kill()
    assert lines == [] and code == 128 + signal.SIGTERM, (lines, code, driver.log())


def test_error_exits_nonzero():
    driver = Run(request("process_pool", shape="zigzag"))
    try:
        lines, code = driver.rest()
    finally:
        driver.kill()
    assert lines == [] and code == 1
    assert "reference.py: error:" in driver.log()


def python_without(modules):
    """A Python that lacks one of the modules, or None."""
    for candidate in [shutil.which("python3"), "/usr/bin/python3", sys.executable]:
        if not candidate or not os.path.exists(candidate):
            continue
        probe = subprocess.run([candidate, "-c", "import " + ", ".join(modules)],
                               capture_output=True)
        if probe.returncode != 0:
            return candidate
    return None


@pytest.mark.parametrize("target", ["zmq", "ray", "celery", "dask"])
def test_unavailable(target):
    python = python_without(PACKAGES[target])
    if python is None:
        pytest.skip(f"every Python here has {PACKAGES[target]}")
    # which of the target's modules is missing decides the package named
    missing = next(m for m in PACKAGES[target]
                   if subprocess.run([python, "-c", f"import {m}"], capture_output=True).returncode)
    package = {"zmq": "pyzmq"}.get(missing, missing)
    driver = Run(request(target), python=python)
    try:
        lines, code = driver.rest()
    finally:
        driver.kill()
    assert code == 0, driver.log()
    assert lines == [{"unavailable":
                      f"{package} is not installed (scripts/peers installs it into .venv-peers)"}]
