"""The event log: one event per model call and per tool call, consistent with the
run's counters, and no secret in it (or in the store, or in ``--json`` output),
even when a tool echoes an API key or fails quoting one."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import yaml
from support.testkit import Cli, show, write_team_flow

TAVILY_KEY = "tvly-planted-secret-abcdef123456"
MODEL_KEY = "sk-planted-model-key-0123456789"


def test_events_match_the_run_and_hold_no_secret(cli: Cli, sim_model, tmp_path: Path) -> None:
    log = tmp_path / "team.log"
    cli.env.update(
        {"TEAM_LOG": str(log), "TAVILY_API_KEY": TAVILY_KEY, "MIROGRAPH_API_KEY": MODEL_KEY}
    )
    flow = write_team_flow(
        tmp_path / "leaky.yaml",
        sim_model("support.team_policy:team?browsing=3&coding=2"),
        browsing="support.leaky_tools:lookup",
        coding="support.leaky_tools:compute",
        name="leaky",
    )
    spec = yaml.safe_load(flow.read_text())
    spec["agents"]["coding"]["max_rollbacks"] = 0  # its failures are shown, not resampled
    flow.write_text(yaml.safe_dump(spec))
    run = cli("run", "Compare.", "--flow", str(flow), "--id", "leaky", "--store", cli.store,
              "--json")  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["status"] == "completed"

    path = Path(report["events"])
    assert path == cli.home / "runs" / "leaky" / "events.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()]
    # --json streams the same events on stderr, one JSON object per line.
    streamed = [json.loads(line) for line in run.stderr.splitlines()]
    assert [e["event"] for e in streamed] == [e["event"] for e in events]

    kinds = Counter(e["event"] for e in events)
    requests = Counter(line.split()[1] for line in log.read_text().splitlines())
    assert kinds["model_call"] == sum(requests.values())  # every request, closing ones too
    assert kinds["tool_call"] == report["usage"]["tool_calls"] - 2  # the 2 sub-agent calls
    assert (kinds["agent_started"], kinds["agent_finished"]) == (2, 2)
    assert events[0]["event"] == "run_started" and events[-1]["event"] == "run_completed"
    assert {e["run_id"] for e in events} == {"leaky"}

    for agent in ("planner", "browsing", "coding"):
        calls = [e for e in events if e["event"] == "model_call" and e["agent"] == agent]
        stats = report["agents"][agent]
        assert len(calls) == stats["model_calls"] == requests[agent]
        assert sum(e["prompt_tokens"] for e in calls) == stats["prompt_tokens"]
        assert sum(e["completion_tokens"] for e in calls) == stats["completion_tokens"]
        assert sum(e["cached_tokens"] for e in calls) == stats["cached_tokens"]
        assert [e["turn"] for e in calls if e["phase"] == "work"] == list(
            range(1, stats["turns"] + 1)
        )
        assert all(e["latency_ms"] > 0 for e in calls)
        assert stats["wall_seconds"] > 0
    tools = [e for e in events if e["event"] == "tool_call"]
    assert {(e["agent"], e["tool"], e["outcome"]) for e in tools} == {
        ("browsing", "lookup", "ok"),
        ("coding", "compute", "error"),
    }
    assert [e["turn"] for e in tools if e["agent"] == "browsing"] == [1, 2, 3]
    started = {e["agent"]: e["ns"] for e in events if e["event"] == "agent_started"}
    by_agent = {r["agent"]: r["checkpoint_ns"] for r in report["invocations"]}
    assert started == by_agent  # events and the report name each call's namespace alike
    assert report["wall_seconds"] > 0 and report["usage"]["wall_seconds"] > 0

    # The secrets reached the tools (the results say so, masked) ...
    assert "configured with ***" in path.read_text()
    assert "backend refused key ***" in path.read_text()
    # ... and nowhere else: not in events, output, checkpoints or the registry.
    stored = b"".join(p.read_bytes() for p in cli.home.glob("runs.db*"))
    for secret in (TAVILY_KEY, MODEL_KEY):
        assert secret not in path.read_text()
        assert secret not in run.stdout + run.stderr
        assert secret.encode() not in stored
    assert show(cli, "leaky")["status"] == "completed"
