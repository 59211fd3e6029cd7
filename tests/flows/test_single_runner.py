"""A run has exactly one runner: a second ``resume`` is refused while one runs.

The planner hands browsing (6 tool turns) and coding (2) their sub-tasks; the
runner is held inside browsing's turn-3 tool call on a FIFO. Every tool call
and every model request is logged to one file (``$TEAM_LOG``, by the tools
and by the sim-model policy), so a test sees anything run twice.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from support.testkit import Cli, held_run, release, show, wait_for_fifo, write_team_flow

POLICY = "support.team_policy:team?browsing=6&coding=2"
ANSWER = "REPORT[browsing:6], REPORT[coding:2]"


@pytest.fixture
def team(cli: Cli, sim_model, tmp_path: Path) -> dict[str, Path]:
    """Log, FIFOs and the flow of a team run whose tool calls can be held."""
    paths = {
        "log": tmp_path / "team.log",
        "fifo": tmp_path / "held.fifo",
        "go": tmp_path / "go.fifo",
    }
    os.mkfifo(paths["fifo"])
    os.mkfifo(paths["go"])
    cli.env.update(
        {
            "TEAM_LOG": str(paths["log"]),
            "PAUSE_FIFO": str(paths["fifo"]),
            "PAUSE_GO": str(paths["go"]),
        }
    )
    paths["flow"] = write_team_flow(
        tmp_path / "team.yaml",
        sim_model(POLICY),
        browsing="support.pause_tools:lookup",
        coding="support.pause_tools:compute",
    )
    return paths


@pytest.fixture
def held(cli: Cli, team: dict[str, Path]):
    """``mirograph run`` held in browsing's turn-3 tool call; yields the process."""
    with held_run(cli, team["flow"], team["fifo"]) as runner:
        yield runner


def busy_line(run_id: str, pid: int) -> str:
    return (
        f"error: run {run_id} is running in pid {pid} on {socket.gethostname()};"
        f" `mirograph pause {run_id}` to stop it"
    )


def assert_nothing_doubled(log: Path) -> None:
    lines = log.read_text().splitlines()
    twice = {line: n for line, n in Counter(lines).items() if n > 1}
    assert twice == {}, lines
    assert "lookup browsing 6" in lines and "compute coding 2" in lines


def kill_once_coding_finished(cli: Cli, runner: subprocess.Popen[str]) -> None:
    """SIGKILL the runner once coding's call is saved: only browsing's held call
    (which never ran its tool) is in flight, so nothing may run twice on resume."""
    for _ in range(200):
        calls = show(cli, "held")["invocations"]
        if any(r["agent"] == "coding" and r["status"] == "completed" for r in calls):
            break
    else:
        raise AssertionError(f"coding never finished: {calls}")
    runner.kill()
    runner.wait(timeout=30)


def first_to_exit(*procs: subprocess.Popen[str], timeout: float = 60) -> subprocess.Popen[str]:
    """The process whose stdout closes first (it exited); the others are still running."""
    pipes = {proc.stdout: proc for proc in procs}
    ready, _, _ = select.select(list(pipes), [], [], timeout)
    assert ready, f"no process exited; exit codes {[p.poll() for p in procs]}"
    return pipes[ready[0]]


def test_resume_while_the_run_is_running_is_refused(cli: Cli, team, held) -> None:
    spec = show(cli, "held")
    refused = cli("resume", "held", "--store", cli.store)
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.strip() == busy_line("held", held.pid)
    changed = cli("resume", "held", "--store", cli.store, "--set", "agents.coding.max_turns=3")
    assert changed.returncode == 2, changed.stderr
    assert show(cli, "held")["status"] == "running"
    assert show(cli, "held")["updated_at"] == spec["updated_at"]  # nothing written
    release(team["go"])
    out, err = held.communicate(timeout=60)
    assert held.returncode == 0, err
    assert out.strip() == ANSWER
    assert_nothing_doubled(team["log"])


def test_two_resumes_at_once_run_the_run_once(cli: Cli, team, held) -> None:
    kill_once_coding_finished(cli, held)
    resumes = [
        cli.popen("resume", "held", "--store", cli.store, env={"PAUSE_BLOCK_AT": "browsing:5"})
        for _ in range(2)
    ]
    try:
        # Whichever won holds browsing's turn 5; the other must give up meanwhile.
        assert wait_for_fifo(team["fifo"], resumes[0]) == "holding browsing:5\n"
        loser = first_to_exit(*resumes)
        winner = resumes[1 - resumes.index(loser)]
        _, err = loser.communicate(timeout=30)
        assert loser.returncode == 2, err
        assert err.strip() == busy_line("held", winner.pid)
        release(team["go"])
        out, err = winner.communicate(timeout=60)
        assert winner.returncode == 0, err
        assert out.strip() == ANSWER
    finally:
        for proc in resumes:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    assert_nothing_doubled(team["log"])
    assert show(cli, "held")["status"] == "completed"


def test_a_killed_runner_does_not_block_resume(cli: Cli, team, held) -> None:
    kill_once_coding_finished(cli, held)
    assert show(cli, "held")["status"] == "paused"
    resumed = cli("resume", "held", "--store", cli.store)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == ANSWER
    assert_nothing_doubled(team["log"])
    again = cli("resume", "held", "--store", cli.store)  # the lease was given back
    assert (again.returncode, again.stdout.strip()) == (0, ANSWER)
