"""A planner that calls two sub-agents in one reply, over real HTTP against sim-model.

The planner runs on one server and the sub-agents on another, so each
server's request log shows exactly what each agent was sent.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from support.team_policy import team

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import is_closing_request, task_message
from mirograph.agents.sim.scripting import Fault
from mirograph.agents.sim.server import SimServer
from mirograph.agents.tools.base import tool_specs
from mirograph.errors import FlowBuildError, FlowError
from mirograph.flows.loader import validate_flow
from mirograph.flows.runner import (
    RunFailedError,
    resume_run,
    run_report,
    start_run,
)
from mirograph.flows.runs import list_runs
from mirograph.graphs.sub_agents import ROLE_TOOLS, sub_agent_tool
from mirograph.state.retention import OMITTED

QUESTION = "How do alpha and beta compare?"


def team_flow(planner_url: str, worker_url: str, **agents: dict[str, Any]) -> Any:
    spec: dict[str, Any] = {
        "name": "team",
        "models": {
            "planner_m": {"base_url": planner_url, "max_tokens": 512},
            "worker_m": {"base_url": worker_url, "max_tokens": 512},
        },
        "agents": {
            "planner": {"model": "planner_m", "role": "main", "sub_agents": ["browsing", "coding"]},
            "browsing": {
                "model": "worker_m",
                "max_turns": 10,
                "keep_tool_results": 2,
                "tools": ["support.team_tools:lookup"],
            },
            "coding": {
                "model": "worker_m",
                "max_turns": 10,
                "keep_tool_results": 1,
                "tools": ["support.team_tools:compute"],
            },
        },
        "entry": "planner",
    }
    for name, extra in agents.items():
        spec["agents"].setdefault(name, {}).update(extra)
    return validate_flow(spec)


def is_closing(request: dict[str, Any]) -> bool:
    return is_closing_request(request["messages"][-1]["content"])


def turn(request: dict[str, Any]) -> int:
    """Assistant replies already in a request: the turn it asks for, from 0."""
    return sum(m["role"] == "assistant" for m in request["messages"])


def of(requests: list[dict[str, Any]], agent: str) -> list[dict[str, Any]]:
    """The requests one sub-agent sent (its first user message names it)."""
    return [r for r in requests if r["messages"][1]["content"].startswith(f"Sub-task for {agent}:")]


async def test_two_sub_agents_in_one_reply_run_in_parallel_with_their_own_windows(
    home: Path, tmp_path: Path
) -> None:
    barrier: dict[str, asyncio.Barrier] = {}

    async def workers(body: dict[str, Any]) -> str:
        if sum(m["role"] == "assistant" for m in body["messages"]) == 0:
            # Both first requests must be in flight at once, or this times out.
            first = barrier.setdefault("first", asyncio.Barrier(2))
            await asyncio.wait_for(first.wait(), timeout=20)
        return team(body, browsing=4, coding=3)

    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with SimServer(team) as planner_srv, SimServer(workers) as worker_srv:
        flow = team_flow(planner_srv.base_url, worker_srv.base_url)
        outcome = await start_run(QUESTION, flow, run_id="team-1", store_url=store)
        report = await run_report("team-1", store_url=store)

    assert outcome.status == "completed", outcome.reason
    assert outcome.answer == "REPORT[browsing:4], REPORT[coding:3]"

    # The planner's second request: both reports in ONE user message, in call order.
    planner_requests = planner_srv.requests
    first_reply_calls = planner_requests[1]["messages"][2]["content"].count("<use_mcp_tool>")
    assert first_reply_calls == 2
    results = planner_requests[1]["messages"][-1]
    assert results["role"] == "user"
    assert re.findall(r"REPORT\[\w+:\d\]", results["content"]) == [
        "REPORT[browsing:4]",
        "REPORT[coding:3]",
    ]

    for agent, tool, other, keep, turns in (
        ("browsing", "lookup", "compute", 2, 4),
        ("coding", "compute", "lookup", 1, 3),
    ):
        sent = of(worker_srv.requests, agent)
        assert len(sent) == turns + 2  # each working turn, the no-call reply, the closing
        for request in sent:
            system, task = request["messages"][0]["content"], request["messages"][1]["content"]
            assert f"### Tool name: {tool}" in system and f"### Tool name: {other}" not in system
            assert "agent-" not in system  # sub-agents here have no sub-agents of their own
            assert task == task_message(f"Sub-task for {agent}: {QUESTION}", role=agent)
            assert "boxed" not in task  # a sub-agent reports; it does not box an answer
        last_work = sent[turns]["messages"]  # after `turns` results
        contents = [m["content"] for m in last_work[2:] if m["role"] == "user"]
        assert len(contents) == turns
        assert contents.count(OMITTED) == turns - keep  # its own K
        assert all(f"{tool} result {agent}#" in c for c in contents[-keep:])

    agents = report["agents"]
    assert (agents["planner"]["turns"], agents["planner"]["tool_calls"]) == (2, 2)
    assert (agents["browsing"]["turns"], agents["browsing"]["tool_calls"]) == (5, 4)
    assert (agents["coding"]["turns"], agents["coding"]["tool_calls"]) == (4, 3)
    rows = report["invocations"]
    assert [(r["agent"], r["status"], r["turns"], r["depth"]) for r in rows] == [
        ("browsing", "completed", 5, 1),
        ("coding", "completed", 4, 1),
    ]
    assert rows[0]["subtask"].startswith("Sub-task for browsing:")
    assert all(r["prompt_tokens"] > 0 and r["completion_tokens"] > 0 for r in rows)
    assert agents["browsing"]["prompt_tokens"] == rows[0]["prompt_tokens"]


async def test_three_levels_run_and_report_nested_calls(home: Path, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with SimServer(lambda body: team(body, browsing=2, helper=2)) as srv:
        flow = validate_flow(
            {
                "name": "three-levels",
                "models": {"m": {"base_url": srv.base_url, "max_tokens": 512}},
                "agents": {
                    "planner": {"model": "m", "sub_agents": ["browsing"]},
                    "browsing": {
                        "model": "m",
                        "tools": ["support.team_tools:lookup"],
                        "sub_agents": ["helper"],
                    },
                    "helper": {"model": "m", "tools": ["support.team_tools:compute"]},
                },
                "entry": "planner",
            }
        )
        outcome = await start_run(QUESTION, flow, run_id="deep", store_url=store)
        report = await run_report("deep", store_url=store)
        helper_requests = of(srv.requests, "helper")
    assert outcome.status == "completed", outcome.reason
    # The browsing report carries the helper's report up to the planner.
    assert outcome.answer == "REPORT[browsing:2], REPORT[helper:2]"
    assert "### Tool name: run_subtask" in of(srv.requests, "browsing")[0]["messages"][0]["content"]
    assert "You are a sub-agent" in helper_requests[0]["messages"][0]["content"]
    rows = [(r["agent"], r["parent"], r["depth"], r["status"]) for r in report["invocations"]]
    assert rows == [("browsing", "planner", 1, "completed"), ("helper", "browsing", 2, "completed")]
    assert report["agents"]["helper"]["tool_calls"] == 2


def test_a_cyclic_flow_is_rejected_naming_the_cycle() -> None:
    spec = {
        "name": "loop",
        "models": {"m": {}},
        "agents": {
            "planner": {"model": "m", "sub_agents": ["browsing"]},
            "browsing": {"model": "m", "sub_agents": ["helper"]},
            "helper": {"model": "m", "sub_agents": ["browsing"]},
        },
        "entry": "planner",
    }
    with pytest.raises(FlowError) as err:
        validate_flow(spec, source="loop.yaml")
    assert str(err.value) == (
        "loop.yaml: sub_agents form a cycle: browsing -> helper -> browsing; remove one link"
    )


async def test_a_sub_agent_whose_server_fails_pauses_the_run_and_resume_finishes_it(
    home: Path, tmp_path: Path
) -> None:
    healthy = {"on": False}

    def workers(body: dict[str, Any]) -> Any:
        coding = body["messages"][1]["content"].startswith("Sub-task for coding:")
        if coding and turn(body) == 2 and not healthy["on"]:
            return Fault(503, "overloaded")
        return team(body, browsing=2, coding=3)

    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with SimServer(team) as planner_srv, SimServer(workers) as worker_srv:
        flow = team_flow(
            planner_srv.base_url, worker_srv.base_url, coding={"max_turns": 10}
        ).model_copy(deep=True)
        flow.models["worker_m"].max_retries = 0
        paused = await start_run(QUESTION, flow, run_id="team-p", store_url=store)
        assert paused.status == "paused" and "HTTP 503" in (paused.reason or "")
        report = await run_report("team-p", store_url=store)
        assert report["status"] == "paused"
        coding = [r for r in report["invocations"] if r["agent"] == "coding"]
        assert [(r["status"], r["turns"]) for r in coding] == [("running", 2)]

        healthy["on"] = True
        resumed = await resume_run("team-p", store_url=store)
        final = await run_report("team-p", store_url=store)
        planner_first_turns = sum(
            1
            for r in planner_srv.requests
            if not any(m["role"] == "assistant" for m in r["messages"])
        )
    assert (resumed.status, resumed.answer) == ("completed", "REPORT[browsing:2], REPORT[coding:3]")
    assert planner_first_turns == 1  # the planner's delegating turn was not repeated
    agents = final["agents"]
    assert (agents["coding"]["turns"], agents["coding"]["tool_calls"]) == (4, 3)
    assert (agents["browsing"]["turns"], agents["browsing"]["tool_calls"]) == (3, 2)
    # Each coding turn asked once, except the one that failed (asked again on resume).
    coding_turns = [
        sum(m["role"] == "assistant" for m in r["messages"])
        for r in of(worker_srv.requests, "coding")
    ]
    assert coding_turns.count(2) == 2 and all(coding_turns.count(n) == 1 for n in (0, 1, 3))


async def test_one_sub_agent_called_twice_at_once_and_its_reports_count_toward_keep_k(
    home: Path, tmp_path: Path
) -> None:
    def policy(body: dict[str, Any]) -> str:
        messages = body["messages"]
        if "You are the main agent" not in messages[0]["content"]:
            return team(body, browsing=2)
        if is_closing(body):  # with keep-1 it sees no report: the closing request counts
            return "All three are in.</think>\n\n\\boxed{three reports}"
        rounds = [["north", "south"], ["east"]]
        if turn(body) < len(rounds):
            tasks = [f"Sub-task for browsing: {side}" for side in rounds[turn(body)]]
            calls = [
                render_call("agent-browsing", "search_and_browse", {"subtask": t}) for t in tasks
            ]
            return "Delegating.</think>\n\n" + "\n".join(calls)
        return "Done.</think>\n\nEnough."

    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with SimServer(policy) as srv:
        flow = team_flow(srv.base_url, srv.base_url, planner={"keep_tool_results": 1})
        outcome = await start_run(QUESTION, flow, run_id="twice", store_url=store)
        report = await run_report("twice", store_url=store)
        planner_requests = [
            r for r in srv.requests if "You are the main agent" in r["messages"][0]["content"]
        ]
    assert (outcome.status, outcome.answer) == ("completed", "three reports"), outcome.reason
    rows = [(r["agent"], r["subtask"], r["turns"]) for r in report["invocations"]]
    assert rows == [
        ("browsing", "Sub-task for browsing: north", 3),
        ("browsing", "Sub-task for browsing: south", 3),
        ("browsing", "Sub-task for browsing: east", 3),
    ]
    assert report["agents"]["browsing"]["turns"] == 9
    # Third planner request: the first turn's two reports are one omitted result (K=1).
    results = [m["content"] for m in planner_requests[2]["messages"][2:] if m["role"] == "user"]
    assert results[0] == OMITTED
    assert results[1].startswith("REPORT[browsing:2]")
    # The two parallel calls of one agent kept apart: each saw only its own sub-task.
    firsts = [r for r in of(srv.requests, "browsing") if turn(r) == 0]
    assert sorted(r["messages"][1]["content"].split("\n")[0] for r in firsts) == [
        "Sub-task for browsing: east",
        "Sub-task for browsing: north",
        "Sub-task for browsing: south",
    ]


async def test_a_sub_agent_on_a_native_protocol_model(home: Path, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with (
        SimServer(team) as planner_srv,
        SimServer(lambda b: team(b, coding=2), tool_call_parser="hermes") as native_srv,
    ):
        flow = team_flow(planner_srv.base_url, planner_srv.base_url).model_dump()
        flow["models"]["native_m"] = {
            "protocol": "native",
            "provider": "openai",
            "base_url": native_srv.base_url,
            "max_tokens": 512,
        }
        flow["agents"]["coding"]["model"] = "native_m"
        outcome = await start_run(QUESTION, validate_flow(flow), run_id="nat", store_url=store)
        report = await run_report("nat", store_url=store)
    assert outcome.status == "completed", outcome.reason
    assert outcome.answer == "REPORT[browsing:3], REPORT[coding:2]"
    coding = of(native_srv.requests, "coding")
    assert len(coding) == 4 and not of(native_srv.requests, "browsing")
    working = [r for r in coding if r.get("tools")]
    assert len(working) == 3  # the closing request offers no tools
    assert all([t["function"]["name"] for t in r["tools"]] == ["compute"] for r in working)
    assert "Tool name:" not in coding[0]["messages"][0]["content"]  # tools go through the API
    assert report["agents"]["coding"]["tool_calls"] == 2


async def test_a_rejected_key_in_a_sub_agent_fails_the_run_without_showing_the_key(
    home: Path, tmp_path: Path
) -> None:
    def workers(body: dict[str, Any]) -> Any:
        if body["messages"][1]["content"].startswith("Sub-task for coding:"):
            return Fault(401, "Incorrect API key provided: sk-test-1234567890abc")
        return team(body)

    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with SimServer(team) as planner_srv, SimServer(workers) as worker_srv:
        flow = team_flow(planner_srv.base_url, worker_srv.base_url)
        with pytest.raises(RunFailedError) as failed:
            await start_run(QUESTION, flow, run_id="key", store_url=store)
        report = await run_report("key", store_url=store)
    assert "401" in str(failed.value) and "sk-test" not in str(failed.value)
    assert report["status"] == "failed"
    assert "401" in report["reason"] and "sk-test" not in report["reason"]


async def test_a_tool_name_clash_is_rejected_before_the_run_exists(
    home: Path, tmp_path: Path
) -> None:
    nowhere = "http://127.0.0.1:9/v1"
    flow = team_flow(nowhere, nowhere, coding={"tool_name": "read_file"})
    flow.agents["planner"].tools = ["files"]
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with pytest.raises(FlowBuildError, match="'read_file' is both a tool and a sub-agent"):
        await start_run(QUESTION, flow, run_id="clash", store_url=store)
    assert await list_runs(store_url=store) == []
    assert not (home / "runs").exists()


def test_agent_names_that_cannot_name_a_node_are_rejected() -> None:
    spec = {"name": "x", "models": {"m": {}}, "agents": {"web:search": {"model": "m"}}}
    with pytest.raises(FlowError, match=r"agents\.web:search: agent names use letters"):
        validate_flow({**spec, "entry": "web:search"}, source="x.yaml")


async def test_max_parallel_bounds_how_many_sub_agents_run_at_once(
    home: Path, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with SimServer(lambda body: team(body, browsing=3, coding=3)) as srv:
        flow = team_flow(srv.base_url, srv.base_url).model_copy(update={"max_parallel": 1})
        outcome = await start_run(QUESTION, flow, run_id="one-at-a-time", store_url=store)
        order = [
            r["messages"][1]["content"].split(":")[0]
            for r in srv.requests
            if r["messages"][1]["content"].startswith("Sub-task for")
        ]
    assert outcome.status == "completed", outcome.reason
    # One sub-agent at a time: each one's requests form a single unbroken block.
    blocks = [name for i, name in enumerate(order) if i == 0 or order[i - 1] != name]
    assert sorted(blocks) == ["Sub-task for browsing", "Sub-task for coding"]


@pytest.mark.parametrize("role", [*ROLE_TOOLS, None])
def test_a_sub_agent_tool_is_listed_with_args_and_returns_like_a_docstring(
    role: str | None,
) -> None:
    [spec] = tool_specs([sub_agent_tool("helper", role)])
    text = spec.description
    assert "\n\n    Args:\n        subtask: The sub-task, stated fully" in text
    assert "\n\n    Returns:\n        The agent's report, as text" in text
    assert text.endswith(".\n    ")  # the closing quotes' line, as a docstring lists
    assert role is not None or text.startswith("Hands a sub-task to the helper agent,")
    # A flow's own tool_description is shown as written.
    [own] = tool_specs([sub_agent_tool("helper", role, description="Ask the helper.")])
    assert own.description == "Ask the helper."
