"""A run killed with SIGKILL during its third attempt resumes in its third attempt.

``mirograph run`` on a flow with restarts (``max_restarts``): attempts 1 and 2
spend their turns without a box and are summarised; attempt 3's first tool call
blocks and the runner is killed there. ``mirograph resume`` goes on in attempt 3
(its task carries both summaries), repeats only the call in flight, asks no
summary twice, and ends with attempt 3's answer.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
import yaml
from support.testkit import Cli, show, wait_for_fifo


def write_flow(path: Path, base_url: str) -> Path:
    flow = {
        "name": "restarts",
        "models": {"m": {"base_url": base_url, "max_tokens": 512, "max_retries": 0}},
        "agents": {
            "main": {
                "model": "m",
                "max_turns": 2,
                "max_restarts": 3,
                "tools": [{"support.team_tools:lookup": None}],
            }
        },
        "entry": "main",
    }
    path.write_text(yaml.safe_dump(flow), encoding="utf-8")
    return path


@pytest.mark.timeout(180)
def test_a_run_killed_in_attempt_three_resumes_in_attempt_three(
    cli: Cli, sim_model, tmp_path: Path
) -> None:
    log, fifo = tmp_path / "calls.log", tmp_path / "blocked.fifo"
    cli.env["TEAM_LOG"] = str(log)  # the tools and the model log to the same file
    flow = write_flow(tmp_path / "flow.yaml", sim_model("support.restart_policy:attempts"))
    os.mkfifo(fifo)
    env = {"TEAM_LOG": str(log), "TEAM_FIFO": str(fifo)}
    runner = cli.popen(
        "run", "Which one?", "--flow", str(flow), "--id", "r3", "--store", cli.store,
        env={**env, "TEAM_BLOCK_AT": "attempt3:1"},
    )  # fmt: skip
    try:
        assert wait_for_fifo(fifo, runner) == "blocked at attempt3:1\n"
    finally:
        runner.kill()
        runner.wait(timeout=30)
    before = log.read_text().splitlines()
    resumed = cli("resume", "r3", "--store", cli.store, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "found in attempt 3" in resumed.stdout
    lines = log.read_text().splitlines()
    after = lines[len(before) :]
    # Attempts 1 and 2 ran once each, summaries included; after the kill, attempt 3
    # goes on: its call in flight runs again (it never finished), nothing else does.
    assert "model summary 1 4" in before and "model summary 2 4" in before
    assert after[0] == "lookup attempt3 1"
    assert not [line for line in after if " attempt1" in line or " attempt2" in line]
    assert not [line for line in after if line.startswith("model summary")]
    assert not [line for line in lines if line.startswith(("model close 1", "model close 2"))]
    repeated = {line: n for line, n in Counter(lines).items() if n > 1}
    assert repeated == {"lookup attempt3 1": 2}, lines
    report = show(cli, "r3")
    assert report["answer"] == "found in attempt 3"
    assert report["status"] == "completed"
