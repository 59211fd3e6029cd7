"""The workspace sync against its hazards (issue 14), on a PostgreSQL server of the
test's own: a checkpoint write of the run waits until the files of the tool call
before it are stored (a crash between them lost a completed turn's file); a session
that lost its lease sends nothing more (it overwrote the new runner's files); a
resume on the same machine keeps a file changed there since it was last synced
(it restored the store's older one over it) yet takes a newer one from the store;
stored rows this machine cannot write are left out with a warning; and a send of
thousands of files leaves the event loop free."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.base import empty_checkpoint

from mirograph.flows import workspace_sync
from mirograph.flows.workspace_sync import WorkspaceSync, restore_workspace, syncing_workspace
from mirograph.state.leases import LEASE_TTL_S
from mirograph.state.postgres.files import StoredFile
from mirograph.state.postgres.leases import PostgresLeases
from mirograph.state.store import Store, open_store


@pytest.fixture
def rival(postgres_server) -> Iterator[PostgresLeases]:
    """Another runner's leases: on another host, its clock past any lease of ours."""
    leases = PostgresLeases(
        postgres_server.url, host="rival-host", clock=lambda: time.time() + LEASE_TTL_S + 60
    )
    yield leases
    leases.close()


async def checkpoint(store: Store, run_id: str) -> None:
    """A checkpoint of the run's thread, as a step's end writes it."""
    saved = empty_checkpoint()
    config: Any = {"configurable": {"thread_id": run_id, "checkpoint_ns": ""}}
    await store.checkpointer.aput(config, saved, {"source": "loop", "step": 1}, {})


async def test_a_checkpoint_waits_for_the_files_of_the_tool_call_before_it(
    home: Path, postgres_server, tmp_path: Path
) -> None:
    # The table locked: a send waits until the test lets go. The checkpoint that
    # follows the tool call must not be written before the file is stored.
    workspace = tmp_path / "ws"
    (workspace / "notes").mkdir(parents=True)
    async with open_store(postgres_server.url) as store:
        assert store.files is not None
        lease = store.registry.leases.acquire("r")
        store.fence(lease)
        sync = await syncing_workspace(store, "r", workspace, lease)
        assert sync is not None

        async def checkpoint_then_look() -> list[str]:
            await checkpoint(store, "r")
            return sorted(await store.files.manifest("r"))  # type: ignore[union-attr]

        locker = await psycopg.AsyncConnection.connect(postgres_server.url)
        await locker.execute("LOCK TABLE mirograph_files IN SHARE ROW EXCLUSIVE MODE")
        (workspace / "notes" / "found.txt").write_text("PLOVER\n")
        sync({"event": "tool_call"})
        written = asyncio.create_task(checkpoint_then_look())
        done, _ = await asyncio.wait({written}, timeout=1.0)
        assert not done, "the checkpoint was written while its tool call's file was not"
        await locker.rollback()  # the send goes in, then the checkpoint
        assert await written == ["notes/found.txt"]
        await locker.close()
        await sync.aclose()
        # Once the session ended, the run's writes no longer wait for its files.
        assert "r" not in store.checkpointer.before_write  # type: ignore[attr-defined]


async def test_a_checkpoint_is_not_written_while_its_files_cannot_be_sent(
    home: Path, postgres_server, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    async with open_store(postgres_server.url) as store:
        lease = store.registry.leases.acquire("r")
        store.fence(lease)
        sync = await syncing_workspace(store, "r", workspace, lease)
        assert sync is not None
        with psycopg.connect(postgres_server.url, autocommit=True) as conn:
            conn.execute("ALTER TABLE mirograph_files RENAME TO mirograph_files_away")
            (workspace / "report.md").write_text("v1\n")
            sync({"event": "tool_call"})
            with pytest.raises(psycopg.errors.UndefinedTable):
                await checkpoint(store, "r")
            conn.execute("ALTER TABLE mirograph_files_away RENAME TO mirograph_files")
        await checkpoint(store, "r")  # sent again first, then written
        assert sorted(await store.files.manifest("r")) == ["report.md"]  # type: ignore[union-attr]
        await sync.aclose()


async def test_a_session_that_lost_its_lease_sends_no_more_files(
    home: Path, postgres_server, rival: PostgresLeases, tmp_path: Path, caplog
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    async with open_store(postgres_server.url) as store:
        assert store.files is not None
        old = store.registry.leases.acquire("r")
        stale = WorkspaceSync(store.files, "r", a, old)
        await stale.start()
        (a / "report.md").write_text("v1 from A\n")
        (a / "old.txt").write_text("A's\n")
        assert await stale.send_changes() == 2
        new = rival.acquire("r")  # A went silent: taken over
        assert await restore_workspace(store, "r", b) == 2
        fresh = WorkspaceSync(store.files, "r", b, new)
        await fresh.start()
        (b / "report.md").write_text("v2 from B, the new runner\n")
        assert await fresh.send_changes() == 1
        await fresh.aclose()
        caplog.set_level(logging.INFO, logger=workspace_sync.__name__)
        (a / "report.md").write_text("v1-stale, A woken after losing its lease\n")
        (a / "old.txt").unlink()
        await stale.aclose()  # A's session end: its put and delete are dropped
        got = await store.files.contents("r", ["report.md", "old.txt"])
        assert got == {"report.md": b"v2 from B, the new runner\n", "old.txt": b"A's\n"}
        assert any("was taken over" in r.getMessage() for r in caplog.records)


async def test_a_resume_here_keeps_a_file_changed_here_since_its_last_sync(
    home: Path, postgres_server, tmp_path: Path
) -> None:
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    async with open_store(postgres_server.url) as store:
        assert store.files is not None
        sync = WorkspaceSync(store.files, "r", here)
        await sync.start()
        (here / "report.md").write_text("v1\n")
        (here / "plan.md").write_text("plan v1\n")
        assert await sync.send_changes() == 2
        # The session killed before it sent its last change: report.md v2 is here only.
        (here / "report.md").write_text("v2: the last tool call's work\n")
        # Meanwhile a session elsewhere took plan.md on: the store's is newer.
        assert await restore_workspace(store, "r", there) == 2
        elsewhere = WorkspaceSync(store.files, "r", there)
        await elsewhere.start()
        (there / "plan.md").write_text("plan v2, from there\n")
        await elsewhere.aclose()
        assert await restore_workspace(store, "r", here) == 1
        assert (here / "report.md").read_text() == "v2: the last tool call's work\n"
        assert (here / "plan.md").read_text() == "plan v2, from there\n"
        again = WorkspaceSync(store.files, "r", here)
        await again.start()
        assert await again.send_changes() == 1  # the kept file goes to the store
        got = await store.files.contents("r", ["report.md"])
        assert got["report.md"] == b"v2: the last tool call's work\n"
        await again.aclose()
        # A workspace without a record (synced by an earlier version): the store's win.
        workspace_sync.record_path(here).unlink()
        (here / "plan.md").write_text("plan, older\n")
        assert await restore_workspace(store, "r", here) == 1
        assert (here / "plan.md").read_text() == "plan v2, from there\n"
        assert workspace_sync.load_record(here) is not None


def stored(path: str, content: bytes) -> tuple[StoredFile, bytes]:
    import hashlib

    return StoredFile(path, len(content), 1, hashlib.sha256(content).hexdigest()), content


async def test_rows_this_machine_cannot_write_are_left_out_with_a_warning(
    home: Path, postgres_server, tmp_path: Path, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger=workspace_sync.__name__)
    long_name = "page-" + "q" * 235 + ".html"  # 240 bytes: legal, its temporary too
    workspace = tmp_path / "ws"
    (workspace / "a").mkdir(parents=True)  # a folder where a file was stored
    async with open_store(postgres_server.url) as store:
        assert store.files is not None
        rows = [stored("a", b"x"), stored("d", b"file"), stored("d/e", b"under it")]
        await store.files.put("r", [*rows, stored(long_name, b"long"), stored("ok", b"ok")])
        assert await restore_workspace(store, "r", workspace) == 3
    assert (workspace / long_name).read_bytes() == b"long"
    assert (workspace / "d").read_bytes() == b"file" and (workspace / "ok").exists()
    assert (workspace / "a").is_dir()
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "file a of run r not restored" in warned and "file d/e of run r" in warned
    assert sorted(p.name for p in workspace.iterdir()) == sorted(["a", "d", long_name, "ok"])


async def test_a_send_of_many_files_leaves_the_event_loop_free(
    home: Path, postgres_server, tmp_path: Path
) -> None:
    count = 10_000
    workspace = tmp_path / "ws"
    workspace.mkdir()
    for i in range(count):
        (workspace / f"f{i:05d}.txt").write_bytes(b"x")
    async with open_store(postgres_server.url) as store:
        assert store.files is not None
        sync = WorkspaceSync(store.files, "r", workspace)
        await sync.start()
        assert await sync.send_changes() == count
        for i in range(count):
            (workspace / f"f{i:05d}.txt").write_bytes(b"yy")  # a tool rewrote them all
        worst = 0.0

        async def ticking() -> None:
            nonlocal worst
            last = time.perf_counter()
            while True:
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                worst, last = max(worst, now - last), now

        ticker = asyncio.create_task(ticking())
        assert await sync.send_changes() == count
        ticker.cancel()
        assert worst < 0.5, f"the event loop was blocked {worst:.2f} s"
