"""``resume --set``: a refused change saves nothing; a change that would drop a
sub-agent call in flight is refused, naming the call."""

from __future__ import annotations

import functools
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from support.testkit import write_team_flow

from mirograph.agents.sim.server import SimServer
from mirograph.flows.loader import FlowError, load_flow
from mirograph.flows.runner import resume_run, run_report, start_run
from mirograph.graphs.run_control import RunControl

ANSWER = "REPORT[browsing:3], REPORT[coding:1]"


@pytest.fixture
def team_server() -> Any:
    """The team policy (planner, browsing 3 turns, coding 1) on an in-process sim server."""
    from support.team_policy import team

    with SimServer(functools.partial(team, browsing=3, coding=1)) as srv:
        yield srv


def stored_spec(db: Path, run_id: str) -> str:
    """The run's flow_spec exactly as stored."""
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(
            "SELECT flow_spec FROM mirograph_runs WHERE id = ?", (run_id,)
        ).fetchone()[0]


def paused_in(agent: str) -> RunControl:
    """A control that asks for a pause as soon as ``agent`` is called: the run stops
    at that agent's first step boundary, with the call in flight."""
    control = RunControl()

    def sink(event: dict[str, Any]) -> None:
        if event["event"] == "agent_started" and event["agent"] == agent:
            control.request_pause(f"test: pause in {agent}")

    control.add_sink(sink)
    return control


async def paused_team_run(tmp_path: Path, base_url: str) -> str:
    flow = load_flow(str(write_team_flow(tmp_path / "team.yaml", base_url)), [])
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    outcome = await start_run(
        "Compare alpha and beta.", flow, run_id="t", store_url=store, control=paused_in("browsing")
    )
    assert outcome.status == "paused", outcome
    return store


async def test_a_refused_set_leaves_the_stored_flow_byte_identical(
    home: Path, tmp_path: Path, team_server: SimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await paused_team_run(tmp_path, team_server.base_url)
    before = stored_spec(tmp_path / "runs.db", "t")
    # Valid as a flow, but the search tool cannot run without its key.
    monkeypatch.delenv("TAVILY_API_KEY", raising=False)
    with pytest.raises(FlowError, match=r"agents\.coding\.tools\[0\]"):
        await resume_run("t", store_url=store, overrides=["agents.coding.tools=[search]"])
    assert stored_spec(tmp_path / "runs.db", "t") == before
    with pytest.raises(FlowError, match="max_turns"):
        await resume_run("t", store_url=store, overrides=["agents.coding.max_turns=0"])
    assert stored_spec(tmp_path / "runs.db", "t") == before
    done = await resume_run("t", store_url=store)
    assert (done.status, done.answer) == ("completed", ANSWER)


async def test_removing_a_sub_agent_with_a_call_in_flight_is_refused(
    home: Path, tmp_path: Path, team_server: SimServer
) -> None:
    store = await paused_team_run(tmp_path, team_server.base_url)
    before = stored_spec(tmp_path / "runs.db", "t")
    calls = (await run_report("t", store_url=store))["invocations"]
    assert ("browsing", "running") in {(c["agent"], c["status"]) for c in calls}
    with pytest.raises(FlowError) as refused:
        await resume_run("t", store_url=store, overrides=["agents.planner.sub_agents=[coding]"])
    message = str(refused.value)
    assert "\n" not in message
    assert "removes sub-agent 'browsing' from 'planner'" in message
    assert "'Sub-task for browsing: Compare alpha and beta.'" in message
    assert stored_spec(tmp_path / "runs.db", "t") == before
    # A change that keeps the call's agent is accepted and saved.
    done = await resume_run("t", store_url=store, overrides=["agents.coding.max_turns=5"])
    assert (done.status, done.answer) == ("completed", ANSWER)
    assert stored_spec(tmp_path / "runs.db", "t") != before
