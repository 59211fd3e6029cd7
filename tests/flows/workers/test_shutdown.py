"""A worker asked to stop (SIGTERM, Celery's warm shutdown) pauses its runs at their
next step and queues their continuation: another worker finishes them, repeating
nothing."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from fleet_kit import (
    FleetPolicy,
    WorkerProcess,
    check_exactly_once,
    statuses,
    submit_all,
    tool_calls,
    wait_for,
)


@pytest.mark.timeout(120)
def test_sigterm_pauses_a_workers_runs_and_another_worker_finishes_them(
    postgres_server, redis_server, flows, workers: Callable[..., WorkerProcess], tmp_path: Path,
    policy: FleetPolicy,
) -> None:  # fmt: skip
    store, broker = postgres_server.url, redis_server.url
    log = tmp_path / "steps.log"
    env = {"FLEET_LOG": str(log), "FLEET_TOOL_MS": "600"}
    first = workers("--store", store, "--broker", broker, home="first", env=env).wait_ready()
    runs = {"s1": "single", "t1": "team", "s2": "single"}
    submit_all(runs, flows, store, broker)
    wait_for(lambda: len(tool_calls(log)) == len(runs), 60, "every run's first step")
    first.signal(signal.SIGTERM)
    assert first.proc.wait(timeout=60) == 0, first.log()
    left = statuses(store, list(runs))
    assert set(left.values()) <= {"queued", "completed"} and "queued" in left.values(), left
    assert "continuation is queued" in first.log()
    workers("--store", store, "--broker", broker, home="second", env=env).wait_ready()
    done = lambda: set(statuses(store, list(runs)).values()) == {"completed"}  # noqa: E731
    wait_for(done, 60, "the second worker to finish every run")
    assert check_exactly_once(runs, store, log, policy) == 0  # paused between steps: none again
