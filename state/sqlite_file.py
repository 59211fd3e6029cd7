"""One connection, on one thread, per SQLite store file per process.

Several runs in one process (a worker, a benchmark) write the same store.
With a connection each, a write transaction left open across an ``await``
locks the others out, and SQLite's busy wait then blocks the event loop
itself. Here every checkpoint and blob statement for a file runs, in call
order, on one thread that owns one connection: each transaction opens and
commits within one call, and the loop only ever awaits. Call order is commit
order, so a blob written before the checkpoint that refers to it is committed
no later than that checkpoint.

A write that cannot wait runs at once on the caller's thread instead (``now``):
when nothing is queued before it, the connection is free, and SQLite's write
lock is free (a zero busy timeout: a held lock sends the write to the queue).
A lone run thus pays no thread hand-off per step, and the loop still never
waits for a lock. WAL checkpoints (which fsync) run on the thread too.
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
#: Commits between two WAL checkpoints (the connection's own automatic ones are off).
CHECKPOINT_EVERY = 200
_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


class NotNow(Exception):
    """A write ``SqliteFile.now`` could not run at once: it goes to the thread."""


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
        #: The call queued last (under ``_queueing``): while it runs, nothing runs at once.
        self._last: Future[Any] | None = None
        self._queueing = threading.Lock()
        self._commits = 0

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
                    conn.execute("PRAGMA wal_autocheckpoint=0")  # on the thread: see ``wrote``
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
        return await asyncio.wrap_future(self.submit(fn, *args))

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Queue ``fn(*args)`` on this file's thread without waiting for it."""
        with self._queueing:
            self._last = self._executor.submit(fn, *args)
            return self._last

    def now(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` here, at once, if it need not wait for anything; else ``NotNow``.

        ``fn`` must be one transaction that rolls back on error; it runs with a
        zero busy timeout, so a lock held elsewhere fails it at its first write.
        """
        if self._last is not None and not self._last.done():
            raise NotNow  # keep call order: the queue goes first
        if not self.lock.acquire(blocking=False):
            raise NotNow
        try:
            self.conn.execute("PRAGMA busy_timeout=0")
            try:
                return fn(*args)
            except sqlite3.OperationalError as exc:
                if is_busy(exc):
                    raise NotNow from exc
                raise
            finally:
                self.conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        finally:
            self.lock.release()

    def wrote(self) -> None:
        """Count a commit; every ``CHECKPOINT_EVERY``, move the WAL into the
        database on the thread (a passive checkpoint: it never waits for readers)."""
        self._commits += 1
        if self._commits >= CHECKPOINT_EVERY:
            self._commits = 0
            self.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        with self.lock:
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

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


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "locked by another connection" (any extended code)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _BUSY_CODES
