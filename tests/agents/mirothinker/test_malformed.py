"""A malformed model response is a server fault: retried, then the run pauses with why.

Every case goes over real HTTP to the sim server's ``Fault(malformed=...)``
modes, plain and streamed, on the engine's fast path (``areply``) and through
LangChain (``ainvoke``, ``invoke``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from support.loop_kit import Sleeps, call, make_loop, run_loop, scripted, servers

from mirograph.agents.mirothinker.chat_model import MalformedResponse, MiroThinkerChatModel, _count
from mirograph.agents.retry import RetryPolicy
from mirograph.agents.sim.scripting import Fault
from mirograph.agents.sim.server import SimServer
from mirograph.agents.tools.base import on_server
from mirograph.errors import ModelUnavailableError
from mirograph.flows.loader import validate_flow
from mirograph.flows.runner import resume_run, start_run

ANSWER = "Done.</think>\n\n\\boxed{42}"

#: What each mode's response is reported as, plain and streamed.
PLAIN = {
    "invalid_json": "the body is not JSON (Expecting value at char 53)",
    "no_choices": "choices is empty",
    "no_message": "the choice has no message",
    "null_content": "message content is null and there are no tool calls",
    "garbage_sse": "the body is not JSON (Expecting value at char 53)",
    "empty_stream": "the body is not JSON (Expecting value at char 0)",
    "no_done": "the body is not JSON",
    "bad_usage": "usage is a str, not an object",
    "negative_usage": "usage prompt_tokens is '-1000000000', not a count of tokens",
    "error_event": "the body has no choices list",
}
STREAMED = {
    "invalid_json": "a stream event is not JSON (Expecting value at char 53)",
    "no_choices": "no stream chunk had a choice",
    "no_message": "a stream choice has no delta",
    "null_content": "every delta's content was null and there were no tool calls",
    "garbage_sse": "a stream event is not JSON (Expecting value at char 0)",
    "empty_stream": "the stream had no chunks",
    "no_done": "the stream ended without a finish_reason or [DONE]",
    "bad_usage": "usage is a str, not an object",
    "negative_usage": "usage prompt_tokens is '-1000000000', not a count of tokens",
}
CASES = [(m, False, w) for m, w in PLAIN.items()] + [(m, True, w) for m, w in STREAMED.items()]

serve = pytest.fixture(servers)


@pytest.fixture
def srv(serve: Callable[..., SimServer]) -> SimServer:
    """Answers each request with the fault its last message names."""
    return serve(lambda body: Fault(malformed=body["messages"][-1]["content"], message="cut"))


def chat(srv: SimServer, streaming: bool) -> MiroThinkerChatModel:
    return MiroThinkerChatModel(base_url=srv.base_url, max_retries=0, streaming=streaming)


def check(error: ModelUnavailableError, srv: SimServer, what: str) -> None:
    assert error.retryable and error.retry_after is None
    assert error.detail.startswith(f"malformed response: {what}")
    assert str(error).startswith(f"model server at {srv.base_url} sent a malformed response: ")
    assert "\n" not in str(error)


@pytest.mark.parametrize(("mode", "streaming", "what"), CASES)
async def test_fast_path_reports_what_was_malformed(
    srv: SimServer, mode: str, streaming: bool, what: str
) -> None:
    with pytest.raises(ModelUnavailableError) as raised:
        await chat(srv, streaming).areply([HumanMessage(mode)])
    check(raised.value, srv, what)


@pytest.mark.parametrize(("mode", "streaming", "what"), CASES)
async def test_langchain_path_reports_what_was_malformed(
    srv: SimServer, mode: str, streaming: bool, what: str
) -> None:
    with pytest.raises(ModelUnavailableError) as raised:
        await chat(srv, streaming).ainvoke([HumanMessage(mode)])  # streaming: via _astream
    check(raised.value, srv, what)


@pytest.mark.parametrize("streaming", [False, True])
def test_blocking_calls_report_it_too(srv: SimServer, streaming: bool) -> None:
    table = STREAMED if streaming else PLAIN
    for mode in ("no_choices", "invalid_json", "no_done", "bad_usage"):
        with pytest.raises(ModelUnavailableError) as raised:
            chat(srv, streaming).invoke([HumanMessage(mode)])
        check(raised.value, srv, table[mode])


@tool
def echo(text: str) -> str:
    """Echo the text."""
    return text


@pytest.mark.parametrize("streaming", [False, True])
async def test_malformed_replies_are_retried_until_a_good_one(
    serve: Callable[..., SimServer], tmp_path: Path, streaming: bool
) -> None:
    modes = ("invalid_json", "no_choices", "no_message", "no_done", "bad_usage")
    bad = [Fault(malformed=m) for m in modes]
    srv = serve(scripted([*bad, call("echo", text="x"), Fault(malformed="empty_stream")], ANSWER))
    sleeps = Sleeps()
    loop = make_loop(
        srv,
        [on_server(echo, "lab")],
        model={"streaming": streaming},
        retry=RetryPolicy(max_retries=5, sleep=sleeps),
    )
    values = await run_loop(loop, tmp_path)
    assert values["answer"] == "42"
    assert values["stats"]["retries"] == 6 and len(sleeps.delays) == 6
    assert values["stats"]["turns"] == 2


def flow(base_url: str) -> Any:
    model = {"base_url": base_url, "max_retries": 2, "retry_base_s": 0}  # sleeps of 0 s
    return validate_flow(
        {
            "name": "malformed",
            "models": {"m": model},
            "agents": {"main": {"model": "m", "max_turns": 3}},
            "entry": "main",
        }
    )


async def test_a_server_that_only_sends_malformed_replies_pauses_the_run(
    home: Path, tmp_path: Path
) -> None:
    healthy = {"on": False}

    def policy(body: dict[str, Any]) -> Any:
        return ANSWER if healthy["on"] else Fault(malformed="no_choices")

    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with SimServer(policy) as srv:
        outcome = await start_run("What is it?", flow(srv.base_url), run_id="m", store_url=store)
        assert outcome.status == "paused"
        assert outcome.reason is not None and "\n" not in outcome.reason
        assert "malformed response: choices is empty" in outcome.reason
        assert srv.base_url in outcome.reason
        assert len(srv.requests) == 3  # one call and two retries, then the pause
        healthy["on"] = True
        resumed = await resume_run("m", store_url=store)
    assert (resumed.status, resumed.answer) == ("completed", "42")


@pytest.mark.parametrize(("value", "count"), [(3, 3), (3.0, 3), ("3", 3), (None, 0)])
def test_token_counts_read_as_the_typed_client_read_them(value: object, count: int) -> None:
    # Integral floats and digit strings were read as counts by the SDK's typed reply
    # (and still are on the streamed path): the plain-JSON reading agrees.
    assert _count(value, "prompt_tokens") == count


@pytest.mark.parametrize("value", [-1, 2.5, True, "3 tokens", [3]])
def test_anything_else_is_not_a_count(value: object) -> None:
    with pytest.raises(MalformedResponse, match="not a count of tokens"):
        _count(value, "prompt_tokens")
