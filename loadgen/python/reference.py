"""Benchmark driver for the reference targets: the systems loadgen measures our platform against.

loadgen runs `PYTHON loadgen/python/reference.py` from the repository root (PYTHON is normally
.venv-peers/bin/python, which scripts/peers fills), writes ONE JSON request on stdin and closes it:

    {"target": "process_pool" | "zmq" | "ray" | "celery" | "dask",
     "function": "noop" | "sleep" | "cpu" | "payload",
     "sleep_s": float, "cpu_n": int, "result_bytes": int, "arg_bytes": int,
     "executors": int,        worker processes (CPUs) the target gets
     "shape": "burst" | "closed" | "open",
     "clients": int,          closed: tasks in flight, each replaced as soon as it is done
     "rate": float | null,    open: tasks per second on a fixed schedule
     "batch_size": int,       burst: tasks per submission call, where the target has a batch API
     "tasks": int,            tasks per repetition
     "duration_s": float | null,  closed/open: submit for this long instead of `tasks`
                                  (open: ceil(rate * duration_s) tasks)
     "warmup_tasks": int,     run once, as a burst, after setup; not measured
     "repetitions": int,
     "timeout_s": float,      a task not done this long after its submission counts as lost
     "redis_url": str}        celery's broker and result backend (a redis-server loadgen started)

stdout carries JSON lines only, each flushed as soon as it is known:

    {"ready": true, "target": T, "version": V}      setup and warmup done; the repetitions follow
    {"rep": i, "completed": n, "failed": n, "lost": n, "makespan_s": s, "latencies_us": [...]}
    {"unavailable": "ray is not installed (...)"}   the only line, exit code 0: the target's
                                                    package cannot be imported

Any other error: a message on stderr and exit code 1; on SIGTERM or SIGINT the driver stops
everything it started and exits with a non-zero code. The driver keeps fd 1 for itself and points
the process's stdout at stderr, so neither a library nor a process the driver starts can write
anything else there; stderr is free-form logs.

Measurement. Every time is time.perf_counter_ns(). A task's latency runs from the submission call
that carried it (open loop: from its scheduled send time, so a late driver cannot hide queueing) to
the moment the driver has its result; completed and failed (the function raised) tasks have one, in
µs. makespan_s runs from the first submission to the last result (to the end of the repetition when
no task finished).

Shapes, written once over the Target interface (Repetition, SHAPES):
  burst   submit `tasks` as fast as possible (batch_size per call for targets with a batch API),
          taking finished tasks between calls, then wait for the rest;
  closed  keep `clients` tasks in flight: one loop here stands for `clients` clients that each
          submit, wait for their result and submit again (a lost task frees its client too);
  open    submit task k at t0 + k/rate, however many are still in flight.

Targets: one adapter class each, with setup() -> version, submit(count) -> handles,
poll(timeout) -> finished (handle, ok) pairs, forget(lost handles) and shutdown(). Every process
they start descends from the driver (loadgen measures the CPU time of the driver's process tree),
and shutdown() - on SIGTERM/SIGINT too - stops them all; the workers the driver starts itself also
get SIGTERM from the kernel if the driver dies without cleaning up.

Also run by the driver itself, as its own worker processes:
    reference.py zmq-worker TASKS_ADDRESS RESULTS_ADDRESS
    reference.py celery-worker REDIS_URL CONCURRENCY HOSTNAME
"""
import collections
import json
import logging
import math
import os
import platform
import queue
import signal
import socket
import subprocess
import sys
import time
import traceback

import reference_tasks

THIS_FILE = os.path.abspath(__file__)
# The longest one wait for results lasts: the driver checks for lost tasks and signals between.
POLL_CAP_S = 0.2
# How long setup may wait for the workers the driver starts to report in.
WORKER_START_TIMEOUT_S = 60.0


class Unavailable(Exception):
    """The target's package cannot be imported."""


def as_worker():
    """Runs first in every worker process the driver starts itself (Popen's preexec_fn, the
    process pool's initializer): SIGTERM and SIGINT get their default actions back (a forked
    worker inherits the driver's handlers, and a pool worker would report the SystemExit they
    raise as its task's exception and go on), and the kernel sends the worker SIGTERM when the
    driver dies, even by SIGKILL (Linux's PR_SET_PDEATHSIG; elsewhere nothing happens)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def drain(q, timeout):
    """Everything in queue q, waiting up to timeout seconds for the first item."""
    try:
        items = [q.get(timeout=timeout) if timeout > 0 else q.get_nowait()]
    except queue.Empty:
        return []
    while True:
        try:
            items.append(q.get_nowait())
        except queue.Empty:
            return items


class Target:
    """A system under test, running one function with one set of arguments."""

    name = ""
    # (module, package): what must be importable, and the name to tell when it is not.
    requires = ()
    # True when submit(count) hands all `count` tasks to the target in one call.
    batch_api = False

    def __init__(self, request):
        self.request = request
        self.executors = int(request["executors"])
        self.function = reference_tasks.TASKS[request["function"]]
        extra = {
            "noop": (),
            "sleep": (request.get("sleep_s", 0.0),),
            "cpu": (request.get("cpu_n", 0),),
            "payload": (request.get("result_bytes", 0),),
        }[request["function"]]
        self.args = (b"a" * request.get("arg_bytes", 0),) + extra

    def check(self):
        """Raises Unavailable when a package the target needs is not installed."""
        for module, package in self.requires:
            try:
                __import__(module)
            except ModuleNotFoundError as error:
                if (error.name or "").split(".")[0] != module.split(".")[0]:
                    raise
                raise Unavailable(
                    f"{package} is not installed (scripts/peers installs it into .venv-peers)"
                ) from None

    def setup(self):
        """Starts the target; returns its version, e.g. "ray 2.9.0"."""
        raise NotImplementedError

    def submit(self, count):
        """Submits `count` tasks; returns one hashable handle per task."""
        raise NotImplementedError

    def poll(self, timeout):
        """Waits up to `timeout` seconds for a task to finish; returns (handle, ok) for every
        task known to have finished by now and not returned before. ok is False when the
        function raised."""
        raise NotImplementedError

    def forget(self, handles):
        """The driver gave up on these tasks (lost); they need not be reported any more."""

    def shutdown(self):
        """Stops everything setup() started; safe after a setup that failed half way."""


class ProcessPoolTarget(Target):
    """concurrent.futures.ProcessPoolExecutor; a done callback queues each finished future."""

    name = "process_pool"

    def __init__(self, request):
        super().__init__(request)
        self.pool = None

    def setup(self):
        from concurrent.futures import ProcessPoolExecutor
        self.finished = queue.SimpleQueue()
        self.pool = ProcessPoolExecutor(max_workers=self.executors, initializer=as_worker)
        return f"python {platform.python_version()}"

    def submit(self, count):
        futures = [self.pool.submit(self.function, *self.args) for _ in range(count)]
        for future in futures:
            future.add_done_callback(self.finished.put)
        return futures

    def poll(self, timeout):
        return [(f, not f.cancelled() and f.exception() is None)
                for f in drain(self.finished, timeout)]

    def shutdown(self):
        if self.pool is not None:
            # Not waiting for running (lost) tasks: reap_children() terminates the workers.
            self.pool.shutdown(wait=False, cancel_futures=True)


class ZmqTarget(Target):
    """A bare ZeroMQ + dill loop, no service: the driver PUSHes tasks to `executors` worker
    processes (zmq_worker below), which PUSH results back to the driver's PULL socket, over
    tcp://127.0.0.1 on ephemeral ports.

    Task message: [task id, function, arguments]. The function is dill-serialized once, in setup,
    and those bytes go with every message; a worker deserializes a function the first time it sees
    its bytes and keeps it (as our platform caches functions), so a task costs one dill.dumps of
    its arguments here and one dill.loads of them in the worker. Result message:
    [task id, b"ok" | b"error", dill.dumps(result or the exception's repr)]. High-water marks are
    off (0), so a burst never blocks the driver's sends while results queue up.
    """

    name = "zmq"
    requires = (("zmq", "pyzmq"), ("dill", "dill"))

    def __init__(self, request):
        super().__init__(request)
        self.context = None
        self.workers = []

    def setup(self):
        import dill
        import zmq
        self.dill, self.zmq = dill, zmq
        self.context = zmq.Context()
        self.tasks = self.context.socket(zmq.PUSH)
        self.results = self.context.socket(zmq.PULL)
        for sock in (self.tasks, self.results):
            sock.setsockopt(zmq.SNDHWM, 0)
            sock.setsockopt(zmq.RCVHWM, 0)
            sock.setsockopt(zmq.LINGER, 0)
        tasks_address = f"tcp://127.0.0.1:{self.tasks.bind_to_random_port('tcp://127.0.0.1')}"
        results_address = f"tcp://127.0.0.1:{self.results.bind_to_random_port('tcp://127.0.0.1')}"
        for _ in range(self.executors):
            self.workers.append(subprocess.Popen(
                [sys.executable, THIS_FILE, "zmq-worker", tasks_address, results_address],
                stdin=subprocess.DEVNULL, preexec_fn=as_worker))
        # Each worker says hello (an empty task id) once it is connected.
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        hellos = 0
        while hellos < self.executors:
            for worker in self.workers:
                if worker.poll() is not None:
                    raise RuntimeError(
                        f"a zmq worker exited with code {worker.returncode} during setup")
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {hellos} of {self.executors} zmq workers started")
            if self.results.poll(100):
                self.results.recv_multipart()
                hellos += 1
        self.function_bytes = dill.dumps(self.function)
        self.next_id = 0
        return f"pyzmq {zmq.pyzmq_version()} / libzmq {zmq.zmq_version()}"

    def submit(self, count):
        ids = range(self.next_id, self.next_id + count)
        self.next_id += count
        for task_id in ids:
            self.tasks.send_multipart(
                [task_id.to_bytes(8, "little"), self.function_bytes, self.dill.dumps(self.args)])
        return ids

    def poll(self, timeout):
        finished = []
        if self.results.poll(timeout * 1000):
            while True:
                try:
                    task_id, status, body = self.results.recv_multipart(self.zmq.NOBLOCK)
                except self.zmq.Again:
                    break
                self.dill.loads(body)
                finished.append((int.from_bytes(task_id, "little"), status == b"ok"))
        return finished

    def shutdown(self):
        for worker in self.workers:
            if worker.poll() is None:
                worker.terminate()
        for worker in self.workers:
            worker.wait()
        if self.context is not None:
            self.context.destroy(linger=0)


def zmq_worker(tasks_address, results_address):
    """A ZmqTarget worker: PULL a task, call it, PUSH its result; until terminated."""
    import dill
    import zmq
    context = zmq.Context()
    tasks = context.socket(zmq.PULL)
    results = context.socket(zmq.PUSH)
    for sock in (tasks, results):
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
    tasks.connect(tasks_address)
    results.connect(results_address)
    results.send_multipart([b"", b"hello", b""])
    functions = {}
    while True:
        task_id, function_bytes, args = tasks.recv_multipart()
        function = functions.get(function_bytes)
        if function is None:
            function = functions[function_bytes] = dill.loads(function_bytes)
        try:
            result, status = function(*dill.loads(args)), b"ok"
        except Exception as error:
            result, status = repr(error), b"error"
        results.send_multipart([task_id, status, dill.dumps(result)])


class RayTarget(Target):
    """Ray core on a local instance (ray.init starts it, as the driver's descendants). A task is
    finished when its result has reached the driver: ObjectRef.future() resolves then, on Ray's
    own completion callback, the event ray.wait(fetch_local=True) waits for. Not ray.wait
    itself: each call costs time in proportion to the refs in flight, and a driver calling it
    as results arrive took 1.8 s of CPU for a burst of 2000 noops instead of 1.05 s."""

    name = "ray"
    requires = (("ray", "ray"),)
    batch_api = True

    def __init__(self, request):
        super().__init__(request)
        self.ray = None

    def setup(self):
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no reporting home
        import ray
        self.ray = ray  # from here on shutdown() calls ray.shutdown(), which is safe anyway
        # address="local": a new private instance, even where RAY_ADDRESS names a running one
        ray.init(address="local", num_cpus=self.executors, include_dashboard=False,
                 log_to_driver=False, logging_level=logging.ERROR)
        self.remote = ray.remote(max_retries=0)(self.function)
        self.finished = queue.SimpleQueue()
        return f"ray {ray.__version__}"

    def submit(self, count):
        futures = [ref.future() for ref in [self.remote.remote(*self.args) for _ in range(count)]]
        for future in futures:
            future.add_done_callback(self.finished.put)
        return futures

    def poll(self, timeout):
        return [(f, f.exception() is None) for f in drain(self.finished, timeout)]

    def shutdown(self):
        if self.ray is not None:
            self.ray.shutdown()


class DaskTarget(Target):
    """dask.distributed on a LocalCluster of `executors` worker processes with one thread each
    (the scheduler runs in the driver's process); finished futures come from
    distributed.as_completed, and poll() gathers their results."""

    name = "dask"
    requires = (("dask", "dask"), ("distributed", "distributed"))
    batch_api = True

    def __init__(self, request):
        super().__init__(request)
        self.cluster = self.client = None

    def setup(self):
        import dask
        import distributed
        self.cluster = distributed.LocalCluster(
            n_workers=self.executors, threads_per_worker=1, processes=True,
            dashboard_address=None, silence_logs=logging.ERROR)
        self.client = distributed.Client(self.cluster)
        self.finished = distributed.as_completed()
        return f"dask {dask.__version__}"

    def submit(self, count):
        # pure=False: identical arguments must not make identical (deduplicated) tasks.
        if count == 1:
            futures = [self.client.submit(self.function, *self.args, pure=False)]
        else:
            futures = self.client.map(self.function, *[[a] * count for a in self.args], pure=False)
        self.finished.update(futures)
        return futures

    def poll(self, timeout):
        # as_completed's own next() waits on a condition in 100 ms slices and can miss a wake-up
        # between its check and its wait; its queue is a queue.Queue, so wait on that instead.
        futures = drain(self.finished.queue, timeout)
        # The results of those that finished, in one round trip (with_results=True would
        # fetch them one by one).
        self.client.gather([f for f in futures if f.status == "finished"], errors="skip")
        return [(future, future.status == "finished") for future in futures]

    def forget(self, handles):
        for future in handles:
            future.cancel()

    def shutdown(self):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def celery_app(redis_url):
    """The Celery app of the driver and of its worker: Redis as broker and result backend, the
    four tasks as reference.<function>. Celery's default serializer, JSON, which carries the
    tasks' bytes too (kombu tags them; a worker running as root refuses pickle)."""
    from celery import Celery
    app = Celery("reference", broker=redis_url, backend=redis_url)
    app.conf.update(broker_connection_retry_on_startup=True, result_expires=3600,
                    worker_hijack_root_logger=False)
    for name, function in reference_tasks.TASKS.items():
        app.task(function, name=f"reference.{name}")
    return app


class CeleryTarget(Target):
    """Celery with one prefork worker of `executors` processes (`reference.py celery-worker`,
    in its own process group), Redis (loadgen's redis_url) as broker and result backend. Results
    arrive as Redis pub/sub messages that poll() drains, as AsyncResult.get() does; a
    then() callback collects each result as its message is read. No batch API: one
    apply_async per task."""

    name = "celery"
    requires = (("celery", "celery"), ("redis", "redis"))

    def __init__(self, request):
        super().__init__(request)
        self.worker = None

    def setup(self):
        import celery
        redis_url = self.request["redis_url"]
        self.app = celery_app(redis_url)
        self.task = self.app.tasks[f"reference.{self.request['function']}"]
        hostname = f"reference-{os.getpid()}@{socket.gethostname()}"
        self.worker = subprocess.Popen(
            [sys.executable, THIS_FILE, "celery-worker", redis_url, str(self.executors), hostname],
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=as_worker)
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        while not self.app.control.ping(destination=[hostname], timeout=0.5):
            if self.worker.poll() is not None:
                raise RuntimeError(
                    f"the celery worker exited with code {self.worker.returncode} during setup")
            if time.monotonic() > deadline:
                raise RuntimeError("the celery worker did not answer a ping")
        self.consumer = self.app.backend.result_consumer
        self.finished = []
        return f"celery {celery.__version__}"

    def submit(self, count):
        results = [self.task.apply_async(self.args) for _ in range(count)]
        for result in results:
            result.then(self.finished.append)
        return results

    def poll(self, timeout):
        deadline = time.monotonic() + timeout
        while not self.finished:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.consumer.drain_events(timeout=left)
        while True:  # and whatever else has arrived, without waiting
            known = len(self.finished)
            self.consumer.drain_events(timeout=0)
            if len(self.finished) == known:
                break
        finished = self.finished[:]
        self.finished.clear()  # the same list: then() holds its append
        return [(result, result.successful()) for result in finished]

    def shutdown(self):
        if self.worker is None:
            return
        group = self.worker.pid
        if self.worker.poll() is None:
            os.killpg(group, signal.SIGQUIT)  # cold shutdown: running (lost) tasks are not awaited
            try:
                self.worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(group, signal.SIGKILL)  # the pool processes, should any be left
        except ProcessLookupError:
            pass
        self.worker.wait()


def celery_worker(redis_url, concurrency, hostname):
    """CeleryTarget's worker: `celery worker` on the same app, prefork, quiet."""
    import warnings
    from celery.exceptions import SecurityWarning
    warnings.simplefilter("ignore", SecurityWarning)  # running as root (JSON only, so allowed)
    # a task that raised is reported to the driver; no traceback per task on stderr
    logging.getLogger("celery.app.trace").setLevel(logging.CRITICAL)
    celery_app(redis_url).worker_main([
        "--quiet", "worker", "--pool", "prefork", "--concurrency", concurrency,
        "--hostname", hostname, "--loglevel", "ERROR",
        "--without-gossip", "--without-mingle", "--without-heartbeat"])


TARGETS = {t.name: t for t in (ProcessPoolTarget, ZmqTarget, RayTarget, DaskTarget, CeleryTarget)}


class Repetition:
    """The driver's bookkeeping for one repetition: the tasks in flight and what became of them."""

    def __init__(self, target, timeout_s):
        self.target = target
        self.timeout_ns = int(timeout_s * 1e9)
        self.inflight = {}                  # handle -> submission (or scheduled) time
        self.order = collections.deque()    # (time, handle) as submitted: the next to be lost first
        self.latencies_us = []
        self.completed = self.failed = self.lost = 0
        self.first_ns = self.last_ns = None

    def submit(self, count, starts=None):
        """Submits `count` tasks, whose latencies count from `starts` (default: now)."""
        now = time.perf_counter_ns()
        handles = self.target.submit(count)
        starts = starts or [now] * count
        for handle, start in zip(handles, starts):
            self.inflight[handle] = start
            self.order.append((start, handle))
        if self.first_ns is None:
            self.first_ns = min(starts[0], now)

    def collect(self, until_ns=None):
        """Waits until a task finishes, or until until_ns, or at most POLL_CAP_S; notes the
        finished tasks and those that became lost."""
        now = time.perf_counter_ns()
        self._expire(now)
        wait_ns = POLL_CAP_S * 1e9
        if until_ns is not None:
            wait_ns = min(wait_ns, until_ns - now)
        if self.order:
            wait_ns = min(wait_ns, self.order[0][0] + self.timeout_ns - now)
        timeout = max(wait_ns, 0) / 1e9
        if not self.inflight:
            time.sleep(timeout)
            return
        finished = self.target.poll(timeout)
        now = time.perf_counter_ns()
        for handle, ok in finished:
            start = self.inflight.pop(handle, None)
            if start is None:
                continue  # counted as lost already
            self.latencies_us.append((now - start) // 1000)
            if ok:
                self.completed += 1
            else:
                self.failed += 1
            self.last_ns = now
        self._expire(now)

    def _expire(self, now):
        lost = []
        while self.order:
            start, handle = self.order[0]
            if handle in self.inflight:
                if now - start < self.timeout_ns:
                    break
                del self.inflight[handle]
                lost.append(handle)
            self.order.popleft()
        if lost:
            self.lost += len(lost)
            self.target.forget(lost)

    def report(self, rep):
        end = self.last_ns or time.perf_counter_ns()
        return {"rep": rep, "completed": self.completed, "failed": self.failed, "lost": self.lost,
                "makespan_s": (end - self.first_ns) / 1e9 if self.first_ns else 0.0,
                "latencies_us": self.latencies_us}


def burst(run, request, tasks):
    """Submits everything as fast as possible, then waits. Between submission calls it takes the
    tasks finished so far, but spends at most a tenth of its time on that (ray.wait, for one,
    costs in proportion to the tasks in flight)."""
    batch = max(1, request.get("batch_size", 1)) if run.target.batch_api else 1
    left = tasks
    next_poll = 0
    while left > 0:
        count = min(batch, left)
        run.submit(count)
        left -= count
        now = time.perf_counter_ns()
        if now >= next_poll:
            run.collect(until_ns=0)
            spent = time.perf_counter_ns() - now
            next_poll = now + spent + max(1_000_000, 9 * spent)
    while run.inflight:
        run.collect()


def closed(run, request, tasks):
    """`clients` tasks in flight; each finished (or lost) one is replaced at once, until `tasks`
    were submitted or, with duration_s, until that time has passed."""
    clients = max(1, request.get("clients", 1))
    duration = request.get("duration_s")
    end_ns = time.perf_counter_ns() + int(duration * 1e9) if duration else None
    submitted = 0
    while True:
        while len(run.inflight) < clients and (
                time.perf_counter_ns() < end_ns if end_ns else submitted < tasks):
            run.submit(1)
            submitted += 1
        if not run.inflight:
            return
        run.collect()


def open_loop(run, request, tasks):
    """Task k is sent at t0 + k/rate; one the driver sends late still counts from its slot."""
    rate = request.get("rate")
    if not rate or rate <= 0:
        raise ValueError("shape open needs a positive rate")
    duration = request.get("duration_s")
    total = math.ceil(rate * duration) if duration else tasks
    interval_ns = 1e9 / rate
    batch = max(1, request.get("batch_size", 1)) if run.target.batch_api else 1
    t0 = time.perf_counter_ns()
    sent = 0
    while sent < total or run.inflight:
        now = time.perf_counter_ns()
        due = []
        while sent + len(due) < total and t0 + (sent + len(due)) * interval_ns <= now:
            due.append(int(t0 + (sent + len(due)) * interval_ns))
        for i in range(0, len(due), batch):
            chunk = due[i:i + batch]
            run.submit(len(chunk), chunk)
        sent += len(due)
        run.collect(until_ns=int(t0 + sent * interval_ns) if sent < total else None)


SHAPES = {"burst": burst, "closed": closed, "open": open_loop}


def private_stdout():
    """Keeps the real stdout for the JSON lines (on a descriptor no child inherits) and points
    fd 1, and sys.stdout, at stderr."""
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def on_signal(signum, frame):
    raise SystemExit(128 + signum)


def run(request, emit):
    target = TARGETS[request["target"]](request)
    try:
        target.check()
    except Unavailable as error:
        emit({"unavailable": str(error)})
        return
    shape = SHAPES[request["shape"]]
    try:
        version = target.setup()
        signal.signal(signal.SIGTERM, on_signal)  # again: ray.init sets its own
        if request.get("warmup_tasks", 0) > 0:
            burst(Repetition(target, request["timeout_s"]), request, request["warmup_tasks"])
        emit({"ready": True, "target": target.name, "version": version})
        for rep in range(request.get("repetitions", 1)):
            repetition = Repetition(target, request["timeout_s"])
            shape(repetition, request, request["tasks"])
            emit(repetition.report(rep))
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        target.shutdown()
        reap_children()


def reap_children():
    """Terminates the multiprocessing children still alive (the process pool's workers)."""
    if "multiprocessing" in sys.modules:
        import multiprocessing
        children = multiprocessing.active_children()
        for child in children:
            child.terminate()
        for child in children:
            child.join()


def main():
    if sys.argv[1:2] == ["zmq-worker"]:
        return zmq_worker(*sys.argv[2:4])
    if sys.argv[1:2] == ["celery-worker"]:
        return celery_worker(*sys.argv[2:5])
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    out = private_stdout()

    def emit(line):
        out.write(json.dumps(line) + "\n")
        out.flush()

    try:
        request = json.load(sys.stdin)
        run(request, emit)
    except SystemExit:
        raise
    except Exception:
        traceback.print_exc()
        print(f"reference.py: error: {sys.exc_info()[1]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
