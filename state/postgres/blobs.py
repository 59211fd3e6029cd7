"""Large tool results on PostgreSQL: ``state.blobs``'s contract for a shared store.

``put`` commits the blob at once, before the step that refers to it can be
checkpointed, so a history entry is never committed without its blob. (On
SQLite a step's blobs ride in its next write; here the runs' writes go on many
connections at once, and parallel sub-agents' steps would take each other's
staged blobs.) A blob of a step that never gets checkpointed is an orphan,
harmless: blobs are keyed by their content. Reads take a pooled connection.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

from psycopg import AsyncCursor
from psycopg_pool import AsyncConnectionPool

from mirograph.state.blobs import BlobCache, content_key, missing_blob

SCHEMA = """
CREATE TABLE IF NOT EXISTS mirograph_blobs (
    key TEXT PRIMARY KEY,
    data BYTEA NOT NULL
)
"""


class PostgresBlobStore:
    """Blobs in the PostgreSQL store, zlib-compressed, with an LRU read cache."""

    def __init__(self, pool: AsyncConnectionPool[Any], *, cache_size: int = 64) -> None:
        self._pool = pool
        self._cache = BlobCache(cache_size)

    async def put(self, text: str) -> str:
        key = content_key(text)
        if key not in self._cache:  # a cached blob was put (committed) before
            async with self._pool.connection() as conn, conn.cursor() as cursor:
                await write_blobs(cursor, {key: text})
        self._cache.remember(key, text)
        return key

    def discard_staged(self) -> None:
        """Nothing is staged here: each blob is committed when put."""

    async def get_many(self, keys: Iterable[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(keys))
        found = {key: text for key in wanted if (text := self._cache.get(key)) is not None}
        missing = [key for key in wanted if key not in found]
        if missing:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(
                    "SELECT key, data FROM mirograph_blobs WHERE key = ANY(%s)", (missing,)
                )
                rows = await cursor.fetchall()
            for row in rows:
                key, data = (row["key"], row["data"]) if isinstance(row, dict) else row
                text = zlib.decompress(data).decode("utf-8")
                found[key] = text
                self._cache.remember(key, text)
        absent = [key for key in wanted if key not in found]
        if absent:
            raise missing_blob(absent)
        return found


async def write_blobs(cursor: AsyncCursor[Any], blobs: dict[str, str]) -> None:
    """Insert ``blobs`` (key: text) in the cursor's current transaction."""
    await cursor.executemany(
        "INSERT INTO mirograph_blobs (key, data) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING",
        [(key, zlib.compress(text.encode("utf-8"), 1)) for key, text in blobs.items()],
    )
