"""Open the PostgreSQL store: registry, leases, checkpoints and blobs on one server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from mirograph.errors import StoreURLError
from mirograph.state.postgres.blobs import PostgresBlobStore
from mirograph.state.postgres.connect import CONNECT_TIMEOUT_S, shown
from mirograph.state.postgres.registry import PostgresRunRegistry
from mirograph.state.postgres.saver import PostgresSaver
from mirograph.state.serde import message_serializer
from mirograph.state.store import Store

#: Connections one process keeps to the store: each concurrent checkpoint write or
#: read takes one (runs of a worker write at once).
POOL_SIZE = 16


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
    # The pool says each failed reconnection at WARNING, a line per try, while a
    # lost server is already reported once, by the run that it stopped.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    registry = PostgresRunRegistry(url)
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        url,
        min_size=1,
        max_size=POOL_SIZE,
        kwargs={"autocommit": True, "prepare_threshold": 0},
        open=False,
    )
    try:
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise StoreURLError(
                f"cannot reach the PostgreSQL store {shown(url)} ({type(exc).__name__});"
                " start PostgreSQL there or pass --store naming a running server"
            ) from None
        blobs = PostgresBlobStore(pool)
        saver = PostgresSaver(pool, serde=message_serializer(), blobs=blobs)
        await saver.setup()
        yield Store(
            url=url,
            checkpointer=saver,
            registry=registry,  # type: ignore[arg-type]
            blobs=blobs,
            discard_uncommitted=blobs.discard_staged,
            is_outage=is_outage,
        )
    finally:
        await pool.close()
        registry.close()
