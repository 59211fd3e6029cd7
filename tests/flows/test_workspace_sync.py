"""A run's workspace files follow it through a PostgreSQL store: a run whose tool wrote
a file, paused (or killed) with one ``MIROGRAPH_HOME``, resumes with another and
its tools read the file there (through the CLI, against a server of the test's own).
Links, files past the caps and paths leaving the workspace stay behind."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import psycopg
import pytest
import yaml
from support.testkit import Cli, release, wait_for_fifo
from support.workspace_policy import NOTE, WORD

from mirograph.flows import workspace_sync
from mirograph.flows.workspace_sync import WorkspaceSync, restore_workspace
from mirograph.state.postgres.files import StoredFile
from mirograph.state.store import open_store


def write_note_flow(path: Path, base_url: str) -> Path:
    flow = {
        "name": "note",
        "models": {"m": {"base_url": base_url, "max_tokens": 512}},
        "agents": {
            "main": {
                "model": "m",
                "max_turns": 8,
                "tools": ["files", "support.pause_tools:lookup"],
            }
        },
        "entry": "main",
    }
    path.write_text(yaml.safe_dump(flow), encoding="utf-8")
    return path


def start_held(cli: Cli, sim_model, tmp_path: Path, store: str, run_id: str):
    """``mirograph run`` (home A) that wrote the note, held in its second turn's tool."""
    held, go = tmp_path / "held.fifo", tmp_path / "go.fifo"
    os.mkfifo(held)
    os.mkfifo(go)
    cli.env.update(
        {"TEAM_LOG": str(tmp_path / "calls.log"), "PAUSE_FIFO": str(held), "PAUSE_GO": str(go)}
    )
    flow = write_note_flow(tmp_path / "note.yaml", sim_model("support.workspace_policy:note"))
    runner = cli.popen(
        "run", "What is the code word?", "--flow", str(flow), "--id", run_id, "--store", store,
        env={"PAUSE_BLOCK_AT": "main:2"},
    )  # fmt: skip
    assert wait_for_fifo(held, runner) == "holding main:2\n"
    return runner, go


def resume_elsewhere(cli: Cli, tmp_path: Path, store: str, run_id: str) -> Path:
    """Resume with another home; the workspace there."""
    other = Cli(tmp_path / "home-b", env={**cli.env, "PAUSE_BLOCK_AT": ""})
    resumed = other("resume", run_id, "--store", store)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == WORD  # the tool read the note back on home B
    return tmp_path / "home-b" / "runs" / run_id / "workspace"


@pytest.mark.timeout(180)
def test_a_run_paused_on_one_home_resumes_on_another_with_its_files(
    cli: Cli, sim_model, postgres_server, tmp_path: Path
) -> None:
    store = postgres_server.url
    runner, go = start_held(cli, sim_model, tmp_path, store, "paused")
    asked = cli("pause", "paused", "--store", store)
    assert asked.returncode == 0, asked.stderr
    release(go)
    _, err = runner.communicate(timeout=120)
    assert runner.returncode == 3, err
    workspace = resume_elsewhere(cli, tmp_path, store, "paused")
    assert (workspace / NOTE).read_text() == f"code word {WORD}\n"


@pytest.mark.timeout(180)
def test_a_run_killed_after_its_tool_wrote_resumes_elsewhere_with_the_file(
    cli: Cli, sim_model, postgres_server, tmp_path: Path
) -> None:
    # Sent after the tool call, in the background: there before any session end.
    store = postgres_server.url
    runner, _ = start_held(cli, sim_model, tmp_path, store, "killed")
    try:
        deadline = time.monotonic() + 30
        while not stored_paths(store, "killed"):
            assert time.monotonic() < deadline, "the note never reached the store"
            time.sleep(0.05)
    finally:
        runner.kill()
        runner.wait(timeout=30)
    assert stored_paths(store, "killed") == [NOTE]
    workspace = resume_elsewhere(cli, tmp_path, store, "killed")
    assert (workspace / NOTE).read_text() == f"code word {WORD}\n"


def stored_paths(url: str, run_id: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT path FROM mirograph_files WHERE run_id = %s ORDER BY path", (run_id,)
        ).fetchall()
    return [path for (path,) in rows]


async def test_links_big_files_and_escaping_paths_stay_behind(
    home: Path, postgres_server, tmp_path: Path, monkeypatch, caplog
) -> None:
    monkeypatch.setattr(workspace_sync, "FILE_MAX", 1000)
    monkeypatch.setattr(workspace_sync, "RUN_MAX", 1500)
    here, there, outside = tmp_path / "a", tmp_path / "b", tmp_path / "outside.txt"
    (here / "sub").mkdir(parents=True)
    outside.write_text("not the run's")
    (here / "sub" / "kept.txt").write_text("kept")
    (here / "big.bin").write_bytes(b"x" * 1001)
    (here / "fills.bin").write_bytes(b"y" * 900)
    (here / "over.bin").write_bytes(b"z" * 900)  # sorted after fills.bin: past RUN_MAX
    (here / "link.txt").symlink_to(outside)
    (here / "linked-dir").symlink_to(tmp_path)
    caplog.set_level(logging.WARNING, logger=workspace_sync.__name__)
    async with open_store(postgres_server.url) as store:
        assert store.files is not None
        sync = WorkspaceSync(store.files, "w", here)
        await sync.start()
        assert await sync.send_changes() == 2
        assert await sync.send_changes() == 0  # nothing changed: nothing sent
        assert sorted(await store.files.manifest("w")) == ["fills.bin", "sub/kept.txt"]
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 2 and all("stays on this machine only" in w for w in warnings)
        assert any("big.bin" in w for w in warnings) and any("over.bin" in w for w in warnings)
        (here / "sub" / "kept.txt").unlink()
        await sync.aclose()  # the removal reaches the store at the session's end
        assert sorted(await store.files.manifest("w")) == ["fills.bin"]
        # A stored path that would leave the workspace is never written.
        escaping = StoredFile("../escaped.txt", 3, 0, "0" * 64)
        await store.files.put("w", [(escaping, b"bad")])
        there.mkdir()
        assert await restore_workspace(store, "w", there) == 1
        assert (there / "fills.bin").read_bytes() == b"y" * 900
        assert not (tmp_path / "escaped.txt").exists()
        assert await restore_workspace(store, "w", there) == 0  # already there


def add_row(url: str, run_id: str, path: str, content: bytes = b"x") -> None:
    """A stored workspace row, as another machine's session would have sent it."""
    import hashlib

    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO mirograph_files VALUES (%s, %s, %s, %s, %s, %s)",
            (run_id, path, content, len(content), 1, hashlib.sha256(content).hexdigest()),
        )


@pytest.mark.parametrize("case", ["long-name", "folder-in-the-way"])
@pytest.mark.timeout(180)
def test_a_stored_file_that_cannot_be_written_here_is_left_out_and_the_resume_goes_on(
    case: str, cli: Cli, sim_model, postgres_server, tmp_path: Path
) -> None:
    # A 240-byte name (legal; a temporary 19 bytes longer was not), or a folder here
    # where the store holds a file: each made every resume fail with "internal error".
    store = postgres_server.url
    runner, go = start_held(cli, sim_model, tmp_path, store, "paused")
    assert cli("pause", "paused", "--store", store).returncode == 0
    release(go)
    _, err = runner.communicate(timeout=120)
    assert runner.returncode == 3, err
    workspace = tmp_path / "home-b" / "runs" / "paused" / "workspace"
    long_name = "page-" + "q" * 235 + ".html"
    if case == "long-name":
        add_row(store, "paused", long_name, b"<html>")
    else:
        (workspace / "notes" / "found.txt").mkdir(parents=True)
    other = Cli(tmp_path / "home-b", env={**cli.env, "PAUSE_BLOCK_AT": ""})
    resumed = other("resume", "paused", "--store", store)
    assert resumed.returncode == 0, resumed.stderr
    if case == "long-name":
        assert resumed.stdout.strip() == WORD
        assert (workspace / long_name).read_bytes() == b"<html>"
    else:  # the tool finds a folder where its note was: the run goes on without it
        assert "workspace file notes/found.txt of run paused not restored here" in resumed.stderr
        assert (workspace / "notes" / "found.txt").is_dir()
