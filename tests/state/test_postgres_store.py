"""``--store postgresql://…``: the CLI runs, shows, lists, exports and resumes on
PostgreSQL, against a server of the test's own and ``mirograph sim-model``.

A team run (planner, browsing and coding sub-agents; browsing's results are kept
as blobs) is killed with SIGKILL in a sub-agent's tool call and resumed: it
completes with every tool call made once but the one in flight, and its export
has each result in full (read back from the store's blobs).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
from support.testkit import Cli, wait_for_fifo, write_team_flow

from mirograph.state.blobs import OFFLOAD_CHARS


@pytest.mark.timeout(240)
def test_a_team_run_killed_on_postgresql_resumes_and_reads_back_in_full(
    cli: Cli, sim_model, postgres_server, tmp_path: Path
) -> None:
    store = postgres_server.url
    log, fifo = tmp_path / "calls.log", tmp_path / "blocked.fifo"
    os.mkfifo(fifo)
    cli.env.update({"TEAM_LOG": str(log), "TEAM_FIFO": str(fifo)})
    flow = write_team_flow(tmp_path / "team.yaml", sim_model("support.team_policy:team?browsing=3"))
    runner = cli.popen(
        "run", "Compare alpha and beta.", "--flow", str(flow), "--id", "pg", "--store", store,
        env={"TEAM_BLOCK_AT": "browsing:2"},
    )  # fmt: skip
    try:
        assert wait_for_fifo(fifo, runner) == "blocked at browsing:2\n"
    finally:
        runner.kill()
        runner.wait(timeout=30)
    listed = cli("ls", "--store", store)
    assert listed.returncode == 0 and "pg" in listed.stdout and "paused" in listed.stdout
    resumed = cli("resume", "pg", "--store", store)
    assert resumed.returncode == 0, resumed.stderr
    shown = cli("show", "pg", "--store", store, "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert (report["status"], report["stop_reason"]) == ("completed", "answered")
    assert report["answer"] and [r["status"] for r in report["invocations"]] == ["completed"] * 2
    calls = log.read_text().splitlines()
    twice = {line: n for line, n in Counter(calls).items() if n > 1}
    assert twice == {"lookup browsing 2": 2}, calls  # only the call in flight ran again
    exported = cli("export", "pg", "--store", store, "--format", "jsonl")
    assert exported.returncode == 0, exported.stderr
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    results = [r["content"] for r in records if r.get("role") == "tool"]
    lookups = [text for text in results if text.startswith("lookup result")]
    # Each longer than a blob's threshold, so kept as a blob: exported whole.
    assert lookups == [
        f"lookup result browsing#{k}. " + f"detail-browsing-{k} " * 60 for k in (1, 2, 3)
    ]
    assert all(len(text) > OFFLOAD_CHARS for text in lookups)
    assert sorted(t for t in results if t.startswith("REPORT")) == [
        "REPORT[browsing:3]",
        "REPORT[coding:3]",
    ]
