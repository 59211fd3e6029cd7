"""Shared fixtures: an isolated MIROGRAPH_HOME, the CLI as a subprocess, sim-model servers."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.testkit import LISTENING, Cli


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
