"""One connection, on one thread, per SQLite store file per process.

Several runs in one process (a worker, a benchmark) write the same store.
With a connection each, a write transaction left open across an ``await``
locks the others out, and SQLite's busy wait then blocks the event loop
itself. Here every checkpoint and blob statement for a file runs, in call
order, on one thread that owns one connection: each transaction opens and
commits within one call, and the loop only ever awaits. Call order is commit
order, so a blob written before the checkpoint that refers to it is committed
no later than that checkpoint.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: How long a write waits for another process's transaction (on this file's thread).
BUSY_TIMEOUT_MS = 10_000

_open_files: dict[str, SqliteFile] = {}
_open_files_lock = threading.Lock()


class SqliteFile:
    """A store file's shared connection and the thread that runs its statements."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key = os.path.realpath(path)
        #: Held by every statement on ``conn`` (re-entrant: a write wraps the saver's own).
        self.lock = threading.RLock()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"sqlite:{path.name}")
        self._users = 0
        self._conn: sqlite3.Connection | None = None
        self._ready: list[Callable[[sqlite3.Connection], None]] = []

    @classmethod
    def share(cls, path: Path) -> SqliteFile:
        """The process's ``SqliteFile`` for ``path`` (one per file); ``release`` it after."""
        key = os.path.realpath(path)
        with _open_files_lock:
            file = _open_files.get(key)
            if file is None:
                file = _open_files[key] = cls(path)
            file._users += 1
            return file

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"{self.path} is not open yet: await open() first")
        return self._conn

    async def open(self, *setups: Callable[[sqlite3.Connection], None]) -> None:
        """Connect (once) and run each of ``setups`` once per process: schema, pragmas."""
        await self.call(self._open, setups)

    def _open(self, setups: tuple[Callable[[sqlite3.Connection], None], ...]) -> None:
        with self.lock:
            if self._conn is None:
                conn = sqlite3.connect(self.path, check_same_thread=False)
                try:
                    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                    # WAL: a reader (``show``) never blocks the writer; NORMAL sync is
                    # durable against process crashes, which is what kill -9 is.
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("PRAGMA synchronous=NORMAL")
                except BaseException:
                    conn.close()
                    raise
                self._conn = conn
            for setup in setups:
                if setup not in self._ready:
                    setup(self._conn)
                    self._ready.append(setup)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on this file's thread, after every call made before it."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Queue ``fn(*args)`` on this file's thread without waiting for it."""
        return self._executor.submit(fn, *args)

    async def release(self) -> None:
        """One user fewer; the last one closes the connection and ends the thread."""
        with _open_files_lock:
            self._users -= 1
            if self._users > 0:
                return
            if _open_files.get(self._key) is self:
                del _open_files[self._key]
        try:
            await self.call(self._close)
        finally:
            self._executor.shutdown(wait=False)

    def _close(self) -> None:
        with self.lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
