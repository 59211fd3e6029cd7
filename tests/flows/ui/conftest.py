"""Fixtures the web view's tests share: an empty store with a client on loopback, and
a store holding the three runs of ``support.ui_kit.build_runs`` (built once a module)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from support.ui_kit import Runs, build_runs, ui_client


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty SQLite store of the test's own (and its ``$MIROGRAPH_HOME``)."""
    monkeypatch.setenv("MIROGRAPH_HOME", str(tmp_path / "home"))
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture
def local(store: str) -> Iterator[TestClient]:
    """The app on a loopback bind, no token."""
    with ui_client(store) as client:
        yield client


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """``story``, ``rolled`` and ``stalled`` in one store, shared by the module."""
    with pytest.MonkeyPatch.context() as mp:
        home = tmp_path_factory.mktemp("ui-runs")
        mp.setenv("MIROGRAPH_HOME", str(home))
        yield asyncio.run(build_runs(home))
