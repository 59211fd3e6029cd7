"""The checkpoint-store factory: URLs, paths and the default location."""

from __future__ import annotations

from pathlib import Path

import pytest

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
        ("postgresql://user@host/db", "postgresql"),
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
    assert "sqlite:///" in message


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


async def test_an_interrupted_steps_blob_write_is_discarded_and_can_be_redone(
    tmp_path: Path,
) -> None:
    """Uncommitted blob writes would lock the registry; discarding them frees it."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    text = "result " * 500
    async with open_store(url) as store:
        store.registry.create(RunRecord("r", "q", "f", {}, "running"))
        await store.blobs.put(text)  # the step's write, not yet committed
        store.discard_uncommitted()  # the step was interrupted
        store.registry.update("r", status="paused")  # would wait on a lock otherwise
        key = await store.blobs.put(text)  # the step runs again
        store.checkpointer.conn.commit()  # its checkpoint write commits it
    async with open_store(url) as again:
        assert again.registry.get("r").status == "paused"
        assert (await again.blobs.get_many([key]))[key] == text
