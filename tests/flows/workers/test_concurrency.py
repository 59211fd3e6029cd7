"""One worker process runs many investigations at once, on one event loop."""

from __future__ import annotations

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

RUNS = 8


@pytest.mark.timeout(120)
def test_one_worker_with_concurrency_8_runs_8_runs_at_once(
    postgres_server, redis_server, flows, workers: Callable[..., WorkerProcess], tmp_path: Path,
    policy: FleetPolicy,
) -> None:  # fmt: skip
    store, broker = postgres_server.url, redis_server.url
    log = tmp_path / "steps.log"
    env = {"FLEET_LOG": str(log), "FLEET_TOOL_MS": "500"}
    worker = workers("--store", store, "--broker", broker, "--concurrency", str(RUNS), env=env)
    worker.wait_ready()
    runs = {f"run{i}": "team" if i % 2 else "single" for i in range(RUNS)}
    submit_all(runs, flows, store, broker)
    done = lambda: set(statuses(store, list(runs)).values()) == {"completed"}  # noqa: E731
    wait_for(done, 90, "every run to complete")
    check_exactly_once(runs, store, log, policy)
    # Every run was in flight at one moment: the last to start started before the
    # first to finish finished (from the model's own record of the requests).
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for request in policy.requests:
        run_id = request.topic.split("/")[0]
        first.setdefault(run_id, request.at)
        last[run_id] = request.at
    assert set(first) == set(runs)
    assert max(first.values()) < min(last.values())
    # All in the one worker process.
    assert {pid for made in tool_calls(log).values() for _, pid in made} == {worker.pid}
