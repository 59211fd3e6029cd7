"""Content-addressed storage for large tool results, beside the checkpoints.

A 600-turn run produces megabytes of tool results. Kept inline, every
``DeltaChannel`` snapshot would copy all of them again, and a resume would
read them all back. Instead, a result above ``OFFLOAD_CHARS`` is written once
to a blob table keyed by its SHA-256. The message in the history then holds a
short preview and the key. The retention view needs only the last K results
in full, so a turn reads at most a few blobs, and those usually come from the
in-memory cache.

With the run store, a blob is written on the checkpointer's connection
without a commit of its own: the step's checkpoint write commits it, so a
result and the history entry that refers to it land together or not at all.
"""

from __future__ import annotations

import hashlib
import sqlite3
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Protocol

from langchain_core.messages import BaseMessage, ToolMessage

OFFLOAD_CHARS = 1024
PREVIEW_CHARS = 160
BLOB_KEY = "mirograph_blob"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mirograph_blobs (
    key TEXT PRIMARY KEY,
    data BLOB NOT NULL
)
"""


class BlobStore(Protocol):
    async def put(self, text: str) -> str: ...

    async def get_many(self, keys: Iterable[str]) -> dict[str, str]: ...


class MissingBlobError(LookupError):
    """A message refers to a blob the store does not hold."""


class SqliteBlobStore:
    """Blobs in the run store's SQLite file, zlib-compressed, with an LRU read cache.

    It uses a plain ``sqlite3`` connection on the event loop's thread: one
    insert or indexed read takes tens of microseconds in WAL mode, less than
    the hand-off to a worker thread would.
    """

    def __init__(
        self, conn: sqlite3.Connection, *, commit: bool = True, cache_size: int = 64
    ) -> None:
        self._conn = conn
        #: False when the owner of ``conn`` commits (the checkpoint write after the step).
        self._commit = commit
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._cache_size = cache_size
        self._conn.execute(_SCHEMA)
        self._conn.commit()

    async def put(self, text: str) -> str:
        # Always written, even when cached: a rolled-back step may have taken
        # an earlier write of the same blob with it.
        key = content_key(text)
        data = zlib.compress(text.encode("utf-8"), 1)
        self._conn.execute(
            "INSERT OR IGNORE INTO mirograph_blobs (key, data) VALUES (?, ?)", (key, data)
        )
        if self._commit:
            self._conn.commit()
        self._remember(key, text)
        return key

    async def get_many(self, keys: Iterable[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(keys))
        found = {key: self._cache[key] for key in wanted if key in self._cache}
        missing = [key for key in wanted if key not in found]
        if missing:
            marks = ",".join("?" * len(missing))
            rows = self._conn.execute(
                f"SELECT key, data FROM mirograph_blobs WHERE key IN ({marks})", missing
            )
            for key, data in rows:
                found[key] = zlib.decompress(data).decode("utf-8")
                self._remember(key, found[key])
        absent = [key for key in wanted if key not in found]
        if absent:
            raise MissingBlobError(f"blob {absent[0]} is not in the store")
        return found

    def _remember(self, key: str, text: str) -> None:
        self._cache[key] = text
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


def content_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def blob_key(message: BaseMessage) -> str | None:
    ref = message.additional_kwargs.get(BLOB_KEY)
    return ref["key"] if isinstance(ref, dict) else None


async def offload(message: ToolMessage, blobs: BlobStore | None) -> ToolMessage:
    """A long result stored as a blob: the message keeps a preview and the key."""
    text = message.content if isinstance(message.content, str) else None
    if blobs is None or text is None or len(text) <= OFFLOAD_CHARS:
        return message
    key = await blobs.put(text)
    preview = text[:PREVIEW_CHARS].rstrip() + f" … [{len(text)} chars in blob {key[:12]}]"
    return message.model_copy(
        update={
            "content": preview,
            "additional_kwargs": {
                **message.additional_kwargs,
                BLOB_KEY: {"key": key, "chars": len(text)},
            },
        }
    )


async def hydrate(
    messages: Sequence[BaseMessage],
    blobs: BlobStore | None,
    *,
    only: Iterable[int] | None = None,
) -> list[BaseMessage]:
    """The messages with blob-backed content restored, as new message objects.

    ``only`` limits the work to those indices: a keep-K view needs just the
    results it sends in full, whatever the length of the history.
    """
    indices = range(len(messages)) if only is None else only
    wanted = {i: key for i in indices if (key := blob_key(messages[i])) is not None}
    out = list(messages)
    if not wanted:
        return out
    if blobs is None:
        raise MissingBlobError("the history refers to blobs but no blob store is open")
    texts = await blobs.get_many(wanted.values())
    for i, key in wanted.items():
        out[i] = out[i].model_copy(update={"content": texts[key]})
    return out
