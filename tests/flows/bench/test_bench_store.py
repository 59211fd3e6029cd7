"""A store outage mid-bench stops it resumably: nothing is recorded as a failed task.

The bench's first attempt holds a tool call (a FIFO); PostgreSQL is killed there;
the call goes on, its step cannot be stored. Recording that as a failed attempt
would score the task wrong for good: the bench must stop (exit 3, nothing
written) and the same command, once the store is back, must finish it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.bench_kit import CORRECT, TASKS, results, write_dataset, write_flow
from support.testkit import Cli, release, wait_for_fifo


@pytest.mark.timeout(240)
def test_a_store_outage_stops_the_bench_and_it_finishes_once_the_store_is_back(
    cli: Cli, sim_model, postgres_server, tmp_path: Path
) -> None:
    store = postgres_server.url
    data = write_dataset(tmp_path / "data")
    flow = write_flow(
        tmp_path / "flow.yaml", sim_model("support.bench_policy:solve"), "support.pause_tools"
    )
    out, fifo, go = tmp_path / "out", tmp_path / "held.fifo", tmp_path / "go.fifo"
    os.mkfifo(fifo)
    os.mkfifo(go)
    args = ["bench", str(data), "--flow", str(flow), "--out", str(out), "--store", store]
    bench = cli.popen(
        *args, "--concurrency", "1", "--seed", "3",
        env={"PAUSE_BLOCK_AT": "task1a1:1", "PAUSE_FIFO": str(fifo), "PAUSE_GO": str(go)},
    )  # fmt: skip
    try:
        assert wait_for_fifo(fifo, bench).startswith("holding task1a1:1")
        postgres_server.kill()  # the store goes away while a tool call is in flight
        release(go)
        _, err = bench.communicate(timeout=180)
    finally:
        if bench.poll() is None:
            bench.kill()
    assert bench.returncode == 3, err
    assert "run the same command again" in err.splitlines()[-1], err
    # Nothing recorded as failed, the held attempt not at all: the store was away.
    assert [r for r in results(out) if r["stop_reason"] == "failed" or r["task_id"] == "t1"] == []
    postgres_server.start()
    again = cli(*args, "--concurrency", "1", "--seed", "3", timeout=180)
    assert again.returncode == 0, again.stderr
    assert {r["task_id"] for r in results(out) if r["correct"]} == CORRECT
    assert sorted(r["task_id"] for r in results(out)) == sorted(TASKS)
