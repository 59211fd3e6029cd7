"""Open the PostgreSQL store: registry, leases, checkpoints and blobs on one server.

The runs of one process share the store's connections: one registry connection
and one pool per URL and event loop, counted by their users and closed with the
last (64 runs at once would otherwise hold some 1,000 connections, past a
server's default ``max_connections`` of 100).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from mirograph.errors import StoreURLError
from mirograph.state.postgres.blobs import PostgresBlobStore
from mirograph.state.postgres.connect import CONNECT_TIMEOUT_S, shown
from mirograph.state.postgres.events import PostgresEvents, create_tables
from mirograph.state.postgres.files import SCHEMA as FILES_SCHEMA
from mirograph.state.postgres.files import PostgresFiles
from mirograph.state.postgres.registry import PostgresRunRegistry
from mirograph.state.postgres.saver import PostgresSaver
from mirograph.state.serde import message_serializer
from mirograph.state.store import Store
from mirograph.text import first_line

#: Connections one process keeps in its pool for the store's checkpoints and blobs:
#: each concurrent write or read of its runs takes one for the call.
POOL_SIZE = 16


@dataclass
class _Shared:
    """One process's connections to one store, on one event loop."""

    registry: PostgresRunRegistry
    pool: AsyncConnectionPool[Any]
    saver: PostgresSaver
    blobs: PostgresBlobStore
    events: PostgresEvents
    files: PostgresFiles
    users: int = 0


_SHARED: dict[tuple[str, int], _Shared] = {}
_OPENING: dict[tuple[str, int], asyncio.Lock] = {}


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is the server gone: a connection lost or
    refused, or no pooled connection to be had."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, psycopg.OperationalError | PoolTimeout):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


@asynccontextmanager
async def open_postgres(url: str) -> AsyncIterator[Store]:
    """The store at ``url``; unreachable: ``StoreURLError`` in one line."""
    key = (url, id(asyncio.get_running_loop()))
    async with _OPENING.setdefault(key, asyncio.Lock()):
        shared = _SHARED.get(key) or await _open(url)
        _SHARED[key] = shared
        shared.users += 1
    try:
        yield Store(
            url=url,
            checkpointer=shared.saver,
            registry=shared.registry,  # type: ignore[arg-type]
            blobs=shared.blobs,
            discard_uncommitted=shared.blobs.discard_staged,
            is_outage=is_outage,
            events=shared.events,
            files=shared.files,
            fence=shared.saver.fences.fence,
            unfence=shared.saver.fences.unfence,
        )
    finally:
        shared.users -= 1
        if shared.users == 0 and _SHARED.get(key) is shared:
            del _SHARED[key]
            _OPENING.pop(key, None)
            await shared.pool.close()
            shared.registry.close()


async def _open(url: str) -> _Shared:
    # The pool says each failed reconnection at WARNING, a line per try, while a
    # lost server is already reported once, by the run that it stopped.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    registry = PostgresRunRegistry(url)
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        url,
        min_size=1,
        max_size=POOL_SIZE,
        kwargs={"autocommit": True, "prepare_threshold": 0},
        check=AsyncConnectionPool.check_connection,  # a restarted server's dead ones go
        timeout=CONNECT_TIMEOUT_S,  # a call waits this long for a connection, then fails
        open=False,
    )
    try:
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise StoreURLError(
                f"cannot open connections to the PostgreSQL store {shown(url)}"
                f" ({first_line(str(exc)) or type(exc).__name__}); is it running and"
                " below its max_connections? Pass --store naming a running server"
            ) from None
        blobs = PostgresBlobStore(pool)
        saver = PostgresSaver(pool, serde=message_serializer(), blobs=blobs)
        await saver.setup()
        await asyncio.to_thread(create_tables, url, FILES_SCHEMA)
    except BaseException:
        await pool.close()
        registry.close()
        raise
    return _Shared(registry, pool, saver, blobs, PostgresEvents(pool, url), PostgresFiles(pool))
