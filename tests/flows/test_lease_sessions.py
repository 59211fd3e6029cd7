"""A session's lease as the runner holds it: renewed while a long step runs, seen
as running while a resume starts, and respected for runs from before leases."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from mirograph.errors import RunBusyError, UserInputError
from mirograph.flows.runner import holding_lease, resume_run
from mirograph.state.leases import SqliteLeases
from mirograph.state.registry import RunRecord
from mirograph.state.store import open_store


async def test_the_lease_is_renewed_while_a_step_outlasts_it(tmp_path: Path) -> None:
    """A model or tool call may last longer than the lease: another host must not
    take the run over while its runner is alive and working."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    async with open_store(url) as store:
        leases = store.registry.leases
        leases.ttl_s, leases.renew_every_s = 1.0, 0.1
        elsewhere = SqliteLeases(tmp_path / "runs.db", host="another-host")
        try:
            async with holding_lease(store, "long") as lease:
                await asyncio.sleep(2.5)  # one step's work, 2.5 times the lease's life
                with pytest.raises(RunBusyError):
                    elsewhere.acquire("long")
                assert leases.holds(lease)
            taken = elsewhere.acquire("long")  # given back at the end: free at once
            assert taken.token == lease.token + 1
        finally:
            elsewhere.close()


async def test_a_run_whose_resume_is_starting_reads_as_running(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    async with open_store(url) as store:
        store.registry.create(RunRecord("r", "q", "f", {}, "paused"))
        async with holding_lease(store, "r"):
            assert store.registry.get("r").effective_status == "running"
        assert store.registry.get("r").effective_status == "paused"


async def test_a_run_from_before_leases_with_a_live_runner_is_not_taken(tmp_path: Path) -> None:
    """No lease row, status running, its recorded process alive: it may still run it."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    async with open_store(url) as store:
        store.registry.create(RunRecord("old", "q", "f", {}, "running", pid=os.getpid()))
        with pytest.raises(RunBusyError, match=f"run old is running in pid {os.getpid()}"):
            async with holding_lease(store, "old"):
                pass
        assert store.registry.leases.get("old") is None


async def test_set_on_an_ended_run_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    async with open_store(url) as store:
        store.registry.create(RunRecord("done", "q", "f", {}, "completed", answer="42"))
    with pytest.raises(UserInputError, match="run done is completed: there is nothing to continue"):
        await resume_run("done", store_url=url, overrides=["agents.main.max_turns=5"])
