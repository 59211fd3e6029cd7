"""End to end through the CLI, over real HTTP against ``mirograph sim-model``.

A 30-turn run with a custom tool is killed with SIGKILL while a tool call is
in flight, then resumed: exactly 30 turns, every tool index executed once
(only the one in flight may run twice), the final answer printed.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import yaml
from support.testkit import Cli, free_port, show, wait_for_fifo

POLICY = "support.e2e_policy:count"
TOOL = "support.e2e_tools:record_index"


def write_flow(path: Path, base_url: str, *, max_turns: int = 30, max_retries: int = 2) -> Path:
    flow = {
        "name": "e2e-count",
        "models": {
            "thinker": {"base_url": base_url, "max_retries": max_retries, "max_tokens": 512}
        },
        "agents": {
            "main": {
                "model": "thinker",
                "max_turns": max_turns,
                "keep_tool_results": 5,
                "tools": [TOOL],
            }
        },
        "entry": "main",
    }
    path.write_text(yaml.safe_dump(flow), encoding="utf-8")
    return path


def test_thirty_turns_survive_sigkill_and_resume(cli: Cli, sim_model, tmp_path: Path) -> None:
    base_url = sim_model(POLICY)
    flow = write_flow(tmp_path / "flow.yaml", base_url)
    log, fifo = tmp_path / "calls.log", tmp_path / "blocked.fifo"
    os.mkfifo(fifo)
    env = {"E2E_LOG": str(log), "E2E_FIFO": str(fifo), "E2E_BLOCK_AT": "17"}

    runner = cli.popen(
        "run",
        "Count to thirty.",
        "--flow",
        str(flow),
        "--id",
        "count-30",
        "--store",
        cli.store,
        env=env,
    )
    assert wait_for_fifo(fifo, runner) == "blocked at 17\n"
    runner.send_signal(signal.SIGKILL)
    assert runner.wait(timeout=30) == -signal.SIGKILL

    killed = show(cli, "count-30")
    assert killed["status"] == "paused"  # the dead runner's row is not "running"
    assert killed["agents"]["main"]["turns"] == 17  # turn 17's model step was committed

    resumed = cli("resume", "count-30", "--store", cli.store, env={**env, "E2E_BLOCK_AT": ""})
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == "counted"

    final = show(cli, "count-30")
    assert final["status"] == "completed"
    assert final["answer"] == "counted"
    assert final["stop_reason"] == "max_turns"
    main = final["agents"]["main"]
    assert (main["turns"], main["tool_calls"], main["rollbacks"]) == (30, 30, 0)
    assert main["prompt_tokens"] > 0 and main["completion_tokens"] > 0

    runs = Counter(int(line) for line in log.read_text().split())
    assert sorted(runs) == list(range(1, 31))
    assert {i: n for i, n in runs.items() if n != 1} == {17: 2}  # only the one in flight


def test_no_model_server_pauses_the_run_and_resume_finishes_it(
    cli: Cli, sim_model, tmp_path: Path
) -> None:
    port = free_port()
    flow = write_flow(
        tmp_path / "flow.yaml", f"http://127.0.0.1:{port}/v1", max_turns=3, max_retries=0
    )
    env = {"E2E_LOG": str(tmp_path / "calls.log")}
    result = cli(
        "run",
        "Count to three.",
        "--flow",
        str(flow),
        "--id",
        "offline",
        "--store",
        cli.store,
        env=env,
    )
    assert result.returncode == 3
    message = result.stderr.strip()
    assert "\n" not in message
    assert f"http://127.0.0.1:{port}/v1" in message
    assert "mirograph sim-model" in message and "vllm serve" in message
    assert "mirograph resume offline" in message
    assert show(cli, "offline")["status"] == "paused"

    sim_model(POLICY, port=port)
    resumed = cli("resume", "offline", "--store", cli.store, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == "counted"
    assert show(cli, "offline")["agents"]["main"]["turns"] == 3


def test_unknown_run_id_says_how_to_find_ids(cli: Cli) -> None:
    result = cli("show", "no-such-run", "--store", cli.store)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: no run 'no-such-run' in this store; `mirograph ls` lists run ids"
    )


def test_broken_flow_is_rejected_before_anything_runs(cli: Cli, tmp_path: Path) -> None:
    flow = tmp_path / "broken.yaml"
    flow.write_text(
        "name: x\nmodels: {m: {}}\nagents: {main: {model: m, max_turns: many}}\nentry: main\n"
    )
    result = cli("run", "q", "--flow", str(flow), "--store", cli.store)
    assert result.returncode == 2
    assert str(flow) in result.stderr and "agents.main.max_turns" in result.stderr
    assert not (cli.home / "runs").exists()


def test_run_dash_reads_a_long_question_from_a_pipe(cli: Cli, sim_model, tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    spec = {
        "name": "measure",
        "models": {
            "m": {"base_url": sim_model("support.measure_policy:measure"), "max_tokens": 512}
        },
        "agents": {"main": {"model": "m", "max_turns": 2}},
        "entry": "main",
    }
    flow.write_text(yaml.safe_dump(spec), encoding="utf-8")
    question = "How long is this? BEGIN" + "x" * 300_000 + "END"  # past one argument's limit
    argv = cli.argv("run", "-", "--flow", str(flow), "--id", "long", "--store", cli.store)
    result = subprocess.run(argv, input=question, env=cli.environ(), capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("300000\n", "")
    assert show(cli, "long")["question"] == question

    argv = cli.argv("run", "-", "--flow", str(flow), "--store", cli.store)
    empty = subprocess.run(argv, input="  \n", env=cli.environ(), capture_output=True, text=True,
                           timeout=60)  # fmt: skip
    assert empty.returncode == 2
    assert empty.stderr == "error: the question is empty; pass the question to investigate\n"
