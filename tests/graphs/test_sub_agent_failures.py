"""A sub-agent's own task failing is a report to its parent; anything else stops the run.

Infrastructure failures inside a sub-agent (its model server answering
garbage, the store refusing a write, a bug of ours) pause or fail the run, and
``resume_run`` finishes the sub-agent from its last checkpoint: the requests
each agent sent, counted at the model server, show no completed turn asked
again. Only the sub-agent running out of steps, or ``TaskFailedError``, is
reported to the parent, whose investigation goes on.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import START, StateGraph
from support.team_policy import team
from support.testkit import write_team_flow
from typing_extensions import TypedDict

from mirograph.agents.config import ModelConfig
from mirograph.agents.models import build_chat_model
from mirograph.agents.sim.scripting import Fault
from mirograph.agents.sim.server import SimServer
from mirograph.agents.tools.base import ToolContext
from mirograph.errors import RunFailedError, TaskFailedError
from mirograph.flows.loader import load_flow
from mirograph.flows.runner import RunOutcome, resume_run, run_report, start_run
from mirograph.graphs.agent_loop import AgentLoop
from mirograph.graphs.builder import build_flow_graph
from mirograph.graphs.config import AgentConfig, FlowConfig
from mirograph.graphs.sub_agents import SubAgent, sub_agent_tool
from mirograph.graphs.tool_runner import ToolRunner
from mirograph.state.blobs import SqliteBlobStore

QUESTION = "How do alpha and beta compare?"
#: What the planner boxes once the browsing agent's report (3 turns) is in.
ANSWER = "REPORT[browsing:3]"
#: The turns a browsing agent of the team policy asks for: 3 with calls, a
#: reply without one, then the closing request.
ALL_TURNS = [0, 1, 2, 3, 4]


def browsing_flow(tmp_path: Path, base_url: str) -> FlowConfig:
    """A planner and one browsing sub-agent; no retries, so a server fault stops at once."""
    path = write_team_flow(tmp_path / "team.yaml", base_url, coding=None, max_retries=0)
    return load_flow(str(path), [])


def turn(body: dict[str, Any]) -> int:
    """Assistant replies already in a request: the turn it asks for, from 0."""
    return sum(m["role"] == "assistant" for m in body["messages"])


def agent_of(body: dict[str, Any]) -> str:
    task = body["messages"][1]["content"]
    return task.split(":")[0].removeprefix("Sub-task for ") if "Sub-task" in task else "planner"


def asked(requests: list[dict[str, Any]], agent: str) -> list[int]:
    """The turns ``agent`` asked the model for, in order."""
    return [turn(r) for r in requests if agent_of(r) == agent]


async def first_session(flow: FlowConfig, store: str, run_id: str) -> tuple[str, str]:
    """Start the run; its status and reason, whether it paused or failed."""
    try:
        outcome = await start_run(QUESTION, flow, run_id=run_id, store_url=store)
    except RunFailedError:
        pass
    else:
        assert outcome.status == "paused", outcome
    report = await run_report(run_id, store_url=store)
    return report["status"], report["reason"]


async def browsing_rows(run_id: str, store: str) -> list[tuple[str, int]]:
    report = await run_report(run_id, store_url=store)
    return [(r["status"], r["turns"]) for r in report["invocations"] if r["agent"] == "browsing"]


def assert_finished_once(outcome: RunOutcome, requests: list[dict[str, Any]]) -> None:
    """The resumed run answers, and no agent asked for a completed turn again."""
    assert (outcome.status, outcome.answer) == ("completed", ANSWER), outcome
    assert asked(requests, "planner") == [0, 1, 2]  # delegating, no-call reply, closing
    assert asked(requests, "browsing") == ALL_TURNS


@pytest.mark.parametrize("mode", ["invalid_json", "no_choices", "no_message"])
async def test_a_garbage_reply_to_a_sub_agent_pauses_the_run_and_resume_finishes_it(
    home: Path, tmp_path: Path, mode: str
) -> None:
    broken = {"on": True}

    def policy(body: dict[str, Any]) -> Any:
        if broken["on"] and agent_of(body) == "browsing" and turn(body) == 2:
            return Fault(malformed=mode)
        return team(body)

    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with SimServer(policy) as sim:
        flow = browsing_flow(tmp_path, sim.base_url)
        status, reason = await first_session(flow, store, "garbage")
        assert status == "paused" and "malformed response" in reason
        assert await browsing_rows("garbage", store) == [("running", 2)]

        broken["on"] = False
        resumed = await resume_run("garbage", store_url=store)
    assert (resumed.status, resumed.answer) == ("completed", ANSWER), resumed
    assert asked(sim.requests, "planner") == [0, 1, 2]
    assert asked(sim.requests, "browsing") == [0, 1, 2, 2, 3, 4]  # only the garbled turn again


async def test_a_store_failure_inside_a_sub_agent_fails_the_run_and_resume_finishes_it(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blob write refused (the store locked past its busy timeout) inside the sub-agent."""
    put = SqliteBlobStore.put
    locked = {"on": True}

    async def refusing(self: SqliteBlobStore, text: str) -> str:
        if locked["on"] and text.startswith("lookup result browsing#2"):
            raise sqlite3.OperationalError("database is locked")
        return await put(self, text)

    monkeypatch.setattr(SqliteBlobStore, "put", refusing)
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with SimServer(team) as sim:
        flow = browsing_flow(tmp_path, sim.base_url)
        status, reason = await first_session(flow, store, "locked")
        assert (status, reason) == ("failed", "OperationalError: database is locked")
        assert await browsing_rows("locked", store) == [("running", 2)]

        locked["on"] = False
        resumed = await resume_run("locked", store_url=store)
        assert_finished_once(resumed, sim.requests)


async def test_a_bug_of_ours_inside_a_sub_agent_fails_the_run_and_resume_finishes_it(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_tools = ToolRunner.run
    buggy = {"on": True}

    async def breaking(self: ToolRunner, reply: Any, report: Any = None) -> Any:
        if buggy["on"] and any(c["args"].get("step") == 2 for c in reply.tool_calls):
            raise RuntimeError("engine bug near sk-live-abcdefgh12345")
        return await run_tools(self, reply, report)

    monkeypatch.setattr(ToolRunner, "run", breaking)
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with SimServer(team) as sim:
        flow = browsing_flow(tmp_path, sim.base_url)
        status, reason = await first_session(flow, store, "bug")
        assert (status, reason) == ("failed", "RuntimeError: engine bug near ***")
        assert await browsing_rows("bug", store) == [("running", 2)]

        buggy["on"] = False
        resumed = await resume_run("bug", store_url=store)
        assert_finished_once(resumed, sim.requests)
    report = await run_report("bug", store_url=store)
    assert [(r["agent"], r["status"], r["turns"]) for r in report["invocations"]] == [
        ("browsing", "completed", 4)
    ]


async def test_a_sub_agent_out_of_steps_is_reported_and_the_parent_answers(
    home: Path, tmp_path: Path
) -> None:
    """Its recursion limit is the sub-agent's task failing: the planner goes on."""
    with SimServer(lambda body: team(body, browsing=2, coding=8)) as sim:
        path = write_team_flow(tmp_path / "team.yaml", sim.base_url)
        built = build_flow_graph(load_flow(str(path), []), ToolContext("steps", tmp_path / "ws"))
        async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "cp.db")) as saver:
            graph = built.graph.compile(checkpointer=saver)
            # Room for the planner (6 steps) and browsing (7), not for 8 coding turns.
            config: Any = {"configurable": {"thread_id": "t"}, "recursion_limit": 12}
            try:
                values = await graph.ainvoke({"question": QUESTION}, config, durability="sync")
            finally:
                await built.aclose()
        planner = [r for r in sim.requests if agent_of(r) == "planner"]
    assert values["answer"] == "REPORT[browsing:2]"
    results = planner[1]["messages"][-1]["content"]
    assert (
        "Tool call to write_and_run_code on agent-coding failed: the sub-agent stopped"
        " (GraphRecursionError: Recursion limit of 12 reached"
    ) in results
    rows = [(r["agent"], r["status"], r["stop_reason"]) for r in values["invocations"]]
    assert rows == [("browsing", "completed", "answered"), ("coding", "failed", "recursion_limit")]
    coding = values["invocations"][1]["stats"]
    assert coding["turns"] >= 5 and coding["prompt_tokens"] > 0  # the turns it did are counted


class TaskState(TypedDict, total=False):
    question: str
    answer: str


async def test_a_sub_agent_that_finds_its_task_impossible_is_reported(tmp_path: Path) -> None:
    async def give_up(state: TaskState) -> TaskState:
        raise TaskFailedError(f"no source answers {state['question']!r}")

    impossible = StateGraph(TaskState)
    impossible.add_node("work", give_up)
    impossible.add_edge(START, "work")
    sub = SubAgent("browsing", impossible.compile(), sub_agent_tool("browsing", None))
    with SimServer(team) as sim:
        planner = AgentLoop(
            name="planner",
            config=AgentConfig(model="m", max_turns=5),
            model=build_chat_model(ModelConfig(base_url=sim.base_url, max_tokens=64)),
            base_url=sim.base_url,
            sub_agents=[sub],
        )
        async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "cp.db")) as saver:
            graph = planner.build().compile(checkpointer=saver)
            config: Any = {"configurable": {"thread_id": "t"}, "recursion_limit": 30}
            try:
                values = await graph.ainvoke({"question": QUESTION}, config, durability="sync")
            finally:
                await planner.aclose()
        second = sim.requests[1]["messages"][-1]["content"]
    assert "the sub-agent stopped (TaskFailedError: no source answers" in second
    assert values["stats"]["turns"] == 2  # the planner went on after the report
    rows = [(r["agent"], r["status"], r["stop_reason"]) for r in values["invocations"]]
    assert rows == [("browsing", "failed", "task_failed")]
