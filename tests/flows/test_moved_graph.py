"""``show`` and ``export`` of a custom-graph run still work once its graph file moved."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support.examples_policy import verify
from support.testkit import Cli

from mirograph.agents.sim.server import SimServer
from mirograph.flows.runner import start_run

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def test_show_and_export_read_the_run_after_the_graph_file_moved(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph_file = tmp_path / "mine" / "verify_loop.py"
    graph_file.parent.mkdir()
    shutil.copy(EXAMPLES / "verify_loop.py", graph_file)
    with SimServer(verify) as srv:
        monkeypatch.setenv("MIROGRAPH_BASE_URL", srv.base_url)
        ref = f"{graph_file}:build_graph"
        outcome = await start_run("Q?", ref, run_id="moved", store_url=cli.store)
    assert outcome.answer == "42"
    before = json.loads(cli("show", "moved", "--store", cli.store, "--json").stdout)
    graph_file.rename(tmp_path / "elsewhere.py")

    shown = cli("show", "moved", "--store", cli.store, "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert (report["status"], report["answer"]) == ("completed", "42")
    assert report["invocations"] == before["invocations"]
    assert report["warnings"] == [
        f"graph {ref!r}: file {str(graph_file)!r} does not exist; shown from the store"
    ]
    text = cli("show", "moved", "--store", cli.store)
    assert text.returncode == 0, text.stderr
    assert "does not exist; shown from the store" in text.stdout
    assert "researcher" in text.stdout and "42" in text.stdout

    exported = cli("export", "moved", "--store", cli.store)
    assert exported.returncode == 0, exported.stderr
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    agents = [r["label"] for r in records if r["type"] == "agent"]
    assert agents == ["planner#1", "researcher#1", "verifier#1", "researcher#2", "verifier#2"]
    # Each call's own history is read from its checkpoints, as before the move.
    assert any(r["type"] == "message" and "Verifier feedback: REJECT" in json.dumps(r)
               for r in records)  # fmt: skip
    miroflow = cli("export", "moved", "--format", "miroflow", "--store", cli.store)
    assert miroflow.returncode == 0, miroflow.stderr
    sessions = json.loads(miroflow.stdout)["sub_agent_message_history_sessions"]
    assert len(sessions["agent-researcher_4"]["message_history"]) >= 2
