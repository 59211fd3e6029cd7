"""Checkpoint-store factory: a URL in, a checkpointer and a run registry out.

``sqlite:///path`` is the embedded default. Every agent turn is committed
before the next model call starts (the graph runs with ``durability="sync"``),
so the store is where a killed run continues from.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver

from mirograph.state.blobs import BlobStore, SqliteBlobStore
from mirograph.state.registry import SqliteRunRegistry
from mirograph.state.serde import message_serializer
from mirograph.state.sqlite_saver import LoopSqliteSaver


class StoreURLError(ValueError):
    """A store URL this build cannot open."""


def mirograph_home() -> Path:
    """``$MIROGRAPH_HOME``, default ``~/.mirograph``: runs, workspaces, the default store."""
    return Path(os.environ.get("MIROGRAPH_HOME") or Path.home() / ".mirograph").expanduser()


def default_store_url() -> str:
    return f"sqlite:///{mirograph_home() / 'runs.db'}"


def sqlite_path(url: str) -> Path:
    """The file of a SQLite URL: ``sqlite:///relative/path`` or ``sqlite:////absolute/path``."""
    if not url.startswith("sqlite:///"):
        raise StoreURLError(f"not a sqlite URL: {url!r}")
    raw = url.removeprefix("sqlite:///")
    if not raw:
        raise StoreURLError(f"store URL {url!r} names no file; use sqlite:///path/to/runs.db")
    return Path(raw).expanduser()


@dataclass
class Store:
    url: str
    checkpointer: BaseCheckpointSaver
    registry: SqliteRunRegistry
    blobs: BlobStore
    #: Drops writes of an interrupted step that no checkpoint committed (its blobs).
    discard_uncommitted: Callable[[], None] = lambda: None


@asynccontextmanager
async def open_store(url: str | None = None) -> AsyncIterator[Store]:
    """Open the store at ``url`` (default: the SQLite file under ``$MIROGRAPH_HOME``)."""
    url = url or default_store_url()
    if url.startswith("sqlite:///"):
        async with _open_sqlite(url) as store:
            yield store
        return
    scheme = url.split(":", 1)[0]
    raise StoreURLError(
        f"unsupported store URL scheme {scheme!r} in {url!r}; use sqlite:///path/to/runs.db"
    )


@asynccontextmanager
async def _open_sqlite(url: str) -> AsyncIterator[Store]:
    path = sqlite_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    registry = SqliteRunRegistry(path)
    conn = sqlite3.connect(path, check_same_thread=False)
    try:
        # WAL: a reader (``show``) never blocks the writer; NORMAL sync is
        # durable against process crashes, which is what kill -9 is.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=10000")
        saver = LoopSqliteSaver(conn, serde=message_serializer())
        saver.setup()
        blobs = SqliteBlobStore(conn, commit=False)  # committed with the step's checkpoint
        yield Store(
            url=url,
            checkpointer=saver,
            registry=registry,
            blobs=blobs,
            discard_uncommitted=conn.rollback,
        )
    finally:
        conn.close()
        registry.close()
