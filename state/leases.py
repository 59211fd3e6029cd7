"""Who runs a run: one lease per run, with a fencing token, in the store.

A run has exactly one runner. Before a session executes anything it acquires
the run's lease (one ``BEGIN IMMEDIATE`` transaction, so two acquirers are
ordered by SQLite's write lock); it renews it while it runs and releases it
when the session ends. Each acquisition increments the run's ``token``:
writes of a session carry its token, so a runner that lost its lease (taken
over after it stopped renewing) cannot overwrite what the new runner wrote.

A holder that died frees the lease: on the holder's host, at once (its pid is
gone, or now names a different process); from another host, once its
heartbeat expired. The CLI's single-machine lock and a fleet of workers use
this same mechanism: ``acquire`` (which takes over a dead or expired holder),
``renew``, ``release``, ``holder`` and ``expired`` (for a takeover sweep).
"""

from __future__ import annotations

import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import astuple, dataclass
from pathlib import Path

from mirograph.errors import RunBusyError

#: How long a lease stays valid without a renewal (seen from another host).
LEASE_TTL_S = 300.0
#: A holder renews at most this often: renewals are cheap, but still writes.
RENEW_EVERY_S = 5.0
#: A renewal never waits long for the write lock: a skipped one is retried later.
RENEW_BUSY_MS = 100

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mirograph_leases (
    run_id TEXT PRIMARY KEY,
    token INTEGER NOT NULL,
    owner TEXT,
    pid INTEGER,
    pid_started INTEGER,
    host TEXT,
    acquired_at REAL,
    expires_at REAL NOT NULL
)
"""
#: How the owner of a lease a fleet worker holds starts: the takeover sweep continues
#: only runs whose dead runner was a worker (a run a person ran and killed stays theirs).
WORKER_TAG = "worker:"
_owner_tag = ""


def hold_as_worker() -> None:
    """Every lease this process takes from now on is a worker's (``mirograph worker``)."""
    global _owner_tag
    _owner_tag = WORKER_TAG


def new_owner() -> str:
    """A fresh owner for a lease this process takes (tagged in a worker)."""
    return _owner_tag + secrets.token_hex(8)


#: The columns of a lease row, in ``Lease`` field order after ``run_id``.
LEASE_COLUMNS = "token, owner, pid, pid_started, host, acquired_at, expires_at"


@dataclass(frozen=True)
class Lease:
    """A run's lease row; ``owner`` None: released (the token stays, to keep increasing)."""

    run_id: str
    token: int
    owner: str | None
    pid: int | None
    pid_started: int | None
    host: str | None
    acquired_at: float | None
    expires_at: float

    def is_live(self, *, host: str | None = None, now: float | None = None) -> bool:
        """Whether a live runner holds it: its heartbeat has not expired and, on this
        host, its process is alive (a dead one frees it at once). A live process that
        stopped renewing (stopped, hung, or unable to release) loses it on expiry too."""
        if self.owner is None:
            return False
        if self.expires_at <= (time.time() if now is None else now):
            return False
        return self.host != (host or this_host()) or process_alive(self.pid, self.pid_started)

    @property
    def by_worker(self) -> bool:
        """Whether a fleet worker took it (``hold_as_worker``)."""
        return (self.owner or "").startswith(WORKER_TAG)

    def busy_message(self) -> str:
        return (
            f"run {self.run_id} is running in pid {self.pid} on {self.host};"
            f" `mirograph pause {self.run_id}` to stop it"
        )


def this_host() -> str:
    return socket.gethostname()


def process_alive(pid: int | None, started: int | None = None) -> bool:
    """Whether ``pid`` is a live (not zombie) process; with ``started`` (its start
    time), the same process and not a later one that reused the pid."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _proc_stat(pid)
    if fields is None:
        return True  # no /proc here: the signal said it exists
    state, start = fields
    return state != "Z" and (started is None or start == started)


def process_started(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), None where /proc is absent."""
    fields = _proc_stat(pid)
    return fields[1] if fields else None


def _proc_stat(pid: int) -> tuple[str, int] | None:
    try:
        after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
        return after_name[0], int(after_name[19])
    except (OSError, IndexError, ValueError):
        return None


class SqliteLeases:
    """Leases in a table of the run store's SQLite file (beside the registry)."""

    def __init__(
        self,
        path: Path | str,
        *,
        ttl_s: float = LEASE_TTL_S,
        renew_every_s: float = RENEW_EVERY_S,
        host: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout=10000")
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(_SCHEMA)
        self._lock = threading.Lock()  # one statement at a time on the connection
        self.ttl_s = ttl_s
        self.renew_every_s = renew_every_s
        self.host = host or this_host()
        self._clock = clock

    def close(self) -> None:
        self._conn.close()

    def acquire(self, run_id: str, *, pid: int | None = None) -> Lease:
        """Take the run's lease for this process (or ``pid``), with the next token.

        A live holder raises ``RunBusyError`` naming it; a dead or expired one
        is taken over. Read and write are one transaction: of two acquirers,
        exactly one wins.
        """
        pid = pid or os.getpid()
        owner, started = new_owner(), process_started(pid)
        with self._lock, self._transaction():
            now = self._clock()
            current = self._read(run_id)
            if current is not None and current.is_live(host=self.host, now=now):
                raise RunBusyError(current.busy_message())
            token = (current.token if current else 0) + 1
            lease = Lease(run_id, token, owner, pid, started, self.host, now, now + self.ttl_s)
            self._conn.execute(
                f"INSERT OR REPLACE INTO mirograph_leases (run_id, {LEASE_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, *astuple(lease)[1:]),
            )
        return lease

    def renew(self, lease: Lease) -> bool | None:
        """Push the lease's expiry forward: True renewed, False lost (another runner
        holds it now), None skipped (the store was busy; try again later)."""
        with self._lock:
            self._conn.execute(f"PRAGMA busy_timeout={RENEW_BUSY_MS}")
            try:
                cursor = self._conn.execute(
                    "UPDATE mirograph_leases SET expires_at = ?"
                    " WHERE run_id = ? AND token = ? AND owner = ?",
                    (self._clock() + self.ttl_s, lease.run_id, lease.token, lease.owner),
                )
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    return None
                raise
            finally:
                self._conn.execute("PRAGMA busy_timeout=10000")
        return cursor.rowcount == 1

    def release(self, lease: Lease) -> bool:
        """Give the lease up (the token stays); False if it was no longer ours."""
        with self._lock:
            cursor = self._conn.execute(
                "UPDATE mirograph_leases SET owner = NULL, expires_at = 0"
                " WHERE run_id = ? AND token = ? AND owner = ?",
                (lease.run_id, lease.token, lease.owner),
            )
        return cursor.rowcount == 1

    def holds(self, lease: Lease) -> bool:
        """Whether ``lease`` is still the run's current lease (a read: never waits)."""
        with self._lock:
            current = self._read(lease.run_id)
        return current is not None and (current.token, current.owner) == (lease.token, lease.owner)

    def holder(self, run_id: str) -> Lease | None:
        """The run's live holder, or None."""
        with self._lock:
            current = self._read(run_id)
        return current if current is not None and current.is_live(host=self.host) else None

    def expired(self) -> list[Lease]:
        """Held leases whose holder is gone: what a takeover sweep would pick up."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT run_id, {LEASE_COLUMNS} FROM mirograph_leases WHERE owner IS NOT NULL"
            ).fetchall()
        now = self._clock()
        leases = [Lease(*row) for row in rows]
        return [lease for lease in leases if not lease.is_live(host=self.host, now=now)]

    def get(self, run_id: str) -> Lease | None:
        """The run's lease row as stored (held or released), None if it never had one."""
        with self._lock:
            return self._read(run_id)

    def _read(self, run_id: str) -> Lease | None:
        row = self._conn.execute(
            f"SELECT run_id, {LEASE_COLUMNS} FROM mirograph_leases WHERE run_id = ?", (run_id,)
        ).fetchone()
        return Lease(*row) if row else None

    def _transaction(self) -> _Immediate:
        return _Immediate(self._conn)


class _Immediate:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error): the write lock first."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *_: object) -> None:
        self._conn.execute("ROLLBACK" if kind is not None else "COMMIT")


def fenced(lease: Lease | None) -> tuple[str, tuple[object, ...]]:
    """SQL condition (and its parameters) true only while ``lease`` is the run's
    current lease: appended to a write, it refuses a runner that lost its lease."""
    if lease is None:
        return "", ()
    return (
        " AND EXISTS (SELECT 1 FROM mirograph_leases WHERE run_id = ? AND token = ? AND owner = ?)",
        (lease.run_id, lease.token, lease.owner),
    )


class Fences:
    """The leases a checkpoint saver fences its runs' writes by (``Store.fence``).

    Per run: a write of the run's thread, in any namespace, goes in only while the
    run's lease is still the one fenced. Per session too: the session that fenced
    the run (its task, and the tasks it starts) keeps its own lease, so once a
    later session of the run in this process fenced it by a newer lease, a write
    of the earlier session (hung past its lease, then woken) is still refused.
    """

    def __init__(self) -> None:
        self._by_run: dict[str, Lease] = {}
        self._session: ContextVar[Lease | None] = ContextVar(f"fence {id(self)}", default=None)

    def fence(self, lease: Lease) -> None:
        self._by_run[lease.run_id] = lease
        self._session.set(lease)

    def unfence(self, lease: Lease) -> None:
        if self._by_run.get(lease.run_id) == lease:
            del self._by_run[lease.run_id]
        if self._session.get() == lease:
            self._session.set(None)

    def of(self, thread_id: object) -> Lease | None:
        """The lease a write of ``thread_id`` here must still hold; None: not fenced."""
        own = self._session.get()
        if own is not None and own.run_id == thread_id:
            return own
        return self._by_run.get(str(thread_id)) if self._by_run else None
