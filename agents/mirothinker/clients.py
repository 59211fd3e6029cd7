"""The chat models' OpenAI clients: one TLS context for the whole process.

Making a client cost ~22 ms of CPU, nearly all of it loading the CA bundle into
a new TLS context (``load_verify_locations``), and every run (every agent of a
run) makes its own: 64 investigations at once paid 1.4 s of CPU for it. A TLS
context is read-only once made and safe to share between threads, event loops
and connections, so one is made per process (per ``SSL_CERT_FILE`` /
``SSL_CERT_DIR``, which it reads) and handed to each new client.

Each chat model still has a client, and a connection pool, of its own, closed
by its ``aclose``: a run's connections are its own to release. One pool shared
by all the runs of a loop costs more CPU than it saves: the HTTP library checks
every idle connection of a pool (a socket poll each) whenever a request joins
or leaves it, so 64 runs on one pool made 128 K polls where 64 pools of one
connection made none.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import ssl
import threading
from types import ModuleType

import openai

_contexts: dict[tuple[str | None, str | None], ssl.SSLContext] = {}
_lock = threading.Lock()


def async_client(
    base_url: str, api_key: str, timeout_s: float, max_retries: int
) -> openai.AsyncOpenAI:
    """A new client as ``openai.AsyncOpenAI(...)`` would make it, on the shared context."""
    http = _HttpClient(base_url=base_url, timeout=timeout_s, verify=tls_context())
    return openai.AsyncOpenAI(
        base_url=base_url,
        api_key=api_key,
        timeout=timeout_s,
        max_retries=max_retries,
        http_client=http,
    )


class _HttpClient(openai.DefaultAsyncHttpxClient):
    """The SDK's defaults, and like the SDK's own client, closed when dropped unclosed."""

    def __del__(self) -> None:
        if self.is_closed:
            return
        with contextlib.suppress(Exception):  # no running loop: nothing to close it on
            asyncio.get_running_loop().create_task(self.aclose())


def tls_context() -> ssl.SSLContext:
    """The process's default TLS context for model servers: the one the HTTP library
    would make for a client of its own (``verify=True``), made once."""
    key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    with _lock:
        context = _contexts.get(key)
        if context is None:
            context = _contexts[key] = http_package().create_ssl_context()
        return context


def http_package() -> ModuleType:
    """The HTTP package the installed ``openai`` builds on (``httpx2``, or ``httpx``)."""
    base = next(
        cls for cls in openai.DefaultAsyncHttpxClient.__mro__ if cls.__name__ == "AsyncClient"
    )
    return importlib.import_module(base.__module__.split(".")[0])
