"""Fixtures for the FaaS conformance suite.

The server is found through the ``FAAS_URL`` environment variable (default
``http://127.0.0.1:8000``). If ``GET {FAAS_URL}/health`` does not answer 200, every test
is skipped with an explanation instead of failing with connection errors.
"""

from __future__ import annotations

import os

import pytest
import requests

DEFAULT_URL = "http://127.0.0.1:8000"
HEALTH_TIMEOUT = 5.0


def _base_url() -> str:
    return (os.environ.get("FAAS_URL") or DEFAULT_URL).rstrip("/")


@pytest.fixture(scope="session")
def base_url() -> str:
    """Base URL of the system under test, without a trailing slash."""
    return _base_url()


@pytest.fixture(scope="session", autouse=True)
def _require_server(base_url: str) -> None:
    """Skip the whole session (every test) if the server's /health does not answer 200."""
    url = f"{base_url}/health"
    try:
        resp = requests.get(url, timeout=HEALTH_TIMEOUT)
    except requests.RequestException as exc:
        pytest.skip(
            f"FaaS server not reachable: GET {url} failed ({type(exc).__name__}: {exc}). "
            f"Start the system or set FAAS_URL to its base URL."
        )
    if resp.status_code != 200:
        pytest.skip(
            f"FaaS server not healthy: GET {url} -> HTTP {resp.status_code} "
            f"body={resp.text[:500]!r}. Start the system or set FAAS_URL to its base URL."
        )


@pytest.fixture
def session():
    """A fresh ``requests.Session`` per test (keeps tests independent)."""
    with requests.Session() as s:
        yield s
