"""The checkpoint-store factory: URLs, paths and the default location."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from mirograph.errors import MissingBlobError
from mirograph.state.registry import RunRecord
from mirograph.state.sqlite_saver import LoopSqliteSaver
from mirograph.state.store import (
    StoreURLError,
    default_store_url,
    mirograph_home,
    open_store,
    sqlite_path,
)


def _record(run_id: str) -> RunRecord:
    return RunRecord(id=run_id, question="q", flow="single-agent", flow_spec={}, status="completed")


def test_sqlite_path_relative_and_absolute() -> None:
    assert sqlite_path("sqlite:///rel/path.db") == Path("rel/path.db")
    assert not sqlite_path("sqlite:///rel/path.db").is_absolute()
    assert sqlite_path("sqlite:////abs/path.db") == Path("/abs/path.db")


def test_sqlite_path_without_file_is_rejected() -> None:
    with pytest.raises(StoreURLError, match="names no file"):
        sqlite_path("sqlite:///")


async def test_relative_url_is_relative_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with open_store("sqlite:///rel/path.db") as store:
        assert isinstance(store.checkpointer, LoopSqliteSaver)
        store.registry.create(_record("r1"))
        assert store.url == "sqlite:///rel/path.db"
    assert (tmp_path / "rel" / "path.db").is_file()


async def test_absolute_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    target = tmp_path / "abs" / "runs.db"
    url = f"sqlite:///{target}"  # target is absolute: four slashes in all
    assert url.startswith("sqlite:////")
    async with open_store(url) as store:
        store.registry.create(_record("r1"))
    assert target.is_file()
    assert list(elsewhere.iterdir()) == []


async def test_store_reopens_with_its_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    async with open_store(url) as store:
        store.registry.create(_record("kept"))
    async with open_store(url) as store:
        assert store.registry.get("kept").flow == "single-agent"
        assert [r.id for r in store.registry.list()] == ["kept"]


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("redis://localhost:6379/0", "redis"),
        ("mysql://x", "mysql"),
        ("sqlite://relative.db", "sqlite"),
    ],
)
async def test_unsupported_scheme(url: str, scheme: str) -> None:
    with pytest.raises(StoreURLError) as info:
        async with open_store(url):
            pass
    message = str(info.value)
    assert "\n" not in message
    assert repr(scheme) in message
    assert "sqlite:///" in message and "postgresql://" in message


def test_default_store_url_honours_mirograph_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIROGRAPH_HOME", str(tmp_path / "home"))
    assert mirograph_home() == tmp_path / "home"
    assert default_store_url() == f"sqlite:///{tmp_path / 'home' / 'runs.db'}"
    assert sqlite_path(default_store_url()) == tmp_path / "home" / "runs.db"


def test_default_home_is_dot_mirograph(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIROGRAPH_HOME", raising=False)
    assert mirograph_home() == Path.home() / ".mirograph"
    assert default_store_url() == f"sqlite:///{Path.home() / '.mirograph' / 'runs.db'}"


async def test_open_store_default_uses_mirograph_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIROGRAPH_HOME", str(tmp_path / "home"))
    async with open_store() as store:
        store.registry.create(_record("r1"))
        assert store.url == default_store_url()
    assert (tmp_path / "home" / "runs.db").is_file()
    assert (tmp_path / "home" / "runs.db").stat().st_size > 0


def _write_config(run_id: str) -> dict:
    return {"configurable": {"thread_id": run_id, "checkpoint_ns": "", "checkpoint_id": "c1"}}


async def test_a_put_blob_holds_no_lock_and_is_committed_with_the_next_write(
    tmp_path: Path,
) -> None:
    """A step's blob is written with the step's next checkpoint write, never before:
    meanwhile the file stays free for every other writer (this process or another)."""
    path = tmp_path / "runs.db"
    text = "result " * 500
    async with open_store(f"sqlite:///{path}") as store:
        key = await store.blobs.put(text)  # the step's tool result
        with closing(sqlite3.connect(path, timeout=0)) as other:  # would fail if locked
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        assert (await store.blobs.get_many([key]))[key] == text  # readable at once
        await store.checkpointer.aput_writes(_write_config("r"), [("messages", "ref")], "task")
    async with open_store(f"sqlite:///{path}") as again:
        assert (await again.blobs.get_many([key]))[key] == text


async def test_an_interrupted_steps_blob_is_discarded_and_can_be_redone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    text = "result " * 500
    async with open_store(url) as store:
        store.registry.create(RunRecord("r", "q", "f", {}, "running"))
        key = await store.blobs.put(text)
        store.discard_uncommitted()  # the step was interrupted: nothing refers to it
        store.registry.update("r", status="paused")
        await store.checkpointer.aput_writes(_write_config("r"), [("x", 1)], "task")
    async with open_store(url) as again:
        assert again.registry.get("r").status == "paused"
        with pytest.raises(MissingBlobError):
            await again.blobs.get_many([key])
        assert await again.blobs.put(text) == key  # the step runs again
        await again.checkpointer.aput_writes(_write_config("r"), [("x", 2)], "task")
    async with open_store(url) as last:
        assert (await last.blobs.get_many([key]))[key] == text


async def test_stores_of_one_file_share_one_connection(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    async with open_store(url) as one, open_store(url) as two:
        assert one.checkpointer.conn is two.checkpointer.conn
        assert one.blobs is not two.blobs  # each run stages its own blobs


# Bad locations: one line naming the path and the fix.


async def _open_error(url: str | None = None) -> str:
    with pytest.raises(StoreURLError) as info:
        async with open_store(url):
            pass
    message = str(info.value)
    assert "\n" not in message
    return message


async def test_a_directory_is_not_a_store(tmp_path: Path) -> None:
    message = await _open_error(f"sqlite:///{tmp_path}")
    assert f"{tmp_path} is a directory" in message
    assert "--store sqlite:///path/to/runs.db" in message


async def test_a_file_that_is_not_a_database_is_not_a_store(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("these are my notes, not a database\n" * 100)
    message = await _open_error(f"sqlite:///{notes}")
    assert f"{notes} is not a SQLite database" in message
    assert "--store" in message
    assert notes.read_text().startswith("these are my notes")  # left as it was


async def test_a_path_under_a_file_is_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    message = await _open_error(f"sqlite:///{tmp_path / 'plain' / 'sub' / 'runs.db'}")
    assert f"is under {tmp_path / 'plain'}, which is a file" in message


async def test_a_file_valued_mirograph_home_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.write_text("not a directory")
    monkeypatch.setenv("MIROGRAPH_HOME", str(home))
    message = await _open_error()
    assert f"under {home}, which is a file" in message
    assert f"set MIROGRAPH_HOME (now {home}) to a writable directory" in message


_OPEN_STORE = """
import asyncio, sys
from mirograph.errors import StoreURLError
from mirograph.state.store import open_store

async def main(url):
    try:
        async with open_store(url or None):
            print("opened")
    except StoreURLError as exc:
        print(exc)

asyncio.run(main(sys.argv[1]))
"""


def _open_store_read_only(read_only: Path, url: str, home: Path) -> str:
    """``open_store(url)`` in a process where ``read_only`` is a read-only mount (a
    read-only directory even for root); what it printed."""
    mounts = ["--bind", "/", "/", "--ro-bind", str(read_only), str(read_only)]
    result = subprocess.run(
        [
            "bwrap",
            *mounts,
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            sys.executable,
            "-c",
            _OPEN_STORE,
            url,
        ],
        env={**os.environ, "MIROGRAPH_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_unwritable_directories_are_named(tmp_path: Path) -> None:
    read_only = tmp_path / "ro"
    (read_only / "home").mkdir(parents=True)
    printed = _open_store_read_only(read_only, f"sqlite:///{read_only / 'runs.db'}", tmp_path)
    assert printed.count("\n") == 1
    assert f"cannot create store {read_only / 'runs.db'}" in printed
    assert f"{read_only} is not writable" in printed
    assert "--store sqlite:///path/to/runs.db" in printed

    home = read_only / "home"
    printed = _open_store_read_only(read_only, "", home)
    assert printed.count("\n") == 1
    assert f"{home} is not writable" in printed
    assert f"set MIROGRAPH_HOME (now {home}) to a writable directory" in printed


def test_the_cli_says_one_line_and_exits_2(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("not a directory")
    result = subprocess.run(
        [sys.executable, "-m", "mirograph", "ls"],
        env={**os.environ, "MIROGRAPH_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"{home}, which is a file" in result.stderr
    assert "MIROGRAPH_HOME" in result.stderr
