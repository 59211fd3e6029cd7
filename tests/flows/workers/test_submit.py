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
    status_of,
    steps_logged,
    wait_for,
)


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


@pytest.mark.timeout(60)
def test_a_queued_run_shows_no_agent_in_flight(redis_server, flows, tmp_path: Path) -> None:
    """Before a worker takes it, a run has no agent: ``show`` says so, not 'in flight'."""
    home, store = tmp_path / "laptop", f"sqlite:///{tmp_path / 'runs.db'}"
    submitted = mirograph(
        home, "submit", question("gamma"), "--flow", str(flows["single"]), "--id", "gamma",
        "--store", store, "--broker", redis_server.url,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    shown = mirograph(home, "show", "gamma", "--store", store)
    assert shown.returncode == 0, shown.stderr
    assert "— queued" in shown.stdout and "(no agent has started yet)" in shown.stdout
    assert "in flight" not in shown.stdout and "running" not in shown.stdout
    exported = mirograph(home, "export", "gamma", "--store", store)
    kinds = [json.loads(line)["type"] for line in exported.stdout.splitlines()]
    assert kinds == ["run"], exported.stdout  # no agent row, no turns
    paused = mirograph(home, "pause", "gamma", "--store", store)
    assert paused.returncode == 0, paused.stderr
    watched = mirograph(home, "watch", "gamma", "--store", store)
    # the watcher's hint hands the run back to the workers, where it came from
    assert watched.returncode == 3 and "--broker URL" in watched.stderr, watched.stderr
