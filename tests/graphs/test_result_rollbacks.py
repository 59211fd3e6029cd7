"""Turns rolled back for their tool results: an error or a search that found nothing.

Over HTTP against sim-model, asserting the exact requests the server received:
after a rollback the model is sent what it would have been sent had the bad
turn never happened.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from support.loop_kit import call, make_loop, run_loop, scripted, servers

from mirograph.agents.config import ModelConfig
from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.models import build_chat_model
from mirograph.agents.prompts import closing_request, task_message
from mirograph.agents.retry import RetryPolicy
from mirograph.agents.tools.base import on_server
from mirograph.graphs.agent_loop import AgentLoop
from mirograph.graphs.config import AgentConfig
from mirograph.graphs.result_checks import result_rollback_reason
from mirograph.graphs.run_control import RunControl, controlling
from mirograph.graphs.sub_agents import SubAgent, sub_agent_tool

ANSWER = "Done.</think>\n\n\\boxed{42}"
REFUSAL = "Hmm.</think>\n\nI\u2019m sorry, but I can\u2019t help with that."


@tool
def lookup(q: str) -> str:
    """Look `q` up."""
    return f"found {q}"


@tool
def boom(q: str) -> str:
    """Always fails."""
    raise RuntimeError("disk on fire")


@tool
def mcp_error(q: str) -> str:
    """Answers as an MCP server does for a raised exception."""
    return f"Error executing tool mcp_error: no {q}"


@tool
def google_search(q: str) -> str:
    """Search the web (organic results as JSON)."""
    rows = [] if q == "nothing" else [{"position": 1, "title": q, "link": "https://a.example"}]
    return json.dumps({"searchParameters": {"q": q}, "organic": rows})


TOOLS = [on_server(t, "lab") for t in (lookup, boom, mcp_error, google_search)]
server = pytest.fixture(servers)


def working(srv: Any) -> list[dict[str, Any]]:
    """The bodies of the working requests (the closing request left out)."""
    close = closing_request("What is it?")
    return [body for body in srv.requests if body["messages"][-1]["content"] != close]


def contents(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"]]


@pytest.mark.parametrize(
    "bad",
    [
        call("boom", q="x"),
        call("mcp_error", q="x"),
        call("nosuch", q="x"),
        call("google_search", q="nothing"),
    ],
    ids=["raised", "mcp-error-text", "unknown-tool", "empty-search"],
)
async def test_a_turn_with_a_bad_result_is_resampled_with_the_identical_request(
    server, tmp_path: Path, bad: str
) -> None:
    srv = server(scripted([call("lookup", q="a"), bad, call("lookup", q="b")], ANSWER))
    values = await run_loop(make_loop(srv, TOOLS), tmp_path)
    stats = values["stats"]
    assert (stats["rollbacks"], stats["turns"], stats["tool_calls"]) == (1, 3, 3)  # all ran
    _, bad_turn, resample, last = working(srv)
    assert json.dumps(resample) == json.dumps(bad_turn)  # byte for byte
    assert contents(last)[2:] == [
        call("lookup", q="a"),
        "found a",
        call("lookup", q="b"),
        "found b",
    ]
    stored = [m.text for m in values["messages"]]
    assert bad not in stored and not any("disk on fire" in t or "no x" in t for t in stored)
    assert values["rollback_streak"] == 0 and values["answer"] == "42"


async def test_after_4_rollbacks_in_a_row_the_error_is_shown(server, tmp_path: Path) -> None:
    srv = server(scripted([call("boom", q="x")] * 5, ANSWER))
    values = await run_loop(make_loop(srv, TOOLS), tmp_path)
    stats = values["stats"]
    # Four rollbacks, then the fifth turn's error shown; all five calls ran.
    assert (stats["rollbacks"], stats["turns"], stats["tool_calls"]) == (4, 2, 5)
    first, *resamples, shown = working(srv)
    assert len(resamples) == 4 and all(body == first for body in resamples)
    assert contents(shown)[-2:] == [
        call("boom", q="x"),
        "Tool call to boom on lab failed: RuntimeError: disk on fire",
    ]


async def test_the_streak_is_shared_with_reply_rollbacks(server, tmp_path: Path) -> None:
    # Two refusals and two failing turns make four in a row: the fifth turn's
    # failure is shown; the accepted turn ends the streak.
    replies = [REFUSAL, call("boom", q="x"), REFUSAL, call("boom", q="x"), call("boom", q="y")]
    replies += [call("boom", q="z"), call("lookup", q="a")]
    srv = server(scripted(replies, ANSWER))
    values = await run_loop(make_loop(srv, TOOLS), tmp_path)
    assert values["stats"]["rollbacks"] == 5  # 4 in a row, then 1 after the kept turn
    texts = [m.text for m in values["messages"] if m.type == "tool"]
    assert texts == ["Tool call to boom on lab failed: RuntimeError: disk on fire", "found a"]
    assert contents(working(srv)[6])[2] == call("boom", q="y")  # the shown failure


async def test_a_budget_of_zero_shows_every_error(server, tmp_path: Path) -> None:
    srv = server(scripted([call("google_search", q="nothing")], ANSWER))
    values = await run_loop(make_loop(srv, TOOLS, max_rollbacks=0), tmp_path)
    assert values["stats"]["rollbacks"] == 0
    assert json.loads(contents(working(srv)[1])[-1])["organic"] == []


async def test_the_history_loaded_from_the_checkpoint_has_no_trace_of_the_bad_turn(
    server, tmp_path: Path
) -> None:
    srv = server(scripted([call("boom", q="x")], ANSWER))
    await run_loop(make_loop(srv, TOOLS, max_turns=10), tmp_path)
    # A new graph on the same checkpoint: the history is rebuilt from the stored
    # per-step writes, the RemoveMessage among them (serialised and replayed).
    again = server(scripted([], ANSWER))
    values = await run_loop(make_loop(again, TOOLS), tmp_path, resume=True)
    assert [m.type for m in values["messages"]] == ["system", "human", "ai", "human", "ai"]
    assert values["stats"]["rollbacks"] == 1 and values["stats"]["turns"] == 1


def test_sub_agent_reports_are_not_judged() -> None:
    from langchain_core.messages import ToolMessage

    report = ToolMessage("Unknown tool: x", tool_call_id="1", name="browse", status="error")
    assert result_rollback_reason([report], exempt={"browse"}) is None
    assert result_rollback_reason([report]) == "tool error: browse"
    search = ToolMessage('{"organic": [{"title": "t"}]}', tool_call_id="2", name="google_search")
    assert result_rollback_reason([search]) is None


async def test_a_failing_tool_beside_a_sub_agent_rolls_the_turn_back_but_not_a_report(
    server, tmp_path: Path
) -> None:
    subtask = "Find the thing."
    sub_task = task_message(subtask, role="browsing")
    delegate = render_call("agent-browsing", "search_and_browse", {"subtask": subtask})
    both = "Two at once.</think>\n\n" + "\n".join(
        [delegate, render_call("lab", "boom", {"q": "x"})]
    )
    alone = "Only the sub-agent.</think>\n\n" + delegate
    replies = iter([both, alone])

    def policy(body: dict[str, Any]) -> str:
        messages = body["messages"]
        if messages[1]["content"] == sub_task:  # the sub-agent: a failure report
            return "Nothing found.</think>\n\nUnknown tool: the sub-agent found nothing"
        if messages[-1]["content"] == closing_request("What is it?"):
            return ANSWER
        return next(replies, ANSWER)

    srv = server(policy)
    model = build_chat_model(ModelConfig(base_url=srv.base_url, max_tokens=64))
    common: dict[str, Any] = {"model": model, "base_url": srv.base_url}
    common["retry"] = RetryPolicy(max_retries=0)
    browsing = AgentLoop(
        name="browsing", config=AgentConfig(model="m"), is_sub_agent=True, **common
    )
    graph = browsing.build().compile(name="browsing")
    sub = SubAgent("browsing", graph, sub_agent_tool("browsing", None))
    main = AgentLoop(
        name="main", config=AgentConfig(model="m"), tools=TOOLS, sub_agents=[sub], **common
    )
    values = await run_loop(main, tmp_path)
    first, resample, after = [b for b in srv.requests if b["messages"][1]["content"] != sub_task][
        :3
    ]
    assert json.dumps(resample) == json.dumps(first)  # the failed turn never happened
    # The report alone is shown, although it reads like an MCP error.
    assert contents(after)[2:] == [alone, "Unknown tool: the sub-agent found nothing"]
    assert values["stats"]["rollbacks"] == 1 and values["stats"]["turns"] == 2
    assert [i["status"] for i in values["invocations"]] == ["completed", "completed"]


async def test_a_run_stopped_right_after_a_rollback_resumes_with_the_resample(
    server, tmp_path: Path
) -> None:
    srv = server(scripted([call("boom", q="x"), call("lookup", q="a")], ANSWER))
    loop = make_loop(srv, TOOLS)
    config: Any = {"configurable": {"thread_id": "t"}}
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "cp.db")) as saver:
        graph = loop.build().compile(checkpointer=saver, interrupt_after=["tools"])
        try:
            await graph.ainvoke({"question": "What is it?"}, config, durability="sync")
        finally:
            await loop.aclose()
        stopped = (await graph.aget_state(config)).values
    assert [m.type for m in stopped["messages"]] == ["system", "human"]
    assert stopped["rollback_streak"] == 1 and stopped["stats"]["turns"] == 0
    values = await run_loop(make_loop(srv, TOOLS), tmp_path, resume=True)
    first, resample, _ = working(srv)
    assert json.dumps(resample) == json.dumps(first)
    assert values["stats"]["rollbacks"] == 1 and values["rollback_streak"] == 0
    assert [m.text for m in values["messages"] if m.type == "tool"] == ["found a"]


async def test_a_rolled_back_turn_is_an_event_after_its_tool_call(server, tmp_path: Path) -> None:
    srv = server(scripted([call("google_search", q="nothing"), call("lookup", q="a")], ANSWER))
    seen: list[dict[str, Any]] = []
    control = RunControl(on_event=seen.append)
    control.begin("run-1")
    with controlling(control):
        await run_loop(make_loop(srv, TOOLS), tmp_path)
    kinds = [
        (e["event"], e.get("tool"), e.get("reason")) for e in seen if e["event"] != "model_call"
    ]
    assert kinds == [
        ("tool_call", "google_search", None),
        ("turn_rolled_back", None, "search without results"),
        ("tool_call", "lookup", None),
    ]
    rolled = next(e for e in seen if e["event"] == "turn_rolled_back")
    assert (rolled["agent"], rolled["ns"], rolled["turn"]) == ("main", "", 1)


async def test_turns_rolled_back_after_their_results_fit_the_step_budget(server, tmp_path) -> None:
    # Every kept turn follows 4 rolled-back ones (2 graph steps each, no turn counted):
    # the step budget (recursion_limit) allows for them; it did not, and the run died
    # with GraphRecursionError after some 5 rollbacks.
    bad = call("boom", q="x")
    turns = 3
    replies = iter(([bad] * 4 + [call("lookup", q="ok")]) * turns + [ANSWER])
    srv = server(lambda body: next(replies, ANSWER))
    values = await run_loop(make_loop(srv, TOOLS, max_turns=turns), tmp_path)
    assert values["stats"]["rollbacks"] == 4 * turns
    assert values["stats"]["turns"] == turns and values["stop_reason"] == "max_turns"
