"""Pausing a run: from another process, with Ctrl-C once, and with Ctrl-C twice.

The planner hands browsing (6 tool turns) and coding (2) their sub-tasks.
Browsing's turn-3 tool call is held on a FIFO while the test asks for a pause;
once the call is let go, the run must stop at the next step boundary: browsing
has made exactly 3 turns, the run is ``paused``, the resume command is printed,
and ``resume`` finishes with the exact answer, no tool call repeated.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from support.testkit import Cli, held_run, release, show, write_team_flow

POLICY = "support.team_policy:team?browsing=6&coding=2"
ANSWER = "REPORT[browsing:6], REPORT[coding:2]"


@pytest.fixture
def held(cli: Cli, sim_model, tmp_path: Path):
    """A running runner whose browsing turn-3 tool call is held; yields (runner, go, log)."""
    log, fifo, go = tmp_path / "team.log", tmp_path / "held.fifo", tmp_path / "go.fifo"
    os.mkfifo(fifo)
    os.mkfifo(go)
    cli.env.update({"TEAM_LOG": str(log), "PAUSE_FIFO": str(fifo), "PAUSE_GO": str(go)})
    flow = write_team_flow(
        tmp_path / "team.yaml",
        sim_model(POLICY),
        browsing="support.pause_tools:lookup",
        coding="support.pause_tools:compute",
    )
    with held_run(cli, flow, fifo) as runner:
        yield runner, go, log


def stderr_line(runner: subprocess.Popen[str], wanted: str, timeout: float = 60) -> str:
    """Read the runner's stderr until a line contains ``wanted``."""
    assert runner.stderr is not None
    seen = []
    while True:
        ready, _, _ = select.select([runner.stderr], [], [], timeout)
        assert ready, f"no {wanted!r} on stderr; saw {seen}"
        line = runner.stderr.readline()
        assert line, f"stderr closed before {wanted!r}; saw {seen}"
        seen.append(line)
        if wanted in line:
            return line


def assert_paused_after_browsing_turn_3(cli: Cli, log: Path) -> None:
    report = show(cli, "held")
    assert report["status"] == "paused"
    browsing = next(r for r in report["invocations"] if r["agent"] == "browsing")
    assert (browsing["status"], browsing["turns"]) == ("running", 3)
    # The held step finished (its result is saved); browsing asked no 4th turn.
    assert "lookup browsing 3" in log.read_text().splitlines()
    assert "model browsing 3" not in log.read_text().splitlines()


def assert_resume_finishes_exactly(cli: Cli, log: Path, *, repeated: set[str]) -> None:
    resumed = cli("resume", "held", "--store", cli.store)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == ANSWER
    counts = Counter(log.read_text().splitlines())
    twice = {line for line, n in counts.items() if n > 1}
    assert twice == repeated, counts
    assert show(cli, "held")["status"] == "completed"


@pytest.mark.parametrize("how", ["pause-command", "ctrl-c"])
def test_a_pause_stops_the_run_within_one_step_and_resume_completes_it(
    cli: Cli, held, how: str
) -> None:
    runner, go, log = held
    if how == "pause-command":
        asked = cli("pause", "held", "--store", cli.store)
        assert asked.returncode == 0, asked.stderr
        assert "asked run held to pause" in asked.stderr
        reason = "paused by `mirograph pause`"
    else:
        runner.send_signal(signal.SIGINT)
        stderr_line(runner, "pausing after the current step")
        reason = "paused by Ctrl-C"
    release(go)
    _, stderr = runner.communicate(timeout=60)
    assert runner.returncode == 3, stderr
    assert f"run held paused ({reason}); continue with: mirograph resume held --store" in stderr
    assert_paused_after_browsing_turn_3(cli, log)
    assert_resume_finishes_exactly(cli, log, repeated=set())


def coding_finished(cli: Cli) -> None:
    """Wait (bounded) until coding's finished call is saved, so only browsing is in flight."""
    for _ in range(200):
        calls = show(cli, "held")["invocations"]
        if any(r["agent"] == "coding" and r["status"] == "completed" for r in calls):
            return
    raise AssertionError(f"coding never finished: {calls}")


def test_ctrl_c_twice_stops_at_once_and_leaves_a_resumable_run(cli: Cli, held) -> None:
    runner, _, log = held
    coding_finished(cli)
    runner.send_signal(signal.SIGINT)
    stderr_line(runner, "pausing after the current step")
    runner.send_signal(signal.SIGINT)
    _, stderr = runner.communicate(timeout=60)  # the held call is never let go
    assert runner.returncode == 130, stderr
    assert "stopped at once; run held is resumable: mirograph resume held --store" in stderr
    report = show(cli, "held")
    assert report["status"] == "paused"
    assert report["reason"] == (
        "stopped at once after Ctrl-C twice; the step in flight runs again on resume"
    )
    browsing = next(r for r in report["invocations"] if r["agent"] == "browsing")
    assert (browsing["status"], browsing["turns"]) == ("running", 3)
    # The interrupted step (browsing's held turn-3 call, never finished) runs again
    # on resume; nothing that finished before is repeated.
    assert_resume_finishes_exactly(cli, log, repeated=set())
    assert log.read_text().splitlines().count("lookup browsing 3") == 1


def test_pause_of_a_run_that_is_not_running_says_so(cli: Cli, sim_model, tmp_path: Path) -> None:
    flow = write_team_flow(tmp_path / "team.yaml", sim_model(POLICY))
    done = cli("run", "Compare.", "--flow", str(flow), "--id", "done", "--store", cli.store)
    assert done.returncode == 0, done.stderr
    asked = cli("pause", "done", "--store", cli.store)
    assert asked.returncode == 2
    assert asked.stderr.strip() == "error: run done is completed, not running; nothing to pause"
    missing = cli("pause", "nope", "--store", cli.store)
    assert missing.returncode == 2
    assert "no run 'nope' in this store" in missing.stderr
