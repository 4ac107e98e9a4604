"""Exceptions raised by the client."""


class FaaSError(Exception):
    """The server answered with an HTTP error (4xx/5xx).

    ``status_code`` is the HTTP status, ``message`` the server's ``"error"`` text.
    """

    def __init__(self, status_code, message):
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code
        self.message = message


class TaskFailed(Exception):
    """A task FAILED but its result could not be turned into an exception
    (e.g. the payload is not a deserializable exception object).

    ``task_id`` names the task, ``result`` holds whatever was decoded (or the raw payload).
    """

    def __init__(self, task_id, message, result=None):
        super().__init__(f"task {task_id} failed: {message}")
        self.task_id = task_id
        self.result = result


class WorkerFailure(TaskFailed):
    """The platform (not the function) failed to run the task: the worker
    crashed, timed out, ran out of memory, ...

    Raised in place of the server's dynamically built ``WorkerFailure`` class,
    which chained as ``__cause__``.
    """

    def __init__(self, message, task_id=None):
        Exception.__init__(self, message)
        self.task_id = task_id
        self.result = None


class TaskCancelled(TaskFailed):
    """The task was cancelled through the API (``POST /cancel/{id}``) before it finished.

    Raised in place of the server's dynamically built ``TaskCancelled`` class, which is
    chained as ``__cause__``.
    """

    def __init__(self, message, task_id=None):
        Exception.__init__(self, message)
        self.task_id = task_id
        self.result = None


class IncompatibleEnvironment(RuntimeError):
    """The workers' Python or dill version differs (major.minor) from the local
    one, so dill payloads cannot be exchanged reliably."""
