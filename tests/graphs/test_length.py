"""Replies cut by ``max_tokens`` are asked again with 10 % more budget, up to 10 times
(the reference agent's rule), over HTTP against sim-model."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
from langchain_core.tools import tool
from support.loop_kit import call, make_loop, run_loop, servers

from mirograph.agents.prompts import closing_request
from mirograph.agents.sim.scripting import SimReply
from mirograph.agents.sim.tokens import encode_request
from mirograph.agents.tools.base import on_server
from mirograph.graphs.config import AgentConfig

ANSWER = "Done.</think>\n\n\\boxed{42}"
CUT = SimReply("Partial thought that was cut \\boxed{partial}", finish_reason="length")


@tool
def pad(words: int, unit: str = "word") -> str:
    """Return `words` copies of `unit`."""
    return f"{unit} " * words


TOOLS = [on_server(pad, "lab")]
server = pytest.fixture(servers)


def is_closing(body: dict[str, Any]) -> bool:
    """The closing request, known by its exact text (run_loop's question)."""
    return body["messages"][-1]["content"] == closing_request("What is it?")


def working(srv: Any) -> list[dict[str, Any]]:
    return [body for body in srv.requests if not is_closing(body)]


async def test_a_cut_reply_is_asked_again_with_ten_percent_more_each_time(server, tmp_path) -> None:
    def policy(body: dict[str, Any]) -> Any:
        if is_closing(body) or body["max_tokens"] >= 90:
            return ANSWER
        return CUT

    srv = server(policy)
    values = await run_loop(make_loop(srv, TOOLS, model={"max_tokens": 64}), tmp_path)
    requests = working(srv)
    # Each try 10 % above the one before (64 -> 70 -> 77 -> 84 -> 92), rounded down.
    assert [body["max_tokens"] for body in requests] == [64, 70, 77, 84, 92]
    # The same request each time: the cut reply is not in the history sent again.
    assert all(body["messages"] == requests[0]["messages"] for body in requests)
    assert values["stats"]["length_retries"] == 4
    assert values["stats"]["turns"] == 1 and values["answer"] == "42"


async def test_ten_retries_by_default_then_the_cut_reply_is_accepted(server, tmp_path) -> None:
    assert AgentConfig(model="m").max_length_retries == 10
    srv = server(lambda body: ANSWER if is_closing(body) else CUT)
    values = await run_loop(make_loop(srv, TOOLS, model={"max_tokens": 64}), tmp_path)
    budgets = [body["max_tokens"] for body in working(srv)]
    assert budgets == [64, 70, 77, 84, 92, 101, 111, 122, 134, 147, 161]
    assert values["stats"]["length_retries"] == 10
    assert values["stats"]["turns"] == 1 and values["boxed"] == "partial"


async def test_a_larger_reply_budget_that_cannot_fit_keeps_the_cut_reply(server, tmp_path) -> None:
    """Near the limit, a cut reply is kept instead of overflowing and closing the run."""
    cut_reply = SimReply("Partial.</think>\n\n" + call("pad", words=1), finish_reason="length")

    def policy(body: dict[str, Any]) -> Any:
        turn = sum(1 for m in body["messages"] if m["role"] == "assistant")
        if is_closing(body) or turn >= 2:
            return ANSWER
        if turn == 0:
            return call("pad", words=2_700, unit="x")  # ~5,400 chars: under-estimated
        return cut_reply

    srv = server(policy, max_context_tokens=4_000)
    loop = make_loop(srv, TOOLS, model={"max_tokens": 500}, context_tokens=4_000, max_turns=5)
    values = await run_loop(loop, tmp_path)
    requests = working(srv)
    budgets = [body["max_tokens"] for body in requests]
    # Turn 1; then turn 2, cut, asked again 10 % larger each time, until the larger
    # budget did not fit (a 400: only the last request overflowed).
    assert budgets[:3] == [500, 500, 550]
    assert all(after == before * 11 // 10 for before, after in pairwise(budgets[1:]))
    fits = [len(encode_request(body)) + body["max_tokens"] <= 4_000 for body in requests]
    assert fits == [True] * (len(requests) - 1) + [False]
    # The cut reply was kept as turn 2 and its call ran; then the guard (not a 400)
    # closed the agent.
    assert values["stop_reason"] == "context_limit"
    assert values["stats"]["turns"] == 2
    assert values["stats"]["length_retries"] == len(budgets) - 2
    assert [m.text for m in values["messages"] if m.type == "ai"][1] == cut_reply.content
    assert len([m for m in values["messages"] if m.type == "tool"]) == 2
    assert values["answer"] == "42"


async def test_a_lower_retry_setting_bounds_the_retries(server, tmp_path) -> None:
    srv = server(lambda body: ANSWER if is_closing(body) else CUT)
    loop = make_loop(srv, TOOLS, model={"max_tokens": 64}, max_length_retries=1)
    values = await run_loop(loop, tmp_path)
    assert [body["max_tokens"] for body in working(srv)] == [64, 70]
    assert values["stats"]["length_retries"] == 1
    assert values["stats"]["turns"] == 1 and values["boxed"] == "partial"
