"""Slip repairs in ``show --json``: counted per agent and in the run's usage; a run
stored before the counter existed reports 0."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from langgraph.types import StateSnapshot
from support.testkit import Cli, show

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import is_closing_request
from mirograph.agents.sim.server import SimServer
from mirograph.flows.events import read_events
from mirograph.flows.loader import validate_flow
from mirograph.flows.report import build_report
from mirograph.state.registry import RunRecord

ANSWER = "Done.</think>\n\n\\boxed{42}"
#: ``support.team_tools:lookup`` lives on server ``team_tools``; the model names another.
SLIPPED = "Looking.</think>\n\n" + render_call("search", "lookup", {"topic": "a", "step": 1})


def policy(body: dict[str, Any]) -> str:
    """Two turns that each call ``lookup`` on the wrong server, then the answer."""
    done = sum(message["role"] == "assistant" for message in body["messages"])
    last = body["messages"][-1]["content"]
    return ANSWER if done >= 2 or is_closing_request(last) else SLIPPED


def flow_spec(base_url: str) -> dict[str, Any]:
    return {
        "name": "slips",
        "models": {"m": {"base_url": base_url, "max_tokens": 512}},
        "agents": {"main": {"model": "m", "tools": ["support.team_tools:lookup"]}},
        "entry": "main",
    }


def test_show_json_reports_the_slips_repaired(cli: Cli, tmp_path: Path) -> None:
    with SimServer(policy) as srv:
        flow = tmp_path / "slips.yaml"
        flow.write_text(yaml.safe_dump(flow_spec(srv.base_url)), encoding="utf-8")
        done = cli("run", "Q?", "--flow", str(flow), "--id", "slips", "--store", cli.store)
        assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"
    report = show(cli, "slips")
    assert report["agents"]["main"]["slip_repairs"] == 2
    assert report["agents"]["main"]["tool_calls"] == 2
    assert report["usage"]["slip_repairs"] == 2
    calls = [e for e in read_events(Path(report["events"])) if e["event"] == "tool_call"]
    assert [(e["tool"], e["server"], e["slips"]) for e in calls] == [
        ("lookup", "team_tools", ["server search -> team_tools"])
    ] * 2
    # The model was shown its reply as it wrote it, server name included.
    assert [m["content"] for m in srv.requests[2]["messages"] if m["role"] == "assistant"] == [
        SLIPPED,
        SLIPPED,
    ]


def test_a_run_stored_without_the_counter_reports_zero() -> None:
    flow = validate_flow(flow_spec("http://127.0.0.1:9/v1"))
    values = {"agent": "main", "stats": {"turns": 3, "tool_calls": 2}}  # an older checkpoint
    snapshot = StateSnapshot(values, (), {}, None, None, None, (), ())
    record = RunRecord(id="r", question="Q", flow="slips", flow_spec={}, status="completed", pid=0)
    report = build_report(record, flow, snapshot)
    assert report["agents"]["main"]["slip_repairs"] == 0
    assert report["agents"]["main"]["turns"] == 3
