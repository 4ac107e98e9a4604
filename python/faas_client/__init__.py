"""Python client for the FaaS REST API.

>>> from faas_client import Client
>>> c = Client("http://127.0.0.1:8000")
>>> c.result(c.submit(lambda x: x * 2, 21))
42

See :class:`Client` for the synchronous API and :class:`FaaSExecutor` for a
:class:`concurrent.futures.Executor` backed by the service.
"""

from .client import Client
from .errors import FaaSError, IncompatibleEnvironment, TaskCancelled, TaskFailed, WorkerFailure
from .executor import FaaSExecutor

__version__ = "0.1.0"

__all__ = [
    "Client",
    "FaaSExecutor",
    "FaaSError",
    "IncompatibleEnvironment",
    "TaskCancelled",
    "TaskFailed",
    "WorkerFailure",
    "__version__",
]
