"""``mirograph ls``: every run with its status, question, flow, turns, tokens and age;
filtered by status; as JSON for scripts."""

from __future__ import annotations

import json
import os
import pty
import shlex
import subprocess
from pathlib import Path

from support.testkit import Cli, free_port, write_team_flow


def test_ls_lists_filters_and_counts(cli: Cli, sim_model, tmp_path: Path) -> None:
    policy = sim_model("support.team_policy:team?browsing=2")
    up = write_team_flow(tmp_path / "up.yaml", policy, coding=None)
    down = write_team_flow(
        tmp_path / "down.yaml", f"http://127.0.0.1:{free_port()}/v1", coding=None, max_retries=0
    )
    done = cli("run", "Compare alpha and beta.", "--flow", str(up), "--id", "done",
               "--store", cli.store)  # fmt: skip
    assert done.returncode == 0, done.stderr
    paused = cli("run", "Is the server there?", "--flow", str(down), "--id", "stalled",
                 "--store", cli.store)  # fmt: skip
    assert paused.returncode == 3, paused.stderr

    rows = json.loads(cli("ls", "--store", cli.store, "--json").stdout)
    assert [(r["id"], r["status"], r["flow"]) for r in rows] == [
        ("stalled", "paused", "team"),
        ("done", "completed", "team"),
    ]
    report = json.loads(cli("show", "done", "--store", cli.store, "--json").stdout)
    usage = report["usage"]
    # planner: delegate, then answer; browsing: 2 tool turns, then its report
    assert rows[1]["turns"] == usage["turns"] == 2 + 3
    assert rows[1]["tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert rows[0]["turns"] == 0 and rows[0]["question"] == "Is the server there?"

    only = json.loads(cli("ls", "--store", cli.store, "--json", "--status", "paused").stdout)
    assert [r["id"] for r in only] == ["stalled"]
    both = cli("ls", "--store", cli.store, "-s", "paused", "-s", "completed", "--json")
    assert len(json.loads(both.stdout)) == 2
    assert json.loads(cli("ls", "--store", cli.store, "--json", "-n", "1").stdout)[0]["id"] == (
        "stalled"
    )

    table = cli("ls", "--store", cli.store, env={"COLUMNS": "30"})
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["id", "status", "question", "flow", "turns", "tokens", "age"]
    assert lines[1].split()[:2] == ["stalled", "paused"]
    assert lines[2].split()[:2] == ["done", "completed"]  # whole values, however narrow
    assert f"{rows[1]['tokens']:,}" in table.stdout
    grep = f"{shlex.join(cli.argv('ls', '--store', cli.store))} | grep completed"
    found = subprocess.run(grep, shell=True, env=cli.environ({"COLUMNS": "30"}),
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert found.stdout.split()[:2] == ["done", "completed"]
    assert terminal_ls(cli, columns=40).count("completed") == 1  # not cut on a terminal either

    none = cli("ls", "--store", cli.store, "--status", "failed")
    assert (none.returncode, none.stdout, none.stderr) == (0, "", "no runs with that status\n")
    bad = cli("ls", "--store", cli.store, "--status", "done")
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "error: unknown status 'done';"
        " use one of: running, paused, completed, no_answer, failed, queued"
    )


def terminal_ls(cli: Cli, *, columns: int) -> str:
    """``ls`` printed to a terminal ``columns`` wide (a pty), as a person sees it."""
    master, slave = pty.openpty()
    env = cli.environ({"COLUMNS": str(columns)})
    proc = subprocess.Popen(cli.argv("ls", "--store", cli.store), env=env,
                            stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)  # fmt: skip
    os.close(slave)
    drawn = b""
    while chunk := _read(master):
        drawn += chunk
    os.close(master)
    assert proc.wait(timeout=60) == 0
    return drawn.decode()


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # the child closed the terminal
        return b""
