"""Runs' events in the PostgreSQL store: ``state.events``' contract for many machines.

A session's events are numbered as they come and queued; a background task of
the session's event loop inserts what is queued in one statement every
``FLUSH_S`` on a pooled connection, so an event costs the engine no round trip
(a 600-turn run's per-turn time stays flat) and a crash loses at most the last
``FLUSH_S`` of them. ``aclose`` (every session's end, however it ended) stores
the rest. A store that is away keeps the queue in memory and is retried; one
warning says so.

A session's insert holds its lease row (``FOR KEY SHARE``) and stores nothing once
the lease is another's: a taker-over, whose ``acquire`` waits for that lock, numbers
its events after every event the old session stored, and the old session's late
events never take those numbers. Live copies go out once stored (``listen``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from typing import Any

from psycopg_pool import AsyncConnectionPool

from mirograph.state.events import READ_LIMIT, Stored, encode
from mirograph.state.leases import Lease

log = logging.getLogger(__name__)

SCHEMA = [
    """
    CREATE TABLE IF NOT EXISTS mirograph_events (
        run_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        ts DOUBLE PRECISION NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    )
    """
]
#: Seconds between two inserts of a session's queued events.
FLUSH_S = 0.2
#: Seconds a session's end waits for its last events to be stored when the store is away.
CLOSE_WAIT_S = 2.0
#: Events a session keeps for a store that is away at most (the oldest go first).
QUEUE_MAX = 100_000

_INSERT = (
    "INSERT INTO mirograph_events (run_id, seq, ts, body) VALUES (%s, %s, %s, %s)"
    " ON CONFLICT (run_id, seq) DO NOTHING"
)


class PostgresEvents:
    """The ``mirograph_events`` table, through the store's pool."""

    def __init__(self, pool: AsyncConnectionPool[Any], url: str) -> None:
        self._pool = pool
        self._url = url

    def location(self, run_id: str) -> str:
        from mirograph.state.store import shown_url

        return f"{shown_url(self._url)} (table mirograph_events, run_id {run_id})"

    async def writer(self, run_id: str, lease: Lease | None = None) -> PostgresEventWriter:
        """A session's appender, numbering after the run's stored events; with the
        session's ``lease`` (taken before), fenced by it."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT coalesce(max(seq), 0) FROM mirograph_events WHERE run_id = %s",
                (run_id,),
            )
            row = await cursor.fetchone()
        return PostgresEventWriter(self._pool, run_id, int(_first(row) or 0), lease)

    async def read(
        self, run_id: str, after: int = 0, limit: int = READ_LIMIT
    ) -> list[tuple[int, dict[str, Any]]]:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT seq, body FROM mirograph_events WHERE run_id = %s AND seq > %s"
                " ORDER BY seq LIMIT %s",
                (run_id, after, limit),
            )
            rows = await cursor.fetchall()
        found = []
        for row in rows:
            seq, body = (row["seq"], row["body"]) if isinstance(row, dict) else row
            with contextlib.suppress(ValueError):
                found.append((int(seq), json.loads(body)))
        return found


def _outage(exc: BaseException) -> bool:
    from mirograph.state.postgres.store import is_outage

    return is_outage(exc)


def _first(row: Any) -> Any:
    if row is None:
        return None
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


class PostgresEventWriter:
    """Numbers and queues one session's events; a task of its loop stores them."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        run_id: str,
        last_seq: int,
        lease: Lease | None = None,
    ) -> None:
        self._pool = pool
        self.run_id = run_id
        self._lease = lease
        #: Whether the lease went to another session: nothing is stored any more.
        self.lost = False
        self._stored: Stored | None = None
        self._seq = last_seq
        self._queue: list[tuple[str, int, float, str]] = []
        self._lock = threading.Lock()  # tools may emit from threads of their own
        self._warned = False
        #: Whether the last insert found the store away (not an error of ours).
        self._away = False
        self._task = asyncio.create_task(self._pump(), name=f"events {run_id}")

    def append(self, event: dict[str, Any]) -> tuple[int, str]:
        text = encode(event)
        ts = float(event.get("ts") or time.time())
        with self._lock:
            self._seq += 1
            self._queue.append((self.run_id, self._seq, ts, text))
            if len(self._queue) > QUEUE_MAX:
                del self._queue[: len(self._queue) - QUEUE_MAX]
            return self._seq, text

    def listen(self, stored: Stored) -> None:
        self._stored = stored

    async def _pump(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            await self._flush()

    async def _flush(self) -> bool:
        """Insert what is queued; False (and the events kept) when the store is away."""
        with self._lock:
            batch, self._queue = self._queue, []
        if not batch:
            return True
        if self.lost:
            return True  # taken over: what this session still says is not the run's
        try:
            async with (
                self._pool.connection() as conn,
                conn.transaction(),
                conn.cursor() as cursor,
            ):
                if not await self._holds(cursor):
                    self._lose(len(batch))
                    return True
                await cursor.executemany(_INSERT, batch)
        except BaseException as exc:
            with self._lock:
                self._queue[:0] = batch
            if not isinstance(exc, Exception):
                raise  # cancelled (the session's end waited long enough): kept, counted
            self._away = _outage(exc)
            if not self._warned:
                self._warned = True
                # A store gone away stops the run, which says so in a line of its own.
                (log.debug if self._away else log.warning)(
                    "events of run %s are not reaching the store (%s); kept and retried",
                    self.run_id,
                    " ".join(str(exc).split())[:200] or type(exc).__name__,
                )
            return False
        self._warned = False
        if self._stored is not None:
            for _, seq, _, text in batch:
                self._stored(seq, text)
        return True

    async def _holds(self, cursor: Any) -> bool:
        """Whether the session's lease is still the run's; its row stays locked against
        a taker-over's ``acquire`` until the insert commits. No lease: unfenced."""
        lease = self._lease
        if lease is None:
            return True
        await cursor.execute(
            "SELECT token, owner FROM mirograph_leases WHERE run_id = %s FOR KEY SHARE",
            (lease.run_id,),
        )
        row = await cursor.fetchone()
        found = tuple(row.values()) if isinstance(row, dict) else row
        return found is not None and tuple(found) == (lease.token, lease.owner)

    def _lose(self, dropped: int) -> None:
        self.lost = True
        with self._lock:
            dropped += len(self._queue)
            self._queue.clear()
        # Said at debug level: the session's end says in one line that the run was
        # taken over and this session's changes were not saved.
        log.debug(
            "run %s was taken over by another session: %d events of this one not stored",
            self.run_id,
            dropped,
        )

    async def flush(self) -> None:
        """Store what is queued now."""
        await self._flush()

    async def aclose(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        try:
            async with asyncio.timeout(CLOSE_WAIT_S):
                for _ in range(int(CLOSE_WAIT_S / FLUSH_S) + 1):
                    if await self._flush():
                        break
                    await asyncio.sleep(FLUSH_S)
        except TimeoutError:
            self._away = True  # no connection within the wait: the store is away
        if self._queue:
            (log.debug if self._away else log.warning)(
                "%d events of run %s could not be stored",
                len(self._queue),
                self.run_id,
            )


def create_tables(url: str, *schemas: list[str]) -> None:
    """The events table (and ``schemas``' tables), once, under an advisory lock."""
    from mirograph.state.postgres.connect import connect, create_once

    with connect(url) as conn:
        create_once(conn, "mirograph_events", [*SCHEMA, *(s for group in schemas for s in group)])
