"""``mirograph watch`` (``flows.workers.follow``) through a PostgreSQL store that goes
away for longer than a connection wait: it says so once, waits, and follows the run
to its end once the store is back (it crashed with "internal error" before)."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import pytest
from rich.console import Console
from support.live_kit import until

import mirograph.state.postgres.store as postgres_store
from mirograph.flows.workers.follow import watch_fleet_run
from mirograph.state.registry import RunRecord
from mirograph.state.store import open_store


async def test_watch_waits_for_a_store_away_longer_than_a_connection_wait(
    home: Path, postgres_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pooled call waits this long for a connection, then fails: the outage outlasts it.
    monkeypatch.setattr(postgres_store, "CONNECT_TIMEOUT_S", 1)
    url = postgres_server.url
    shown = io.StringIO()
    async with open_store(url) as store:
        registry = store.registry
        registry.create(RunRecord(id="r", question="q", flow="f", flow_spec={}, status="running"))
        lease = registry.leases.acquire("r")  # this process runs it
        registry.update("r", lease=lease, status="running")
        writer = await store.events.writer("r", lease)
        started = {"run_id": "r", "agent": "main", "ns": "main:1", "subtask": "q"}
        for event in ("run_started", "agent_started"):
            writer.append({"event": event, "ts": time.time(), **started})
        await writer.flush()
        console = Console(file=shown, width=200)
        watch = asyncio.create_task(
            watch_fleet_run("r", store_url=url, redis_url=None, console=console)
        )
        await until(lambda: "▶" in shown.getvalue(), "the first events drawn", watch)
        await asyncio.to_thread(postgres_server.stop)
        await until(lambda: "not reachable" in shown.getvalue(), "the outage said", watch)
        # The outage itself: longer than pooled calls wait (each fails meanwhile).
        await asyncio.sleep(3 * postgres_store.CONNECT_TIMEOUT_S)
        assert not watch.done(), watch.exception()
        await asyncio.to_thread(postgres_server.start)
        writer.append({"event": "run_completed", "ts": time.time(), "run_id": "r", "answer": "42"})
        await writer.aclose()
        registry.update("r", lease=lease, status="completed", answer="42")
        outcome = await asyncio.wait_for(watch, 30)
    said = shown.getvalue()
    assert outcome.status == "completed" and outcome.answer == "42"
    assert said.count("not reachable") == 1 and said.count("the store is back") == 1
