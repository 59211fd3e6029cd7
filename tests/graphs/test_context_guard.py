"""The context guard closes an agent before its prompt could overflow."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool
from support.loop_kit import call, is_closing, make_loop, run_loop, scripted, servers

from mirograph.agents.sim.tokens import encode_request
from mirograph.agents.tools.base import on_server

ANSWER = "Done.</think>\n\n\\boxed{42}"
LIMIT = 3_000


@tool
def words(count: int) -> str:
    """Return `count` words."""
    return "word " * count


TOOLS = [on_server(words, "lab")]
server = pytest.fixture(servers)


async def test_guard_closes_before_any_request_overflows(server, tmp_path) -> None:
    srv = server(scripted([call("words", count=400)] * 50, ANSWER), max_context_tokens=LIMIT)
    loop = make_loop(srv, TOOLS, context_tokens=LIMIT, keep_tool_results=-1, max_turns=50)
    values = await run_loop(loop, tmp_path)
    assert values["stop_reason"] == "context_limit"
    assert values["answer"] == "42"
    assert sum(not is_closing(body) for body in srv.requests) >= 3
    # No request, the closing one included, was ever over the limit: no 400 happened.
    assert all(len(encode_request(body)) + body["max_tokens"] <= LIMIT for body in srv.requests)


async def test_estimate_alone_decides_without_a_tokenizer(server, tmp_path) -> None:
    srv = server(scripted([], ANSWER))
    model = {"protocol": "native", "max_tokens": 100}
    step = make_loop(srv, TOOLS, context_tokens=1_000, model=model).model_step
    short = [SystemMessage("s"), HumanMessage("q")]
    long = [*short, AIMessage("x " * 2_000)]
    assert await step.fits(short)
    assert not await step.fits(long)  # ~4,000 chars ÷ 3 > 900 tokens: closes early


async def test_overflow_drops_the_newest_call_and_result_then_closes(server, tmp_path) -> None:
    srv = server(scripted([call("words", count=5_000)] * 5, ANSWER), max_context_tokens=LIMIT)
    values = await run_loop(make_loop(srv, TOOLS), tmp_path)
    assert values["stop_reason"] == "context_overflow"
    assert values["answer"] == "42"
    assert len(srv.requests) == 3  # turn 1, the turn that overflowed, the closing request
    closing = srv.requests[-1]["messages"]
    assert is_closing(srv.requests[-1])
    assert [m["role"] for m in closing] == ["system", "user", "user"]  # no call, no result
