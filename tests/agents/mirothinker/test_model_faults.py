"""Replies that decode but cannot be kept, error events in a stream, and servers that trickle.

All over real HTTP: the sim server's ``Fault(malformed=...)`` modes, or a small
server in the test for bytes the sim server never sends.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from support.http_server import HttpServer
from support.loop_kit import Sleeps, make_loop, run_loop, scripted, servers

from mirograph.agents.mirothinker.chat_model import MiroThinkerChatModel
from mirograph.agents.retry import RetryPolicy
from mirograph.agents.sim.scripting import Fault
from mirograph.agents.sim.server import SimServer
from mirograph.errors import ModelUnavailableError

ANSWER = "Done.</think>\n\n\\boxed{42}"
#: A lone surrogate as JSON escapes it: Python decodes it, UTF-8 cannot encode it.
LONE = "\\ud800 \\\\boxed{\\ud800}"
ENGINE_ERROR = {"error": {"message": "engine exploded", "type": "InternalServerError"}}

serve = pytest.fixture(servers)


def _chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return b"data: " + json.dumps({"id": "c", "choices": [choice]}).encode() + b"\n\n"


def _sse(*events: bytes) -> Response:
    return Response(b"".join(events), media_type="text/event-stream")


async def _liar(request: Request) -> Response:
    """Answers as the mode in the path says, for plain and streamed requests."""
    mode, streamed = request.path_params["mode"], (await request.json()).get("stream")
    if mode == "surrogate" and not streamed:
        message = f'{{"role": "assistant", "content": "{LONE}", "reasoning_content": "\\udfff"}}'
        body = f'{{"choices": [{{"index": 0, "message": {message}, "finish_reason": "stop"}}]}}'
        return Response(body.encode(), media_type="application/json")
    if mode == "surrogate":
        raw = b'data: {"id": "c", "choices": [{"index": 0, "delta": {"content": "' + LONE.encode()
        return _sse(raw + b'"}, "finish_reason": "stop"}]}\n\n', b"data: [DONE]\n\n")
    if mode == "error_first":
        return _sse(b"data: " + json.dumps(ENGINE_ERROR).encode() + b"\n\n")
    return Response(status_code=404)


@pytest.fixture
def liar() -> AsyncIterator[HttpServer]:
    with HttpServer([Route("/{mode}/v1/chat/completions", _liar, methods=["POST"])]) as server:
        yield server


def model(base_url: str, streaming: bool, **extra: float) -> MiroThinkerChatModel:
    return MiroThinkerChatModel(base_url=base_url, max_retries=0, streaming=streaming, **extra)


# -- lone surrogates ----------------------------------------------------------


@pytest.mark.parametrize("streaming", [False, True])
async def test_a_lone_surrogate_is_replaced_so_the_reply_can_be_kept(
    liar: HttpServer, streaming: bool
) -> None:
    chat = model(liar.url("/surrogate/v1"), streaming)
    for reply in (await chat.areply([HumanMessage("q")]), await chat.ainvoke([HumanMessage("q")])):
        assert reply.content == "\ufffd \\boxed{\ufffd}"
        reasoning = reply.additional_kwargs.get("reasoning_content")
        assert reasoning in (None, "\ufffd")
        json.dumps(reply.model_dump(), ensure_ascii=False).encode("utf-8")  # storable
        assert "\ufffd" in chat.request_body([reply])["messages"][0]["content"]  # sendable


def test_a_lone_surrogate_is_replaced_on_blocking_calls_too(liar: HttpServer) -> None:
    for streaming in (False, True):
        reply = model(liar.url("/surrogate/v1"), streaming).invoke([HumanMessage("q")])
        assert reply.content == "\ufffd \\boxed{\ufffd}"


# -- error events in a stream ---------------------------------------------------


def check_stream_error(error: ModelUnavailableError, base_url: str) -> None:
    assert error.retryable and error.base_url == base_url
    assert error.detail == "error in stream: engine exploded"
    assert "\n" not in str(error)


async def test_an_error_event_mid_stream_is_a_retryable_server_fault(
    serve: Callable[..., SimServer],
) -> None:
    srv = serve(lambda body: Fault(malformed="error_event", message="engine exploded"))
    chat = model(srv.base_url, True)
    for call in (chat.areply, chat.ainvoke):
        with pytest.raises(ModelUnavailableError) as raised:
            await call([HumanMessage("q")])
        check_stream_error(raised.value, srv.base_url)
    with pytest.raises(ModelUnavailableError) as raised:
        chat.invoke([HumanMessage("q")])
    check_stream_error(raised.value, srv.base_url)


async def test_an_error_event_first_in_the_stream_is_one_too(liar: HttpServer) -> None:
    base_url = liar.url("/error_first/v1")
    with pytest.raises(ModelUnavailableError) as raised:
        await model(base_url, True).areply([HumanMessage("q")])
    check_stream_error(raised.value, base_url)


async def test_an_error_event_is_retried_then_the_reply_comes(
    serve: Callable[..., SimServer], tmp_path: Path
) -> None:
    srv = serve(scripted([Fault(malformed="error_event")] * 2, ANSWER))
    sleeps = Sleeps()
    loop = make_loop(
        srv, [], model={"streaming": True}, retry=RetryPolicy(max_retries=2, sleep=sleeps)
    )
    values = await run_loop(loop, tmp_path)
    assert values["answer"] == "42"
    assert values["stats"]["retries"] == 2 and len(sleeps.delays) == 2


# -- a server that trickles bytes ----------------------------------------------

TIMEOUT_S = 0.5


async def _trickle(request: Request) -> Response:
    """A byte every tenth of a second, forever: each read is quick, the whole never ends."""
    streamed = (await request.json()).get("stream")

    async def body() -> AsyncIterator[bytes]:
        yield _chunk({"content": "x"}) if streamed else b"{"
        while True:
            await asyncio.sleep(0.1)  # the server's pace, not a synchronisation
            yield _chunk({"content": "x"}) if streamed else b" "

    media = "text/event-stream" if streamed else "application/json"
    return StreamingResponse(body(), media_type=media)


@pytest.fixture
def trickler() -> AsyncIterator[HttpServer]:
    with HttpServer([Route("/v1/chat/completions", _trickle, methods=["POST"])]) as server:
        yield server


async def _drain(chat: MiroThinkerChatModel) -> None:
    async for _ in chat.astream([HumanMessage("q")]):
        pass


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("path", ["areply", "ainvoke", "astream"])
async def test_timeout_s_is_a_deadline_for_the_whole_call(
    trickler: HttpServer, streaming: bool, path: str
) -> None:
    chat = model(trickler.url("/v1"), streaming, timeout_s=TIMEOUT_S)
    calls = {
        "areply": lambda: chat.areply([HumanMessage("q")]),
        "ainvoke": lambda: chat.ainvoke([HumanMessage("q")]),
        "astream": lambda: _drain(chat),
    }
    started = time.monotonic()
    with pytest.raises(ModelUnavailableError) as raised:
        # The outer limit only keeps a regression from hanging the suite.
        await asyncio.wait_for(calls[path](), TIMEOUT_S + 10)
    assert time.monotonic() - started < TIMEOUT_S + 2
    assert raised.value.retryable and raised.value.detail == "request timed out"
    await chat.aclose()
