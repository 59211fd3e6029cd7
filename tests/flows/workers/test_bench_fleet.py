"""``mirograph bench --broker``: the attempts run on a worker, the bench judges them.

Real processes: a PostgreSQL store and a Redis broker of the test's own, a
``mirograph worker`` subprocess with a home of its own (another machine, as far
as the runs know), the bench from a third home, the model over HTTP. The task
with an attached file finds it on the worker: the bench stored it with the run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fleet_kit import mirograph
from support.bench_kit import CORRECT, TASKS, TOOL_CALLS, results, write_dataset, write_flow
from support.bench_policy import solve

from mirograph.agents.sim.server import SimServer


@pytest.mark.timeout(180)
def test_a_bench_on_the_workers_scores_as_one_run_here(
    postgres_server, redis_server, workers, tmp_path: Path
) -> None:
    store, broker = postgres_server.url, redis_server.url
    worker = workers("--store", store, "--broker", broker, "--concurrency", "4")
    data = write_dataset(tmp_path / "data")
    with SimServer(solve) as model:
        flow = write_flow(tmp_path / "flow.yaml", model.base_url)
        worker.wait_ready()
        out = tmp_path / "out"
        done = mirograph(
            tmp_path / "desk", "bench", str(data), "--flow", str(flow), "--out", str(out),
            "--store", store, "--broker", broker, "--concurrency", "6", timeout=150,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr + worker.log()
    rows = results(out)
    assert sorted(r["task_id"] for r in rows) == sorted(TASKS)
    for row in rows:
        assert row["correct"] == (row["task_id"] in CORRECT), row
        assert row["tool_calls"] == TOOL_CALLS[row["task_id"]], row
    summary = json.loads((out / "summary.json").read_text())
    assert round(summary["avg_at_k"], 4) == round(4 / 6, 4)
    # The worker ran them all (its pid on every run), none ran in the bench's process.
    listed = mirograph(tmp_path / "desk", "ls", "--json", "--store", store)
    assert len(json.loads(listed.stdout)) == len(TASKS)
    with postgres_server.connect() as conn:
        pids = {row[0] for row in conn.execute("SELECT pid FROM mirograph_runs").fetchall()}
    assert pids == {worker.pid}, pids
    # A broker that is not there: one line before anything is stored.
    gone = mirograph(
        tmp_path / "desk", "bench", str(data), "--flow", str(flow), "--out", str(tmp_path / "o2"),
        "--store", store, "--broker", "redis://127.0.0.1:9/0",
    )  # fmt: skip
    assert gone.returncode == 3 and len(gone.stderr.splitlines()) == 1, gone.stderr
