"""Large tool results on PostgreSQL: ``state.blobs``'s contract for a shared store.

As on SQLite, ``put`` only stages a blob; the checkpointer's next write inserts
it in the same transaction (``PostgresSaver``), so a history entry that refers
to a blob is never committed without it. Reads take a pooled connection.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from psycopg import AsyncCursor
from psycopg_pool import AsyncConnectionPool

from mirograph.errors import MissingBlobError
from mirograph.state.blobs import content_key

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
        self._staged: dict[str, str] = {}
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._cache_size = cache_size

    async def put(self, text: str) -> str:
        key = content_key(text)
        self._staged[key] = text
        self._remember(key, text)
        return key

    def take_staged(self) -> dict[str, str]:
        staged, self._staged = self._staged, {}
        return staged

    def discard_staged(self) -> None:
        self._staged = {}

    async def get_many(self, keys: Iterable[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(keys))
        found = {key: self._cache[key] for key in wanted if key in self._cache}
        found.update({key: self._staged[key] for key in wanted if key in self._staged})
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
                self._remember(key, text)
        absent = [key for key in wanted if key not in found]
        if absent:
            raise MissingBlobError(f"blob {absent[0]} is not in the store")
        return found

    def _remember(self, key: str, text: str) -> None:
        self._cache[key] = text
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


async def write_blobs(cursor: AsyncCursor[Any], blobs: dict[str, str]) -> None:
    """Insert ``blobs`` (key: text) in the cursor's current transaction."""
    await cursor.executemany(
        "INSERT INTO mirograph_blobs (key, data) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING",
        [(key, zlib.compress(text.encode("utf-8"), 1)) for key, text in blobs.items()],
    )
