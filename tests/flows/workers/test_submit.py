"""``mirograph submit`` hands a run to a worker; any machine lists and shows it.

Real processes: a PostgreSQL store and a Redis broker of the test's own, a
``mirograph worker`` subprocess, the CLI from other ``MIROGRAPH_HOME``s (other
machines, as far as the run knows), the model over HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fleet_kit import (
    STEPS,
    FleetPolicy,
    WorkerProcess,
    expected_answer,
    mirograph,
    mirograph_popen,
    question,
    wait_for,
)

from mirograph.state.postgres.registry import PostgresRunRegistry


def status_of(store: str, run_id: str) -> str:
    registry = PostgresRunRegistry(store)
    try:
        return registry.get(run_id).status
    finally:
        registry.close()


def steps_logged(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.timeout(120)
def test_a_submitted_run_is_run_by_a_worker_and_seen_from_another_machine(
    postgres_server, redis_server, flows, workers: Callable[..., WorkerProcess], tmp_path: Path,
    policy: FleetPolicy,
) -> None:  # fmt: skip
    store, broker = postgres_server.url, redis_server.url
    log = tmp_path / "steps.log"
    worker = workers("--store", store, "--broker", broker, env={"FLEET_LOG": str(log)})
    worker.wait_ready()
    submitted = mirograph(
        tmp_path / "laptop", "submit", question("alpha"), "--flow", str(flows["single"]),
        "--id", "alpha", "--store", store, "--broker", broker,
    )  # fmt: skip
    assert (submitted.returncode, submitted.stdout, submitted.stderr) == (0, "alpha\n", "")
    # Followed live from a third machine, through Redis.
    watcher = mirograph_popen(
        tmp_path / "phone", "watch", "alpha", "--store", store, "--redis", broker
    )  # fmt: skip
    wait_for(lambda: status_of(store, "alpha") == "completed", 60, "the run to complete")
    watched, drawn = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, drawn
    assert watched == expected_answer("alpha", "single") + "\n"
    assert drawn.count("step") >= STEPS, drawn  # the lines of its tool calls
    desk = tmp_path / "desk"  # another machine: its own home, the same store
    listed = mirograph(desk, "ls", "--json", env={"MIROGRAPH_STORE": store})
    assert listed.returncode == 0, listed.stderr
    assert [(r["id"], r["status"]) for r in json.loads(listed.stdout)] == [("alpha", "completed")]
    shown = mirograph(desk, "show", "alpha", "--json", "--store", store)
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["answer"] == expected_answer("alpha", "single")
    pids = {line.split()[2] for line in steps_logged(log)}
    assert [line.rsplit(" ", 1)[0] for line in steps_logged(log)] == [
        f"alpha {n}" for n in range(1, STEPS + 1)
    ]
    assert pids == {str(worker.pid)}  # the worker ran the tools, not the submitter


@pytest.mark.timeout(120)
def test_bad_input_is_one_line_and_stores_nothing(
    postgres_server, redis_server, flows, tmp_path: Path
) -> None:
    from support.testkit import free_port

    store, broker = postgres_server.url, redis_server.url
    home = tmp_path / "laptop"
    broken = tmp_path / "broken.yaml"
    broken.write_text(flows["single"].read_text().replace("max_turns", "max_turnz"))
    cases = {
        "broken flow": (["submit", "q", "--flow", str(broken), "--broker", broker], 2, "max_turnz"),
        "no broker": (
            [
                "submit",
                question("beta"),
                "--flow",
                str(flows["single"]),
                "--broker",
                f"redis://:hunter2@127.0.0.1:{free_port()}/0",
            ],
            3,
            "start Redis there",
        ),
        "not redis": (["submit", "q", "--broker", "amqp://127.0.0.1/"], 2, "not a Redis URL"),
        "worker, no broker": (
            ["worker", "--broker", f"redis://:hunter2@127.0.0.1:{free_port()}/0"],
            3,
            "cannot reach the broker",
        ),
        "worker, no store": (
            [
                "worker",
                "--broker",
                broker,
                "--store",
                f"postgresql://me:hunter2@127.0.0.1:{free_port()}/runs",
            ],
            2,
            "cannot reach the PostgreSQL store",
        ),
        "resume, no broker": (
            ["resume", "nope", "--broker", f"redis://127.0.0.1:{free_port()}/0"],
            2,
            "no run",
        ),
    }
    for name, (args, code, says) in cases.items():
        store_args = [] if "--store" in args else ["--store", store]
        done = mirograph(home, *args, *store_args, timeout=30)
        lines = done.stderr.splitlines()
        assert (done.returncode, len(lines)) == (code, 1), (name, done.stderr)
        assert says in lines[0] and "hunter2" not in lines[0], (name, lines[0])
        assert "Traceback" not in done.stderr and done.stdout == "", name
    listed = mirograph(home, "ls", "--json", "--store", store)
    assert json.loads(listed.stdout) == []  # nothing was stored


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
