"""Fixtures of the workers' tests: the fleet's model, flows and worker processes."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # fleet_kit, fleet_tools

from fleet_kit import FleetPolicy, WorkerProcess, write_flows

from mirograph.agents.sim.server import SimServer


@pytest.fixture
def policy() -> FleetPolicy:
    return FleetPolicy()


@pytest.fixture
def model(policy: FleetPolicy) -> Iterator[SimServer]:
    """The fleet's model over HTTP, with some latency; records every request."""
    with SimServer(policy, latency_ms=100) as server:
        yield server


@pytest.fixture
def flows(model: SimServer, tmp_path: Path) -> dict[str, Path]:
    return write_flows(tmp_path, model.base_url)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``mirograph worker`` (or ``beat``) processes, each with a home of its own;
    all killed after."""
    started: list[WorkerProcess] = []

    def start(
        *args: str, home: str = "worker", env: dict[str, str] | None = None, command: str = "worker"
    ) -> WorkerProcess:
        proc = WorkerProcess(tmp_path / home, *args, env=env, command=command)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
