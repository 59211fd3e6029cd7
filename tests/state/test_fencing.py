"""Checkpoint writes are fenced by the run's lease (issue 14), on SQLite and PostgreSQL.

A session fences its run's thread by its lease (``Store.fence``); once another
runner took the lease over, the session's next checkpoint or pending write, in
any namespace, raises ``LeaseLostError`` and writes nothing, while the new
holder, other runs of the same saver and unfenced threads write on. Through the
CLI, a run taken over during a tool call stops in one line without recording
anything, and a resume by the new holder finishes it without repeating a turn.
On PostgreSQL a takeover waits for a fenced write in progress, and a write
after the takeover is refused.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, closing, contextmanager
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from support.testkit import Cli, release, wait_for_fifo, write_team_flow

from mirograph.errors import LeaseLostError, RunBusyError
from mirograph.state.leases import LEASE_TTL_S, Lease, SqliteLeases
from mirograph.state.store import Store, is_postgres_url, open_store, sqlite_path

RIVAL_HOST = "rival-host"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}"
    return request.getfixturevalue("postgres_server").url


@contextmanager
def rival(url: str) -> Iterator[Any]:
    """Another runner's leases: on another host, its clock past any lease of ours."""

    def late() -> float:
        return time.time() + LEASE_TTL_S + 60

    if is_postgres_url(url):
        from mirograph.state.postgres.leases import PostgresLeases

        leases: Any = PostgresLeases(url, host=RIVAL_HOST, clock=late)
    else:
        leases = SqliteLeases(sqlite_path(url), host=RIVAL_HOST, clock=late)
    try:
        yield leases
    finally:
        leases.close()


def config(run_id: str, ns: str = "", checkpoint_id: str | None = None) -> dict[str, Any]:
    conf = {"thread_id": run_id, "checkpoint_ns": ns}
    return {"configurable": {**conf, "checkpoint_id": checkpoint_id} if checkpoint_id else conf}


async def put(saver: BaseCheckpointSaver, run_id: str, note: str, ns: str = "") -> dict[str, Any]:
    """A checkpoint of the run's thread (in ``ns``) whose one channel holds ``note``."""
    checkpoint = empty_checkpoint()
    version = saver.get_next_version(None, None)
    checkpoint["channel_values"] = {"note": note}
    checkpoint["channel_versions"] = {"note": version}
    return await saver.aput(config(run_id, ns), checkpoint, {"source": "loop", "step": 1}, {})


async def notes(saver: BaseCheckpointSaver, run_id: str, ns: str = "") -> list[str]:
    """The notes of the thread's checkpoints (in ``ns``), newest first, and the values
    of the latest one's pending writes."""
    found = [t.checkpoint["channel_values"]["note"] async for t in saver.alist(config(run_id, ns))]
    latest = await saver.aget_tuple(config(run_id, ns))
    pending = [value for _, _, value in latest.pending_writes] if latest else []
    return found + [f"write:{value}" for value in pending]


@asynccontextmanager
async def session(url: str, run_id: str) -> AsyncIterator[tuple[Store, Lease]]:
    """A store with ``run_id``'s lease taken and its writes fenced, as a runner has them."""
    async with open_store(url) as store:
        lease = store.registry.leases.acquire(run_id)
        store.fence(lease)
        try:
            yield store, lease
        finally:
            store.unfence(lease)
            store.registry.leases.release(lease)


async def test_a_runner_that_lost_its_lease_writes_nothing(store_url: str) -> None:
    async with session(store_url, "r1") as (store, _):
        saver = store.checkpointer
        first = await put(saver, "r1", "a1")
        await saver.aput_writes(first, [("note", "a1-write")], "task-a")
        sub = await put(saver, "r1", "a1-sub", ns="browsing:1")
        with rival(store_url) as leases:
            taken = leases.acquire("r1")
            assert taken.token == 2
            before = await notes(saver, "r1"), await notes(saver, "r1", "browsing:1")
            lost = f"run r1 was taken over by pid {os.getpid()} on {RIVAL_HOST}"
            with pytest.raises(LeaseLostError, match=lost):
                await put(saver, "r1", "a2")
            with pytest.raises(LeaseLostError, match=lost):
                await saver.aput_writes(first, [("note", "a2-write")], "task-a2")
            with pytest.raises(LeaseLostError, match=lost):
                await put(saver, "r1", "a2-sub", ns="browsing:1")  # a sub-agent's namespace
            with pytest.raises(LeaseLostError, match=lost):
                await saver.aput_writes(sub, [("note", "a2-sub-write")], "task-s")
            assert (await notes(saver, "r1"), await notes(saver, "r1", "browsing:1")) == before
            assert before == (["a1", "write:a1-write"], ["a1-sub"])

            # The new holder (another process: a store of its own) writes on.
            async with open_store(store_url) as theirs:
                theirs.fence(taken)
                await put(theirs.checkpointer, "r1", "b1")
                theirs.unfence(taken)
            assert await notes(saver, "r1") == ["b1", "a1"]


async def test_one_run_losing_its_lease_leaves_the_others_of_its_saver_writing(
    store_url: str,
) -> None:
    async with open_store(store_url) as store:
        saver, leases = store.checkpointer, store.registry.leases
        x, y = leases.acquire("x"), leases.acquire("y")
        store.fence(x)
        store.fence(y)
        await put(saver, "x", "x1")
        with rival(store_url) as theirs:
            theirs.acquire("x")
        with pytest.raises(LeaseLostError, match="run x was taken over"):
            await put(saver, "x", "x2")
        with pytest.raises(LeaseLostError):
            await put(saver, "x", "x2", ns="coding:1")
        # Run y, on the same saver (and file or pool), is not stopped by x's loss.
        cfg = await put(saver, "y", "y1")
        await saver.aput_writes(cfg, [("note", "y1-write")], "task-y")
        await put(saver, "y", "y2", ns="coding:1")
        assert await notes(saver, "y") == ["y1", "write:y1-write"]
        assert await notes(saver, "y", "coding:1") == ["y2"]
        assert await notes(saver, "x") == ["x1"]
        # A thread no session fences writes as before; so does y once its session ends.
        await put(saver, "loose", "l1")
        store.unfence(y)
        leases.release(y)
        with rival(store_url) as theirs:
            theirs.acquire("y")
        await put(saver, "y", "y3")
        assert await notes(saver, "loose") == ["l1"]
        assert await notes(saver, "y") == ["y3", "y1"]


async def test_a_later_session_in_the_same_process_does_not_let_an_earlier_one_write(
    store_url: str,
) -> None:
    # A session hung past its lease, the run taken over by another session of this
    # process (on the same saver): the hung one's writes stay refused when it wakes.
    async with open_store(store_url) as store:
        saver = store.checkpointer
        old = store.registry.leases.acquire("r")
        wrote, woken = asyncio.Event(), asyncio.Event()

        async def hung() -> None:
            store.fence(old)
            await put(saver, "r", "old-1")
            wrote.set()
            await woken.wait()
            await put(saver, "r", "old-2")

        async def taking_over() -> None:
            with rival(store_url) as theirs:
                new = theirs.acquire("r")
            store.fence(new)
            await put(saver, "r", "new-1")
            woken.set()

        first = asyncio.create_task(hung())
        await wrote.wait()  # the first session wrote before the takeover
        await asyncio.create_task(taking_over())  # a task: a session of its own
        with pytest.raises(LeaseLostError):
            await first
        assert await notes(saver, "r") == ["new-1", "old-1"]


# -- PostgreSQL: a takeover and a fenced write in progress -----------------------------


def waiting_on_lock(conn: Any, query: str, deadline_s: float = 20) -> None:
    """Wait until a backend runs a statement containing ``query`` and waits on a lock."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND query LIKE %s",
            (f"%{query}%",),
        ).fetchone()
        if row[0]:
            return
        time.sleep(0.02)  # polling a condition, with a deadline
    raise AssertionError(f"no statement like {query!r} waited on a lock")


async def test_postgresql_a_takeover_is_refused_while_a_fenced_write_is_in_progress(
    postgres_server,
) -> None:
    """A takeover never overtakes a write that passed its fence check: while the write's
    transaction holds the lease row, the takeover is refused at once (it does not wait:
    waiting blocks the event loop, and with it the write, when both share one loop)."""
    url = postgres_server.url
    async with session(url, "r") as (store, _):
        saver = store.checkpointer
        await put(saver, "r", "a1")
        with (
            postgres_server.connect() as blocker,
            postgres_server.connect(autocommit=True) as watch,
        ):
            # Holds the write after its fence check: the checkpoint table is locked.
            blocker.execute("LOCK TABLE checkpoints IN EXCLUSIVE MODE")
            writing = asyncio.create_task(put(saver, "r", "a2"))
            await asyncio.to_thread(waiting_on_lock, watch, "INSERT INTO checkpoints")
            with rival(url) as leases:
                with pytest.raises(RunBusyError, match="being written by another runner"):
                    await asyncio.to_thread(leases.acquire, "r")
                blocker.rollback()  # the write goes on and commits
                await writing
                taken = await asyncio.to_thread(leases.acquire, "r")
            assert taken.token == 2
            assert await notes(saver, "r") == ["a2", "a1"]  # the new holder sees it
            with pytest.raises(LeaseLostError, match="run r was taken over"):
                await put(saver, "r", "a3")  # a write after the takeover: refused
            assert await notes(saver, "r") == ["a2", "a1"]


# -- through the runner ------------------------------------------------------------


def stored_counts(url: str, run_id: str) -> tuple[int, int]:
    """The run's checkpoints and pending writes, in all namespaces, as stored."""
    writes = "checkpoint_writes" if is_postgres_url(url) else "writes"
    queries = [
        "SELECT count(*) FROM checkpoints WHERE thread_id = {}",
        f"SELECT count(*) FROM {writes} WHERE thread_id = {{}}",
    ]
    if is_postgres_url(url):
        import psycopg

        with psycopg.connect(url) as conn:
            return tuple(conn.execute(q.format("%s"), (run_id,)).fetchone()[0] for q in queries)
    with closing(sqlite3.connect(sqlite_path(url))) as conn:
        return tuple(conn.execute(q.format("?"), (run_id,)).fetchone()[0] for q in queries)


def registry_row(url: str, run_id: str) -> tuple[Any, ...]:
    async def read() -> tuple[Any, ...]:
        async with open_store(url) as store:
            record = store.registry.get(run_id)
        return record.status, record.reason, record.updated_at, record.wall_seconds

    return asyncio.run(read())


@pytest.mark.timeout(240)
def test_a_run_taken_over_in_a_tool_call_stops_and_the_new_holder_finishes_it(
    cli: Cli, sim_model: Callable[..., str], store_url: str, tmp_path: Path
) -> None:
    log, held, go = tmp_path / "calls.log", tmp_path / "held.fifo", tmp_path / "go.fifo"
    os.mkfifo(held)
    os.mkfifo(go)
    cli.env.update({"TEAM_LOG": str(log), "PAUSE_FIFO": str(held), "PAUSE_GO": str(go)})
    base_url = sim_model("support.team_policy:team?browsing=3")
    flow = write_team_flow(
        tmp_path / "team.yaml", base_url, browsing="support.pause_tools:lookup", coding=None
    )
    runner = cli.popen(
        "run", "Compare alpha and beta.", "--flow", str(flow), "--id", "tk", "--store", store_url,
        env={"PAUSE_BLOCK_AT": "browsing:2"},
    )  # fmt: skip
    try:
        assert wait_for_fifo(held, runner) == "holding browsing:2\n"
        with rival(store_url) as leases:
            taken = leases.acquire("tk")  # the runner hangs past its lease; taken over
            counts, row = stored_counts(store_url, "tk"), registry_row(store_url, "tk")
            release(go)  # the call ends: its step's writes are refused
            _, err = runner.communicate(timeout=120)
            assert runner.returncode == 2, err
            lines = [line for line in err.splitlines() if line.strip()]
            assert len(lines) == 1 and "Traceback" not in err, err
            assert lines[0] == (
                f"error: run tk was taken over by pid {os.getpid()} on {RIVAL_HOST};"
                " this session's changes were not saved"
            )
            assert stored_counts(store_url, "tk") == counts  # no checkpoint after the takeover
            assert registry_row(store_url, "tk") == row  # nor a registry row
            assert row[0] == "running"
            leases.release(taken)  # hands the run to the resume below
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(timeout=30)
    resumed = cli("resume", "tk", "--store", store_url)
    assert resumed.returncode == 0, resumed.stderr
    calls = log.read_text().splitlines()
    twice = {line: n for line, n in Counter(calls).items() if n > 1}
    assert twice == {"lookup browsing 2": 2}, calls  # only the step whose writes were refused
    assert "REPORT[browsing:3]" in resumed.stdout
