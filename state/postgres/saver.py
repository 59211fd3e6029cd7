"""LangGraph's PostgreSQL checkpointer, shaped for many concurrent runs.

The stock ``AsyncPostgresSaver`` serialises every call of a process behind one
lock, even over a connection pool. Here each call takes its own pooled
connection, in a transaction; blobs are committed when they are put
(``PostgresBlobStore``), so a checkpoint that refers to one never lacks it.
Channel versions are the compact ones of the SQLite store
(``state.sqlite_saver.compact_version``): a few bytes instead of ~50 for every
channel of every checkpoint.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.base import SerializerProtocol
from psycopg import AsyncCursor
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from mirograph.state.postgres.blobs import SCHEMA as BLOBS_SCHEMA
from mirograph.state.postgres.blobs import PostgresBlobStore
from mirograph.state.sqlite_saver import _LEADS, compact_version, stock_version


class PostgresSaver(AsyncPostgresSaver):
    """``AsyncPostgresSaver`` on a pool, one connection per call, blobs in its writes."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        *,
        serde: SerializerProtocol | None = None,
        blobs: PostgresBlobStore | None = None,
    ) -> None:
        super().__init__(pool, serde=serde)  # type: ignore[arg-type]
        self._pool = pool
        self._blobs = blobs

    def get_next_version(self, current: str | int | None, channel: None) -> str:
        """The next version in the thread's own form (see ``state.sqlite_saver``)."""
        if current is None:
            return compact_version(1)
        if isinstance(current, int):
            return compact_version(current + 1)
        following = int(current.split(".")[0]) + 1
        return compact_version(following) if current[0] in _LEADS else stock_version(following)

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        """A cursor on a connection of the pool's own, in a transaction (several runs'
        calls at once; the blobs a write refers to are committed before it)."""
        async with (
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor(binary=True, row_factory=dict_row) as cur,
        ):
            yield cur

    async def setup(self) -> None:
        """LangGraph's checkpoint schema and its migrations, and the blob table, once,
        in one transaction under an advisory lock: of processes opening a new store at
        once, one creates it and the others wait, then find it made. The migrations'
        ``CREATE INDEX CONCURRENTLY`` is run plainly: concurrently it waits for every
        open transaction, the waiting processes' included (a deadlock), and a build
        cut short leaves an invalid index that ``IF NOT EXISTS`` never repairs. The
        tables are new and empty here, so a plain build locks nothing for long."""
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('mirograph_checkpoints'))")
            async with conn.cursor(binary=True, row_factory=dict_row) as cur:
                await cur.execute(BLOBS_SCHEMA)
                await cur.execute(self.MIGRATIONS[0])
                await cur.execute("SELECT v FROM checkpoint_migrations ORDER BY v DESC LIMIT 1")
                row = await cur.fetchone()
                done = -1 if row is None else row["v"]
                for version in range(done + 1, len(self.MIGRATIONS)):
                    await cur.execute(_plain(self.MIGRATIONS[version]))
                    await cur.execute(
                        "INSERT INTO checkpoint_migrations (v) VALUES (%s)", (version,)
                    )


def _plain(statement: str) -> str:
    """A migration that builds an index ``CONCURRENTLY``, as a plain build."""
    return statement.replace(" CONCURRENTLY", "")
