"""The system prompts the weights see: the deep-research flow's against golden files,
and one run's system messages, identical on every request and after a resume.

The golden files were reviewed by hand; after a deliberate change to a prompt,
rewrite them with ``MIROGRAPH_WRITE_GOLDEN=1 pytest tests/agents/golden`` and
review the diff.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import is_closing_request
from mirograph.agents.sim.scripting import Fault
from mirograph.agents.sim.server import SimServer
from mirograph.agents.tools.base import ToolContext
from mirograph.flows.loader import load_flow, validate_flow
from mirograph.flows.runner import resume_run, start_run
from mirograph.graphs import agent_loop
from mirograph.graphs.agent_loop import AgentLoop
from mirograph.graphs.builder import build_agent

GOLDEN = Path(__file__).with_name("deep_research")
TODAY = "2026-11-29"


async def rendered_system_prompts(workspace: Path) -> dict[str, str]:
    """Each agent's system message, as its ``start`` step writes it on ``TODAY``."""
    flow = load_flow("deep-research", check_env=False)
    built: dict[str, AgentLoop] = {}
    build_agent(flow, flow.entry, ToolContext(run_id="golden", workspace=workspace), built=built)
    prompts = {}
    for name, loop in built.items():
        dated = replace(loop, today=TODAY)
        update = await dated.start({"question": "What is it?"})  # type: ignore[typeddict-item]
        prompts[name] = update["messages"][0].content
        await loop.aclose()
        await dated.aclose()
    return prompts


async def test_deep_research_system_prompts_match_the_golden_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("MIROGRAPH_") and name != "MIROGRAPH_WRITE_GOLDEN":
            monkeypatch.delenv(name)  # the flow's defaults, not this machine's settings
    prompts = await rendered_system_prompts(tmp_path)
    assert list(prompts) == ["browsing", "coding", "reasoning", "planner"]
    if os.environ.get("MIROGRAPH_WRITE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        for name, text in prompts.items():
            (GOLDEN / f"{name}.txt").write_text(text, encoding="utf-8", newline="")
    for name, text in prompts.items():
        assert text == (GOLDEN / f"{name}.txt").read_text(encoding="utf-8"), name


# -- the same text on every request of a run, and after a resume ----------------------------


def first_user(body: dict[str, Any]) -> str:
    return str(body["messages"][1]["content"])


def turn(body: dict[str, Any]) -> int:
    return sum(m["role"] == "assistant" for m in body["messages"])


def planner(healthy: dict[str, bool]) -> Any:
    """Delegates once, fails once (the run pauses), then delegates again and answers."""

    def policy(body: dict[str, Any]) -> Any:
        if is_closing_request(body["messages"][-1]["content"]):
            return "Done.</think>\n\n\\boxed{42}"
        step = turn(body)
        if step == 1 and not healthy["on"]:
            return Fault(503, "overloaded")
        if step < 2:
            call = render_call("agent-browsing", "search_and_browse", {"subtask": f"part {step}"})
            return f"Asking.</think>\n\nDelegating.\n\n{call}"
        return "Both parts are in.</think>\n\nThe answer is 42."

    return policy


def browsing(body: dict[str, Any]) -> str:
    if is_closing_request(body["messages"][-1]["content"]):
        return "Reporting.</think>\n\nREPORT: found it."
    if turn(body) == 0:
        topic = first_user(body).split("\n", 1)[0]
        call = render_call("lab", "lookup", {"topic": topic, "step": 1})
        return f"Looking.</think>\n\nLooking it up.\n\n{call}"
    return "Enough.</think>\n\nI have it."


async def test_every_request_of_a_run_sends_its_agents_one_system_prompt(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Today:  # the same day before and after the resume
        @staticmethod
        def today() -> Any:
            from datetime import date

            return date(2026, 11, 29)

    monkeypatch.setattr(agent_loop, "date", Today)
    healthy = {"on": False}
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with SimServer(planner(healthy)) as main_srv, SimServer(browsing) as sub_srv:
        models = {"m": {"base_url": main_srv.base_url}, "s": {"base_url": sub_srv.base_url}}
        flow = validate_flow(
            {
                "name": "stable",
                "models": {
                    k: {**v, "max_tokens": 512, "max_retries": 0} for k, v in models.items()
                },
                "agents": {
                    "planner": {"model": "m", "role": "main", "sub_agents": ["browsing"]},
                    "browsing": {"model": "s", "tools": ["support.team_tools:lookup"]},
                },
                "entry": "planner",
            }
        )
        paused = await start_run("What is it?", flow, run_id="stable", store_url=store)
        assert paused.status == "paused", paused.reason
        healthy["on"] = True
        resumed = await resume_run("stable", store_url=store)
    assert (resumed.status, resumed.answer) == ("completed", "42")

    planner_systems = {r["messages"][0]["content"] for r in main_srv.requests}
    browsing_systems = {r["messages"][0]["content"] for r in sub_srv.requests}
    subtasks = [first_user(r).split("\n", 1)[0] for r in sub_srv.requests if turn(r) == 0]
    assert subtasks == ["part 0", "part 1"]  # the second call started after the resume
    assert len(main_srv.requests) == 5 and len(sub_srv.requests) == 6
    assert len(planner_systems) == 1 and len(browsing_systems) == 1
    [system] = planner_systems
    assert "Today is: 2026-11-29\n" in system
    assert "## Server name: agent-browsing\n### Tool name: search_and_browse\n" in system
