"""The custom graphs in ``examples/`` run to an answer and resume after a kill.

Each runs through the CLI (``--flow examples/<file>.py:build_graph``) against
``sim-model``; the model blocks once mid-way, the runner is SIGKILLed there,
and ``resume`` finishes the run with exact counts.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from support.testkit import Cli, show, wait_for_fifo

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_killed_and_resumed(
    cli: Cli, sim_model, tmp_path: Path, policy: str, graph: str, run_id: str
) -> tuple[str, dict, dict]:
    """Start the run, kill it where the policy blocks, resume it; the reports before and after."""
    fifo, flag = tmp_path / "blocked.fifo", tmp_path / "block-once"
    os.mkfifo(fifo)
    flag.touch()
    cli.env.update({"EXAMPLES_FIFO": str(fifo), "EXAMPLES_BLOCK_FLAG": str(flag)})
    cli.env["MIROGRAPH_BASE_URL"] = sim_model(policy, "--tool-call-parser", "hermes")
    ref = f"{EXAMPLES / graph}:build_graph"
    runner = cli.popen("run", "Q?", "--flow", ref, "--id", run_id, "--store", cli.store)
    blocked = wait_for_fifo(fifo, runner)
    runner.send_signal(signal.SIGKILL)
    assert runner.wait(timeout=30) == -signal.SIGKILL
    killed = show(cli, run_id)
    resumed = cli("resume", run_id, "--store", cli.store)
    assert resumed.returncode == 0, resumed.stderr
    final = show(cli, run_id)
    assert final["status"] == "completed"
    assert resumed.stdout.strip() == final["answer"]
    return blocked, killed, final


def test_verify_loop_sends_the_work_back_and_resumes_inside_the_researcher(
    cli: Cli, sim_model, tmp_path: Path
) -> None:
    blocked, killed, final = run_killed_and_resumed(
        cli, sim_model, tmp_path, "support.examples_policy:verify?block=researcher2:1",
        "verify_loop.py", "verify",
    )  # fmt: skip
    assert blocked == "blocked at researcher2:1\n"
    assert killed["status"] == "paused"
    running = [r for r in killed["invocations"] if r["status"] == "running"]
    assert [(r["agent"], r["turns"]) for r in running] == [("researcher", 1)]

    assert final["answer"] == "42"
    rows = [(r["agent"], r["status"], r["turns"], r["tool_calls"]) for r in final["invocations"]]
    assert rows == [
        ("planner", "completed", 1, 0),
        ("researcher", "completed", 3, 2),
        ("verifier", "completed", 1, 0),
        ("researcher", "completed", 3, 2),  # sent back once, with the verifier's objection
        ("verifier", "completed", 1, 0),
    ]
    assert final["agents"]["researcher"]["tool_calls"] == 4
    workspace = cli.home / "runs" / "verify" / "workspace" / "notes"
    assert sorted(p.name for p in workspace.iterdir()) == ["round-1.md", "round-2.md"]


def test_native_model_with_a_custom_tool_resumes_inside_the_analyst(
    cli: Cli, sim_model, tmp_path: Path
) -> None:
    blocked, killed, final = run_killed_and_resumed(
        cli, sim_model, tmp_path, "support.examples_policy:native?block=analyst:2",
        "native_tools.py", "native",
    )  # fmt: skip
    assert blocked == "blocked at analyst:2\n"
    assert [(r["agent"], r["turns"]) for r in killed["invocations"]] == [("analyst", 2)]
    assert final["answer"] == "Graz"
    rows = [(r["agent"], r["turns"], r["tool_calls"]) for r in final["invocations"]]
    assert rows == [("analyst", 3, 2), ("writer", 1, 0)]


def test_a_missing_graph_builder_is_rejected_before_anything_runs(cli: Cli) -> None:
    result = cli(
        "run", "Q?", "--flow", f"{EXAMPLES / 'verify_loop.py'}:no_such", "--store", cli.store
    )
    assert result.returncode == 2
    assert "has no function 'no_such'" in result.stderr
    assert not (cli.home / "runs").exists()


@pytest.mark.parametrize("graph", ["verify_loop.py", "native_tools.py"])
def test_examples_build_without_a_model_server(graph: str, tmp_path: Path) -> None:
    from mirograph.flows.graph_ref import load_builder
    from mirograph.graphs.custom import GraphContext

    ctx = GraphContext("build-check", tmp_path)
    compiled = load_builder(f"{EXAMPLES / graph}:build_graph")(ctx).compile()
    assert "__start__" in compiled.get_graph().nodes
    assert ctx.recursion_limit >= 100
