"""Tool results as the reference agent sends them, over HTTP against sim-model:
one user message per turn, results in call order joined by ``\\n``, an empty result
as an empty string, a long one cut with ``\\n... [Result truncated]``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.tools import tool
from support.loop_kit import call, make_loop, run_loop, servers

from mirograph.agents.config import ModelConfig
from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.models import build_chat_model
from mirograph.agents.prompts import closing_request, task_message
from mirograph.agents.retry import RetryPolicy
from mirograph.agents.sim.server import SimServer
from mirograph.agents.tools.base import on_server
from mirograph.graphs.agent_loop import AgentLoop
from mirograph.graphs.config import AgentConfig
from mirograph.graphs.sub_agents import SubAgent, sub_agent_tool

QUESTION = "What is it?"  # run_loop's question
ANSWER = "Done.</think>\n\n\\boxed{42}"
_first_done: dict[str, asyncio.Event] = {}


@tool
async def slow(text: str) -> str:
    """Answer once `fast` has answered."""
    await _first_done.setdefault("fast", asyncio.Event()).wait()
    return f"slow: {text}"


@tool
async def fast(text: str) -> str:
    """Answer at once."""
    _first_done.setdefault("fast", asyncio.Event()).set()
    return f"fast: {text}"


@tool
def echo(text: str) -> str:
    """Echo the text back, as it is."""
    return text


TOOLS = [on_server(t, "lab") for t in (slow, fast, echo)]
server = pytest.fixture(servers)


def calls(*parts: tuple[str, str]) -> str:
    """One reply making each call ``(tool, text)`` in order."""
    rendered = [render_call("lab", name, {"text": text}) for name, text in parts]
    return "Several at once.</think>\n\n" + "\n".join(rendered)


def one_turn(reply: str) -> Any:
    """A policy: ``reply`` first, then the answer to everything."""
    replies = iter([reply])
    return lambda body: next(replies, ANSWER)


def results_of_turn_1(srv: SimServer) -> dict[str, str]:
    """The message after turn 1's call: what the model saw of its results."""
    return srv.requests[1]["messages"][3]


@pytest.fixture(autouse=True)
def fresh_event() -> None:
    _first_done.clear()


async def test_results_keep_call_order_joined_by_newlines(server, tmp_path) -> None:
    # ``slow`` is called first but finishes last: it waits for ``fast``.
    srv = server(one_turn(calls(("slow", "a"), ("fast", "b"), ("echo", "c"))))
    await run_loop(make_loop(srv, TOOLS), tmp_path)
    assert results_of_turn_1(srv) == {"role": "user", "content": "slow: a\nfast: b\nc"}
    assert [m["role"] for m in srv.requests[1]["messages"]] == [
        "system",
        "user",
        "assistant",
        "user",
    ]


async def test_an_empty_result_is_sent_as_an_empty_string(server, tmp_path) -> None:
    srv = server(one_turn(calls(("echo", ""), ("echo", "after"), ("echo", "  "))))
    await run_loop(make_loop(srv, TOOLS), tmp_path)
    assert results_of_turn_1(srv)["content"] == "\nafter\n  "


async def test_a_long_result_ends_with_the_reference_marker(server, tmp_path) -> None:
    srv = server(one_turn(call("echo", text="x" * 150)))
    await run_loop(make_loop(srv, TOOLS, max_result_chars=100), tmp_path)
    assert results_of_turn_1(srv)["content"] == "x" * 100 + "\n... [Result truncated]"


async def test_sub_agent_reports_and_plain_results_keep_call_order(server, tmp_path) -> None:
    subtask = "Find the thing."
    sub_task = task_message(subtask, role="browsing")
    report = "r" * 150
    delegate = render_call("agent-browsing", "search_and_browse", {"subtask": subtask})
    plain = [render_call("lab", "echo", {"text": text}) for text in ("a", "b")]
    mixed = "Three at once.</think>\n\n" + "\n".join([plain[0], delegate, plain[1]])

    def policy(body: dict[str, Any]) -> str:
        messages = body["messages"]
        if messages[1]["content"] == sub_task:
            return f"Nothing to call.</think>\n\n{report}"
        if messages[-1]["content"] == closing_request(QUESTION):
            return ANSWER
        return mixed if len(messages) == 2 else ANSWER

    srv = server(policy)
    model = build_chat_model(ModelConfig(base_url=srv.base_url, max_tokens=64))
    common: dict[str, Any] = {"model": model, "base_url": srv.base_url}
    common["retry"] = RetryPolicy(max_retries=0)
    browsing = AgentLoop(
        name="browsing", config=AgentConfig(model="m"), is_sub_agent=True, **common
    )
    sub = SubAgent(
        "browsing", browsing.build().compile(name="browsing"), sub_agent_tool("browsing", None)
    )
    config = AgentConfig(model="m", max_result_chars=100)
    main = AgentLoop(name="main", config=config, tools=TOOLS, sub_agents=[sub], **common)
    values = await run_loop(main, tmp_path)
    main_requests = [b for b in srv.requests if b["messages"][1]["content"] != sub_task]
    assert main_requests[0]["messages"][-1]["content"] != sub_task
    turn_1 = main_requests[1]["messages"]
    assert turn_1[2] == {"role": "assistant", "content": mixed}
    # The report, held to the same budget as any result, between the two plain results.
    assert turn_1[3]["content"] == "a\n" + "r" * 100 + "\n... [Result truncated]\nb"
    assert values["answer"] == "42"
