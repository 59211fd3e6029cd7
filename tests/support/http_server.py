"""A real local HTTP server for tests: a Starlette app under uvicorn on a background thread.

Tools that speak HTTP are tested against it instead of a mocked transport.
Handlers that must never answer await ``until_closed()``, which returns only
when the server stops, so that shutdown does not wait on them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from mirograph.agents.sim.server import NotifyingServer, server_config


class HttpServer:
    """Serves ``routes`` on 127.0.0.1 (a free port) while in a ``with`` block."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self.app = Starlette(routes=list(routes))
        config = server_config(self.app, "127.0.0.1", 0, log_config=None)
        self._server = NotifyingServer(config, self._on_started)
        self._started = threading.Event()
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def _on_started(self, port: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._closing = asyncio.Event()
        self._port = port
        self._started.set()

    def _run(self) -> None:
        try:
            self._server.run()
        finally:
            self._started.set()

    def start(self) -> HttpServer:
        self._thread = threading.Thread(target=self._run, name="test-http", daemon=True)
        self._thread.start()
        if not self._started.wait(30) or self._port is None:
            self.close()
            raise RuntimeError("the test HTTP server did not start listening")
        return self

    def close(self) -> None:
        if self._loop is not None and self._closing is not None:
            self._loop.call_soon_threadsafe(self._closing.set)
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    async def until_closed(self) -> None:
        """Wait, inside a handler, until the server stops: a request that never gets an answer."""
        assert self._closing is not None
        await self._closing.wait()

    @property
    def root_url(self) -> str:
        if self._port is None:
            raise RuntimeError("HttpServer is not started")
        return f"http://127.0.0.1:{self._port}"

    def url(self, path: str) -> str:
        return f"{self.root_url}{path}"

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
