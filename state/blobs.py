"""Content-addressed storage for large tool results, beside the checkpoints.

A 600-turn run produces megabytes of tool results. Kept inline, every
``DeltaChannel`` snapshot would copy all of them again, and a resume would
read them all back. Instead, a result above ``OFFLOAD_CHARS`` is written once
to a blob table keyed by its SHA-256. The message in the history then holds a
short preview and the key. The retention view needs only the last K results
in full, so a turn reads at most a few blobs, and those usually come from the
in-memory cache.

With the run store, ``put`` only stages a blob: the checkpointer's next
write (the step's results or its checkpoint) inserts it in the same
transaction, on the store file's thread. A history entry that refers to a
blob is therefore never committed without it, and no transaction stays open
while the step awaits anything. A staged blob of a step that never got
written is dropped; one committed by a step that was then killed is an
unreferenced orphan, harmless (blobs are keyed by their content).
"""

from __future__ import annotations

import hashlib
import sqlite3
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Protocol

from langchain_core.messages import BaseMessage, ToolMessage

from mirograph.errors import MissingBlobError
from mirograph.state.sqlite_file import SqliteFile

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


class BlobCache:
    """The texts of recently used blobs, least recently used dropped first: the
    keep-K view reads the same few blobs turn after turn."""

    def __init__(self, size: int = 64) -> None:
        self._texts: OrderedDict[str, str] = OrderedDict()
        self._size = size

    def __contains__(self, key: str) -> bool:
        return key in self._texts

    def get(self, key: str) -> str | None:
        return self._texts.get(key)

    def remember(self, key: str, text: str) -> None:
        self._texts[key] = text
        self._texts.move_to_end(key)
        while len(self._texts) > self._size:
            self._texts.popitem(last=False)


def missing_blob(absent: Sequence[str]) -> MissingBlobError:
    return MissingBlobError(f"blob {absent[0]} is not in the store")


class SqliteBlobStore:
    """Blobs in the run store's SQLite file, zlib-compressed, with an LRU read cache.

    ``put`` does no I/O: it stages the blob for the checkpointer's next write
    (``take_staged``). Reads that miss the cache and the staged blobs run on
    the store file's thread, after every write made before them.
    """

    def __init__(self, file: SqliteFile, *, cache_size: int = 64) -> None:
        self._file = file
        self._staged: dict[str, str] = {}
        self._cache = BlobCache(cache_size)

    async def put(self, text: str) -> str:
        # Staged even when cached: a step that was discarded may have taken an
        # earlier put of the same blob with it.
        key = content_key(text)
        self._staged[key] = text
        self._cache.remember(key, text)
        return key

    def take_staged(self) -> dict[str, str]:
        """The blobs put since the last call, for the write that commits them."""
        staged, self._staged = self._staged, {}
        return staged

    def discard_staged(self) -> None:
        """Drop the staged blobs of a step that will not be written (it runs again)."""
        self._staged = {}

    async def get_many(self, keys: Iterable[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(keys))
        found = {key: text for key in wanted if (text := self._cache.get(key)) is not None}
        found.update({key: self._staged[key] for key in wanted if key in self._staged})
        missing = [key for key in wanted if key not in found]
        if missing:
            for key, text in (await self._file.call(read_blobs, self._file, missing)).items():
                found[key] = text
                self._cache.remember(key, text)
        absent = [key for key in wanted if key not in found]
        if absent:
            raise missing_blob(absent)
        return found


def create_blob_table(conn: sqlite3.Connection) -> None:
    """The blob table, once per file per process."""
    conn.execute(_SCHEMA)
    conn.commit()


def write_blobs(conn: sqlite3.Connection, blobs: dict[str, str]) -> None:
    """Insert ``blobs`` (key: text) in the connection's current transaction."""
    conn.executemany(
        "INSERT OR IGNORE INTO mirograph_blobs (key, data) VALUES (?, ?)",
        [(key, zlib.compress(text.encode("utf-8"), 1)) for key, text in blobs.items()],
    )


def read_blobs(file: SqliteFile, keys: Sequence[str]) -> dict[str, str]:
    """The texts of those of ``keys`` the store holds (on the file's thread)."""
    marks = ",".join("?" * len(keys))
    with file.lock:
        rows = file.conn.execute(
            f"SELECT key, data FROM mirograph_blobs WHERE key IN ({marks})", list(keys)
        ).fetchall()
    return {key: zlib.decompress(data).decode("utf-8") for key, data in rows}


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
