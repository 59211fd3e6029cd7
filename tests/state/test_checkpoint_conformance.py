"""LangGraph's checkpointer conformance suite (``langgraph-checkpoint-conformance``) on
our savers, and on the stock ones as a reference that the suite itself works here.

The suite's base capabilities (put, put_writes, get_tuple, list, delete_thread) are
the contract LangGraph's runtime relies on: every one must pass on the SQLite store's
``LoopSqliteSaver`` and the PostgreSQL store's ``PostgresSaver``, each opened through
``open_store`` as a run opens it (blob store, compact versions and all). Every
capability suite gets a saver of its own on a fresh file or database, so one
suite's threads never show in another's listings.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import BASE_CAPABILITIES
from langgraph.checkpoint.conformance.report import CapabilityReport

from mirograph.state.postgres.saver import PostgresSaver
from mirograph.state.sqlite_saver import LoopSqliteSaver
from mirograph.state.store import open_store

_NUMBERS = itertools.count()


def _fresh_database(server_url: str) -> str:
    """A new, empty database on the server at ``server_url``; its URL."""
    name = f"conformance_{next(_NUMBERS)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + "/" + name


def _outcome(report: CapabilityReport) -> str:
    """Each capability's verdict and failures, for an assertion's message."""
    return "; ".join(
        f"{name}: {'pass' if r.passed else 'not run' if r.passed is None else r.failures}"
        for name, r in sorted(report.results.items())
    )


def _assert_base_passed(report: CapabilityReport) -> None:
    assert report.passed_all_base(), _outcome(report)
    for capability in BASE_CAPABILITIES:  # each ran its tests, not one of them skipped
        result = report.results[capability.value]
        assert result.tests_passed > 0 and result.tests_failed == 0, _outcome(report)


async def _ours_on(url_of: Any, kind: type[BaseCheckpointSaver]) -> CapabilityReport:
    """The suite on the savers of stores opened at ``url_of()``, a new URL each time."""

    @checkpointer_test(name=kind.__name__)
    async def saver() -> AsyncIterator[BaseCheckpointSaver]:
        async with open_store(url_of()) as store:
            assert type(store.checkpointer) is kind
            yield store.checkpointer

    return await validate(saver)


@pytest.mark.timeout(60)
async def test_the_sqlite_store_saver_passes_every_base_capability(tmp_path: Path) -> None:
    files = (f"sqlite:///{tmp_path / f'store-{n}.db'}" for n in itertools.count())
    report = await _ours_on(lambda: next(files), LoopSqliteSaver)
    _assert_base_passed(report)


@pytest.mark.timeout(60)
async def test_the_postgres_store_saver_passes_every_capability(postgres_server) -> None:
    report = await _ours_on(lambda: _fresh_database(postgres_server.url), PostgresSaver)
    _assert_base_passed(report)
    assert report.passed_all(), _outcome(report)  # prune too (inherited from the stock saver)


@pytest.mark.timeout(60)
async def test_the_suite_passes_the_stock_async_sqlite_saver(tmp_path: Path) -> None:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    files = (str(tmp_path / f"stock-{n}.db") for n in itertools.count())

    @checkpointer_test(name="AsyncSqliteSaver")
    async def stock() -> AsyncIterator[BaseCheckpointSaver]:
        async with AsyncSqliteSaver.from_conn_string(next(files)) as saver:
            yield saver

    report = await validate(stock)
    _assert_base_passed(report)
    assert report.passed_all(), _outcome(report)


@pytest.mark.timeout(60)
async def test_the_suite_passes_the_stock_async_postgres_saver(postgres_server) -> None:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    @checkpointer_test(name="AsyncPostgresSaver")
    async def stock() -> AsyncIterator[BaseCheckpointSaver]:
        # As LangGraph's documentation sets it up on a pool.
        async with AsyncConnectionPool(
            _fresh_database(postgres_server.url),
            max_size=4,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            open=False,
        ) as pool:
            saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
            await saver.setup()
            yield saver

    report = await validate(stock)
    _assert_base_passed(report)
    assert report.passed_all(), _outcome(report)  # prune too: the stock saver has it
