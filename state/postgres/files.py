"""Runs' workspace files in the PostgreSQL store, so a run resumed on another machine
finds the files its tools wrote on the first (``flows.workspace_sync`` decides what
to send and when; this is the table).

One row per file: its path relative to the workspace (``/``-separated), content,
size, modification time (ns) and SHA-256. Files are sent when they change and read
back whole when a session starts on a machine whose workspace lacks them.

Writes are fenced by the session's lease like checkpoint writes
(``state.postgres.saver``): a session that lost its run to another runner has its
sends dropped, so it never overwrites the new runner's files.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mirograph.errors import LeaseLostError

if TYPE_CHECKING:  # a SQLite-only run imports this module, never the driver
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

    from mirograph.state.leases import Lease

SCHEMA = [
    """
    CREATE TABLE IF NOT EXISTS mirograph_files (
        run_id TEXT NOT NULL,
        path TEXT NOT NULL,
        content BYTEA NOT NULL,
        size BIGINT NOT NULL,
        mtime_ns BIGINT NOT NULL,
        sha256 TEXT NOT NULL,
        PRIMARY KEY (run_id, path)
    )
    """
]


@dataclass(frozen=True)
class StoredFile:
    """What the store holds of one workspace file (its content is read apart)."""

    path: str
    size: int
    mtime_ns: int
    sha256: str


class PostgresFiles:
    """The ``mirograph_files`` table, through the store's pool."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def manifest(self, run_id: str) -> dict[str, StoredFile]:
        """Every stored file of the run, by path (contents not read)."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT path, size, mtime_ns, sha256 FROM mirograph_files WHERE run_id = %s",
                (run_id,),
            )
            rows = await cursor.fetchall()
        found = [StoredFile(*_values(row, "path", "size", "mtime_ns", "sha256")) for row in rows]
        return {file.path: file for file in found}

    async def contents(self, run_id: str, paths: Iterable[str]) -> dict[str, bytes]:
        """The content of each of ``paths`` the store holds."""
        wanted = list(paths)
        if not wanted:
            return {}
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT path, content FROM mirograph_files WHERE run_id = %s AND path = ANY(%s)",
                (run_id, wanted),
            )
            rows = await cursor.fetchall()
        return {
            path: bytes(content) for path, content in (_values(r, "path", "content") for r in rows)
        }

    async def put(
        self, run_id: str, files: Iterable[tuple[StoredFile, bytes]], fence: Lease | None = None
    ) -> bool:
        """Store (or replace) ``files``, in one transaction; False (nothing written)
        once ``fence``, the session's lease, is no longer the run's."""
        rows = [
            (run_id, file.path, content, file.size, file.mtime_ns, file.sha256)
            for file, content in files
        ]
        if not rows:
            return True
        async with self._pool.connection() as conn, conn.transaction():
            if not await _still_held(conn, fence):
                return False
            async with conn.cursor() as cursor:
                await cursor.executemany(
                    "INSERT INTO mirograph_files (run_id, path, content, size, mtime_ns, sha256)"
                    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (run_id, path) DO UPDATE SET"
                    " content = excluded.content, size = excluded.size,"
                    " mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256",
                    rows,
                )
        return True

    async def delete(self, run_id: str, paths: Iterable[str], fence: Lease | None = None) -> bool:
        """Forget ``paths`` (files a tool removed); False (nothing removed) once ``fence``
        is no longer the run's lease."""
        gone = list(paths)
        if not gone:
            return True
        async with self._pool.connection() as conn, conn.transaction():
            if not await _still_held(conn, fence):
                return False
            await conn.execute(
                "DELETE FROM mirograph_files WHERE run_id = %s AND path = ANY(%s)", (run_id, gone)
            )
        return True


async def _still_held(conn: AsyncConnection[Any], fence: Lease | None) -> bool:
    """The fence check of checkpoint writes, in the transaction (None: not fenced)."""
    if fence is None:
        return True
    from psycopg.rows import dict_row

    from mirograph.state.postgres.saver import _hold_fence

    async with conn.cursor(row_factory=dict_row) as cursor:
        try:
            await _hold_fence(cursor, fence)
        except LeaseLostError:
            return False
    return True


def _values(row: Any, *names: str) -> tuple[Any, ...]:
    if isinstance(row, dict):
        return tuple(row[name] for name in names)
    return tuple(row)
