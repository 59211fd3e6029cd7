"""The agent loop over real HTTP against an in-process sim-model server.

Policies here are closures so a test can script a sequence of replies; what
the engine sent is read back from the server's request log.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import BaseTool, tool
from support.loop_kit import call, is_closing, make_loop, run_loop, scripted, servers

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.sim.server import SimServer
from mirograph.agents.tools.base import on_server
from mirograph.state.retention import OMITTED

Policy = Callable[[dict[str, Any]], str]


@tool
def echo(text: str) -> str:
    """Echo the text back."""
    return f"echo: {text}"


@tool
def boom(text: str) -> str:
    """Always fails."""
    raise RuntimeError("disk on fire\nsecond line of the traceback")


@tool
def huge(size: int) -> str:
    """Return `size` characters."""
    return "x" * size


@tool
def nothing() -> str:
    """Return nothing."""
    return ""


TOOLS: list[BaseTool] = [on_server(t, "lab") for t in (echo, boom, huge, nothing)]


server = pytest.fixture(servers)


async def run_agent(
    srv: SimServer, tmp_path: Path, *, max_turns: int = 10, keep: int = 5, **agent: Any
) -> dict[str, Any]:
    loop = make_loop(srv, TOOLS, max_turns=max_turns, keep_tool_results=keep, **agent)
    return await run_loop(loop, tmp_path, question="What is the answer?")


def user_results(body: dict[str, Any]) -> list[str]:
    """The user messages after the task: the tool results as the model saw them."""
    return [m["content"] for m in body["messages"] if m["role"] == "user"][1:]


async def test_failing_tool_becomes_one_line_error_and_run_goes_on(server, tmp_path) -> None:
    def policy(body: dict[str, Any]) -> str:
        if is_closing(body):
            return "Done.</think>\n\n\\boxed{survived}"
        if len(user_results(body)) == 0:
            return call("boom", text="x")
        return "The tool failed, so I answer.</think>\n\n\\boxed{survived}"

    srv = server(policy)
    values = await run_agent(srv, tmp_path, max_rollbacks=0)  # shown, not resampled
    error = user_results(srv.requests[1])[0]
    assert error == ("Tool call to boom on lab failed: RuntimeError: disk on fire")
    assert values["answer"] == "survived"
    assert values["stats"]["turns"] == 2


async def test_empty_and_huge_results_follow_the_protocol(server, tmp_path) -> None:
    replies = iter([call("nothing"), call("huge", size=150_000)])

    def policy(body: dict[str, Any]) -> str:
        return next(replies, "Enough.</think>\n\n\\boxed{ok}")

    srv = server(policy)
    await run_agent(srv, tmp_path)
    empty = user_results(srv.requests[1])[0]
    assert empty == ""  # sent as it came, as the reference agent does
    cut = user_results(srv.requests[2])[1]
    assert cut == "x" * 100_000 + "\n... [Result truncated]"


async def test_stray_tags_are_rolled_back_without_counting_a_turn(server, tmp_path) -> None:
    stray = "Hmm.</think>\n\n<use_mcp_tool>\n<server_name>lab</server_name>"
    replies = iter([stray, stray, call("echo", text="hi")])

    def policy(body: dict[str, Any]) -> str:
        return next(replies, "Got it.</think>\n\n\\boxed{hi}")

    srv = server(policy)
    values = await run_agent(srv, tmp_path)
    stats = values["stats"]
    assert (stats["rollbacks"], stats["turns"], stats["tool_calls"]) == (2, 2, 1)
    assert all(m.content[-30:] != "<server_name>lab</server_name>\n" for m in values["messages"])
    assert not any(m.type == "ai" and m.text == stray for m in values["messages"])
    # the resampled request is the same request: nothing of the discarded reply was sent
    assert srv.requests[0]["messages"] == srv.requests[1]["messages"] == srv.requests[2]["messages"]
    assert values["answer"] == "hi"


async def test_endless_rollbacks_stop_the_agent(server, tmp_path) -> None:
    def policy(body: dict[str, Any]) -> str:
        if is_closing(body):
            return "I could not call tools.</think>\n\nNo answer."
        return "<use_mcp_tool><server_name>lab"

    srv = server(policy)
    values = await run_agent(srv, tmp_path, max_rollbacks=3)
    assert values["stop_reason"] == "too_many_rollbacks"
    assert values["stats"]["rollbacks"] == 3
    assert values["stats"]["turns"] == 1  # the fourth reply is kept; having no call, it closes
    assert values["answer"] is None


async def test_turn_budget_closes_with_the_last_intermediate_box(server, tmp_path) -> None:
    counter = itertools.count(1)

    def policy(body: dict[str, Any]) -> str:
        if is_closing(body):
            return "Out of turns.</think>\n\nI ran out of turns before finishing."
        n = next(counter)
        box = f"Step {n}.</think>\n\nSo far \\boxed{{guess {n}}}.\n\n"
        return box + render_call("lab", "echo", {"text": str(n)})

    srv = server(policy)
    values = await run_agent(srv, tmp_path, max_turns=4)
    assert values["stop_reason"] == "max_turns"
    assert values["stats"]["turns"] == 4 and values["stats"]["tool_calls"] == 4
    assert values["answer"] == "guess 4"
    assert is_closing(srv.requests[-1]) and len(srv.requests) == 5


async def test_request_at_turn_12_keeps_five_results_in_full(server, tmp_path) -> None:
    def policy(body: dict[str, Any]) -> str:
        if is_closing(body):
            return "Done.</think>\n\n\\boxed{done}"
        n = sum(1 for m in body["messages"] if m["role"] == "assistant") + 1
        return call("echo", text=f"result {n}")

    srv = server(policy)
    await run_agent(srv, tmp_path, max_turns=12, keep=5)
    turn12 = srv.requests[11]
    results = user_results(turn12)
    assert len(results) == 11
    assert results[:6] == [OMITTED] * 6
    assert results[6:] == [f"echo: result {n}" for n in range(7, 12)]
    assistants = [m["content"] for m in turn12["messages"] if m["role"] == "assistant"]
    assert assistants == [call("echo", text=f"result {n}") for n in range(1, 12)]
    assert turn12["messages"][0]["role"] == "system"
    assert "## Server name: lab" in turn12["messages"][0]["content"]


def test_missing_or_repeated_call_ids_get_fresh_ones() -> None:
    from langchain_core.messages import AIMessage

    from mirograph.graphs.model_step import _with_unique_call_ids

    calls = [
        {"name": "a", "args": {}, "id": "x", "type": "tool_call"},
        {"name": "b", "args": {}, "id": "x", "type": "tool_call"},
        {"name": "c", "args": {}, "id": None, "type": "tool_call"},
    ]
    fixed = _with_unique_call_ids(AIMessage("", tool_calls=calls))
    ids = [c["id"] for c in fixed.tool_calls]
    assert ids[0] == "x" and len(set(ids)) == 3 and all(ids)
    assert [c["name"] for c in fixed.tool_calls] == ["a", "b", "c"]
    unique = AIMessage("", tool_calls=calls[:1])
    assert _with_unique_call_ids(unique) is unique


async def test_a_tool_that_echoes_a_secret_never_shows_it(
    server, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAVILY_API_KEY", "tvly-planted-secret-123")

    @tool
    def leaky(x: int) -> str:
        """Echo the environment, as a careless tool might."""
        if x == 2:
            raise RuntimeError(f"failed with key {os.environ['TAVILY_API_KEY']}")
        return f"env: TAVILY_API_KEY={os.environ['TAVILY_API_KEY']}"

    srv = server(scripted([call("leaky", x=1), call("leaky", x=2)], "Done.</think>\n\n\\boxed{ok}"))
    values = await run_loop(make_loop(srv, [leaky], max_rollbacks=0), tmp_path)
    results = [m.content for m in values["messages"] if m.type == "tool"]
    assert results[0] == "env: TAVILY_API_KEY=***"
    assert results[1].endswith("failed with key ***")
    assert all("tvly-planted" not in str(r["messages"]) for r in srv.requests)
