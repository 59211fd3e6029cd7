"""Rollbacks, length retries and the duplicate-query set, over HTTP against sim-model."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.tools import tool
from support.loop_kit import call, is_closing, make_loop, run_loop, scripted, servers

from mirograph.agents.sim.scripting import Fault, SimReply
from mirograph.agents.tools.base import DEDUPE_KEY, on_server
from mirograph.errors import ModelUnavailableError

ANSWER = "Done.</think>\n\n\\boxed{42}"


@tool
def search(q: str) -> str:
    """Search the web for `q`."""
    return f"results for {q}"


search.metadata = {DEDUPE_KEY: ["q"]}
TOOLS = [on_server(search, "lab")]
server = pytest.fixture(servers)


async def test_refusal_and_degenerate_replies_are_resampled(server, tmp_path) -> None:
    refusal = "Hmm.</think>\n\nI'm sorry, but I can't help with that."
    loop_reply = "Thinking " + "and thinking " * 200
    srv = server(scripted([refusal, loop_reply, call("search", q="a")], ANSWER))
    values = await run_loop(make_loop(srv, TOOLS), tmp_path)
    stats = values["stats"]
    assert (stats["rollbacks"], stats["turns"], stats["tool_calls"]) == (2, 2, 1)
    assert values["answer"] == "42"
    assert not any(m.type == "ai" and m.text in (refusal, loop_reply) for m in values["messages"])


async def test_a_repeated_query_is_rolled_back_until_the_model_insists(server, tmp_path) -> None:
    replies = [call("search", q="MiroThinker"), *[call("search", q=" mirothinker ")] * 3]
    srv = server(scripted(replies, ANSWER))
    values = await run_loop(make_loop(srv, TOOLS, max_duplicate_rollbacks=2), tmp_path)
    stats = values["stats"]
    assert stats["rollbacks"] == 2  # two resamples, then the third repeat is let through
    assert stats["turns"] == 3 and stats["tool_calls"] == 2
    assert values["queries"] == ['search:{"q": "mirothinker"}']


async def test_duplicate_set_survives_a_resume_in_a_new_graph(server, tmp_path) -> None:
    srv = server(scripted([call("search", q="first"), Fault(500)], ANSWER))
    with pytest.raises(ModelUnavailableError):  # the server fails at turn 2: run interrupted
        await run_loop(make_loop(srv, TOOLS), tmp_path)

    # A new loop object, as after a restart, continues the same thread.
    srv2 = server(scripted([call("search", q="FIRST"), call("search", q="second")], ANSWER))
    values = await run_loop(make_loop(srv2, TOOLS), tmp_path, resume=True)
    assert values["queries"] == ['search:{"q": "first"}', 'search:{"q": "second"}']
    assert values["stats"]["rollbacks"] == 1  # the repeat of "first" was recognised
    assert values["stats"]["turns"] == 3 and values["answer"] == "42"


async def test_replies_cut_by_max_tokens_are_asked_again_with_twice_the_budget(
    server, tmp_path
) -> None:
    budgets: list[int] = []

    def policy(body: dict[str, Any]) -> Any:
        if is_closing(body):
            return ANSWER
        budgets.append(body["max_tokens"])
        if body["max_tokens"] < 200:
            return SimReply("Partial thought that was cut", finish_reason="length")
        return ANSWER

    srv = server(policy)
    values = await run_loop(make_loop(srv, TOOLS, model={"max_tokens": 64}), tmp_path)
    assert budgets == [64, 128, 256]
    assert values["stats"]["length_retries"] == 2
    assert values["answer"] == "42"


async def test_length_retries_are_bounded_then_the_reply_is_accepted(server, tmp_path) -> None:
    def policy(body: dict[str, Any]) -> Any:
        if is_closing(body):
            return ANSWER
        return SimReply("Cut \\boxed{partial}", finish_reason="length")

    srv = server(policy)
    loop = make_loop(srv, TOOLS, model={"max_tokens": 64}, max_length_retries=1)
    values = await run_loop(loop, tmp_path)
    assert values["stats"]["length_retries"] == 1
    assert values["stats"]["turns"] == 1 and values["boxed"] == "partial"


@tool
def pad(words: int, unit: str = "word") -> str:
    """Return `words` copies of `unit`."""
    return f"{unit} " * words


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
    tools = [on_server(pad, "lab")]
    loop = make_loop(srv, tools, model={"max_tokens": 500}, context_tokens=4_000, max_turns=5)
    values = await run_loop(loop, tmp_path)
    budgets = [body["max_tokens"] for body in srv.requests]
    assert budgets[:3] == [500, 500, 1_000]  # turn 1; turn 2 cut; the larger budget (a 400)
    # The cut reply was kept as turn 2 and its call ran; then the guard (not a 400)
    # closed the agent, keeping every result for the closing request.
    assert values["stop_reason"] == "context_limit"
    assert values["stats"]["turns"] == 2 and values["stats"]["length_retries"] == 1
    assert len([m for m in values["messages"] if m.type == "tool"]) == 2
    assert values["answer"] == "42"
