"""One event loop per worker process, on a thread of its own.

Celery's ``threads`` pool gives each task a thread; an investigation is mostly
waiting on model and tool calls, so the tasks hand their coroutines to one
shared loop (``asyncio.run_coroutine_threadsafe``) and wait: a worker runs its
``--concurrency`` investigations on one loop, sharing the store's connections.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """An asyncio loop running forever on a daemon thread, started on first use."""

    def __init__(self, name: str = "mirograph-loop") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                threading.Thread(target=serve, name=self._name, daemon=True).start()
                ready.wait()
                self._loop = loop
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result (from any other thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def call(self, callback: Any, *args: Any) -> None:
        """Call ``callback(*args)`` on the loop's thread, soon."""
        self.loop.call_soon_threadsafe(callback, *args)
