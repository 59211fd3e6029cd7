"""``mirograph resume ID --broker URL`` hands a paused run back to the workers; until
then it stays paused, whatever the takeover sweep sees."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fleet_kit import (
    STEPS,
    WorkerProcess,
    expected_answer,
    mirograph,
    question,
    status_of,
    steps_logged,
    wait_for,
)


@pytest.mark.timeout(120)
def test_a_paused_run_stays_paused_and_resume_broker_continues_it_on_a_worker(
    postgres_server, redis_server, flows, workers: Callable[..., WorkerProcess], tmp_path: Path,
) -> None:  # fmt: skip
    store, broker = postgres_server.url, redis_server.url
    log = tmp_path / "steps.log"
    env = {"FLEET_LOG": str(log), "FLEET_TOOL_MS": "1000"}
    worker = workers(
        "--store", store, "--broker", broker, "--beat", "--takeover-after", "3", env=env
    )  # fmt: skip
    worker.wait_ready()
    laptop = tmp_path / "laptop"
    submitted = mirograph(
        laptop, "submit", question("gamma"), "--flow", str(flows["team"]), "--id", "gamma",
        "--store", store, "--broker", broker,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    wait_for(lambda: steps_logged(log), 60, "the first step")
    paused = mirograph(laptop, "pause", "gamma", "--store", store)
    assert paused.returncode == 0, paused.stderr
    wait_for(lambda: status_of(store, "gamma") == "paused", 30, "the run to pause")
    made = len(steps_logged(log))
    assert made < STEPS
    # The sweep runs every 0.5 s: a paused run is not one it continues.
    wait_for(lambda: "run gamma paused" in worker.log(), 10, "the worker to log the pause")
    listed = mirograph(laptop, "ls", "--status", "paused", "--json", "--store", store)
    assert [r["id"] for r in json.loads(listed.stdout)] == ["gamma"]
    resumed = mirograph(laptop, "resume", "gamma", "--store", store, "--broker", broker)
    assert resumed.returncode == 0, resumed.stderr
    assert "queued run gamma" in resumed.stderr
    wait_for(lambda: status_of(store, "gamma") == "completed", 60, "the run to complete")
    shown = json.loads(mirograph(laptop, "show", "gamma", "--json", "--store", store).stdout)
    assert shown["answer"] == expected_answer("gamma", "team")
    assert [line.rsplit(" ", 1)[0] for line in steps_logged(log)] == [
        f"gamma/helper {n}" for n in range(1, STEPS + 1)
    ]
