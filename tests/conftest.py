"""Shared fixtures: an isolated MIROGRAPH_HOME, the CLI as a subprocess, sim-model servers,
and real Redis and PostgreSQL servers of the test's own."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.testkit import LISTENING, Cli

if TYPE_CHECKING:  # imported by the fixtures: psycopg and redis take a while to load
    from support.servers import PostgresServer, RedisServer


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``$MIROGRAPH_HOME`` for this test, in-process and for subprocesses."""
    path = tmp_path / "home"
    monkeypatch.setenv("MIROGRAPH_HOME", str(path))
    return path


@pytest.fixture
def cli(home: Path) -> Cli:
    return Cli(home)


@pytest.fixture
def sim_model(cli: Cli) -> Iterator[Callable[..., str]]:
    """Start ``mirograph sim-model`` processes; returns their base URL; stops them after."""
    procs: list[subprocess.Popen[str]] = []

    def start(policy: str, *extra: str, port: int = 0) -> str:
        proc = cli.popen("sim-model", "--policy", policy, "--port", str(port), *extra)
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = LISTENING.search(line)
        if not match:
            proc.kill()
            _, stderr = proc.communicate(timeout=10)
            raise AssertionError(f"sim-model did not start: {line!r} {stderr[-2000:]}")
        return match.group(1)

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A running ``redis-server`` of this test's own (see ``support.servers``), which the
    test may stop, kill and start again; gone after the test, whatever its outcome."""
    from support.servers import RedisServer, serving

    with serving(lambda: RedisServer(tmp_path)) as server:
        yield server


@pytest.fixture
def postgres_server(tmp_path: Path) -> Iterator[PostgresServer]:
    """A running PostgreSQL cluster of this test's own (see ``support.servers``), which the
    test may stop, kill and start again; removed after the test, whatever its outcome."""
    from support.servers import PostgresServer, serving

    with serving(lambda: PostgresServer(tmp_path)) as server:
        yield server
