"""``mirograph ls``: every run with its status, question, flow, turns, tokens and age;
filtered by status; as JSON for scripts."""

from __future__ import annotations

import json
from pathlib import Path

from testkit import Cli, free_port, write_team_flow


def test_ls_lists_filters_and_counts(cli: Cli, sim_model, tmp_path: Path) -> None:
    policy = sim_model("team_policy:team?browsing=2")
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

    table = cli("ls", "--store", cli.store, env={"COLUMNS": "160"})
    assert table.returncode == 0
    header = table.stdout.splitlines()[1]
    for column in ("id", "status", "question", "flow", "turns", "tokens", "age"):
        assert column in header
    assert f"{rows[1]['tokens']:,}" in table.stdout

    none = cli("ls", "--store", cli.store, "--status", "failed")
    assert (none.returncode, none.stdout, none.stderr) == (0, "", "no runs with that status\n")
    bad = cli("ls", "--store", cli.store, "--status", "done")
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "error: unknown status 'done'; use one of: running, paused, completed, no_answer, failed"
    )
