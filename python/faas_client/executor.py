"""A ``concurrent.futures.Executor`` that runs calls on the FaaS service."""

import queue
import threading
from concurrent.futures import Executor, Future
from concurrent.futures import wait as wait_futures

from .client import FINAL_STATUSES, MAX_POLL, Client, configured, outcome

_STOP = object()
_START_LOCK = threading.Lock()


def _start(future):
    """``set_running_or_notify_cancel`` exactly once per future, whichever of the
    waiter thread and the cancel callback gets there first; False if cancelled."""
    with _START_LOCK:
        if getattr(future, "_faas_started", False):
            return False
        future._faas_started = True
    return future.set_running_or_notify_cancel()


def _notify_if_cancelled(future):
    """Done callback: move a cancelled future to CANCELLED_AND_NOTIFIED at once, so
    ``wait()``/``as_completed()`` need not wait for a waiter thread's long poll."""
    if future.cancelled():
        _start(future)


class FaaSExecutor(Executor):
    """Run callables on the FaaS service behind the standard ``Executor`` API::

        with FaaSExecutor("http://127.0.0.1:8000") as ex:
            assert ex.submit(pow, 2, 10).result() == 1024

    :meth:`submit` registers the callable (once per object) and submits the task
    from the calling thread, then returns a :class:`~concurrent.futures.Future`.
    Futures are completed by at most ``max_waiters`` background threads, each with
    its own HTTP session, that long-poll ``/result/{id}?wait=30`` (no busy polling);
    a task still unfinished after one poll goes to the back of the queue so slow
    tasks do not hold up fast ones.

    Futures stay *pending* until their task is final, so ``cancel()`` succeeds
    until then; it only stops the local wait, the server still runs the task.
    """

    def __init__(self, url=None, token=None, max_waiters=64,
                 timeout=30, check_versions=True):
        if max_waiters < 1:
            raise ValueError("max_waiters must be at least 1")
        url, token = configured(url, token)
        self._url, self._token, self._timeout = url, token, timeout
        self._max_waiters = max_waiters
        self._client = Client(url, token, timeout, check_versions)  # for submissions
        self._submit_lock = threading.Lock()
        self._lock = threading.Lock()  # guards the fields below
        self._queue = queue.Queue()  # (future, task_id) or _STOP
        self._threads = []
        self._idle = 0
        self._outstanding = set()
        self._shutdown = False

    def submit(self, fn, /, *args, **kwargs):
        """Submit ``fn(*args, **kwargs)``; ``fn`` may also be a function id string."""
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot submit after shutdown")
        with self._submit_lock:
            task_id = self._client.submit(fn, *args, **kwargs)
        future = Future()
        future.task_id = task_id
        future.add_done_callback(_notify_if_cancelled)
        with self._lock:
            self._outstanding.add(future)
            if self._idle == 0 and len(self._threads) < self._max_waiters:
                thread = threading.Thread(target=self._waiter, daemon=True,
                                          name=f"faas-waiter-{len(self._threads)}")
                self._threads.append(thread)
                thread.start()
        self._queue.put((future, task_id))
        return future

    def _waiter(self):
        client = Client(self._url, self._token, self._timeout, check_versions=False)
        try:
            while True:
                with self._lock:
                    self._idle += 1
                item = self._queue.get()
                with self._lock:
                    self._idle -= 1
                if item is _STOP:
                    return
                future, task_id = item
                if future.cancelled():
                    self._finished(future)
                    continue
                try:
                    body = client.poll(task_id, MAX_POLL)
                    if body["status"] not in FINAL_STATUSES:
                        self._queue.put(item)  # not yet: back of the line
                        continue
                    value, error = outcome(task_id, body), None
                except BaseException as exc:  # the task's own exception, or HTTP trouble
                    value, error = None, exc
                if _start(future):
                    if error is None:
                        future.set_result(value)
                    else:
                        future.set_exception(error)
                    error = None  # break the reference cycle
                self._finished(future)
        finally:
            client.close()

    def _finished(self, future):
        with self._lock:
            self._outstanding.discard(future)
            stop = self._shutdown and not self._outstanding
        if stop:
            self._stop_threads()

    def _stop_threads(self):
        for _ in range(len(self._threads)):
            self._queue.put(_STOP)

    def shutdown(self, wait=True, *, cancel_futures=False):
        """Refuse new work; with ``cancel_futures`` cancel every pending future;
        with ``wait`` block until all outstanding futures are done."""
        with self._lock:
            self._shutdown = True
            outstanding = list(self._outstanding)
        if cancel_futures:
            for future in outstanding:
                future.cancel()
        if not self._outstanding:
            self._stop_threads()
        if wait:
            wait_futures(outstanding)
        with self._submit_lock:
            self._client.close()
