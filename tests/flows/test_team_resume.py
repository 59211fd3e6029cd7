"""SIGKILL while a sub-agent is mid-way; resume continues it where it stopped.

The planner hands browsing (9 tool turns) and coding (3) their sub-tasks in
one reply. Browsing blocks inside its turn-7 tool call; once coding has
finished, the runner is killed. After ``resume`` browsing goes on at turn 8,
coding and the planner's first turn are not run again, and every count is exact.
"""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from pathlib import Path

from support.testkit import Cli, show, wait_for_fifo, write_team_flow

POLICY = "support.team_policy:team?browsing=9&coding=3"


def coding_finished(cli: Cli, run_id: str) -> dict:
    """The live report, once coding's finished call is recorded (bounded by the deadline)."""
    for _ in range(120):
        report = show(cli, run_id)
        if any(
            r["agent"] == "coding" and r["status"] == "completed" for r in report["invocations"]
        ):
            return report
    raise AssertionError(f"coding never finished: {json.dumps(report['invocations'])}")


def test_sigkill_inside_a_sub_agent_resumes_it_at_the_next_turn(
    cli: Cli, sim_model, tmp_path: Path
) -> None:
    log, fifo = tmp_path / "team.log", tmp_path / "blocked.fifo"
    os.mkfifo(fifo)
    cli.env.update({"TEAM_LOG": str(log), "TEAM_FIFO": str(fifo)})
    flow = write_team_flow(tmp_path / "team.yaml", sim_model(POLICY))

    runner = cli.popen(
        "run", "Compare alpha and beta.", "--flow", str(flow), "--id", "team-kill",
        "--store", cli.store, env={"TEAM_BLOCK_AT": "browsing:7"},
    )  # fmt: skip
    assert wait_for_fifo(fifo, runner) == "blocked at browsing:7\n"
    live = coding_finished(cli, "team-kill")
    runner.send_signal(signal.SIGKILL)
    assert runner.wait(timeout=30) == -signal.SIGKILL

    browsing = next(r for r in live["invocations"] if r["agent"] == "browsing")
    assert (browsing["status"], browsing["turns"]) == ("running", 7)
    killed = show(cli, "team-kill")
    assert killed["status"] == "paused"
    assert killed["agents"]["planner"]["turns"] == 1
    assert killed["agents"]["browsing"]["turns"] == 7

    resumed = cli("resume", "team-kill", "--store", cli.store)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == "REPORT[browsing:9], REPORT[coding:3]"

    final = show(cli, "team-kill")
    assert final["status"] == "completed"
    agents = final["agents"]
    assert (agents["planner"]["turns"], agents["planner"]["tool_calls"]) == (2, 2)
    assert (agents["browsing"]["turns"], agents["browsing"]["tool_calls"]) == (10, 9)
    assert (agents["coding"]["turns"], agents["coding"]["tool_calls"]) == (4, 3)
    assert [(r["agent"], r["status"], r["turns"]) for r in final["invocations"]] == [
        ("browsing", "completed", 10),
        ("coding", "completed", 4),
    ]

    lines = Counter(log.read_text().splitlines())
    # Tools: each step once, except the one in flight at the kill.
    assert {k: n for k, n in lines.items() if k.startswith(("lookup", "compute"))} == {
        **{f"lookup browsing {i}": 1 for i in range(1, 10)},
        "lookup browsing 7": 2,
        **{f"compute coding {i}": 1 for i in range(1, 4)},
    }
    # Model requests: none repeated. Browsing went on at turn 8 (7 replies so far),
    # coding and the planner's first turn were not run again.
    models = {k: n for k, n in lines.items() if k.startswith("model")}
    assert set(models.values()) == {1}
    assert sorted(k for k in models if k.startswith("model browsing")) == sorted(
        f"model browsing {n}" for n in range(0, 11)
    )
    assert sum(k.startswith("model coding") for k in models) == 5
    assert sorted(k for k in models if k.startswith("model planner")) == [
        "model planner 0",
        "model planner 1",
        "model planner 2",
    ]
