"""The chat models' HTTP clients: one TLS context per process, a client (and its
connections) per model, closed by that model only."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Iterator
from types import SimpleNamespace

import certifi
import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from support.http_server import HttpServer

from mirograph.agents.config import ModelConfig
from mirograph.agents.mirothinker import clients
from mirograph.agents.mirothinker.chat_model import MiroThinkerChatModel
from mirograph.agents.models import build_chat_model
from mirograph.agents.sim.server import SimServer
from mirograph.errors import MalformedResponseError

HISTORY = [SystemMessage("You are a researcher."), HumanMessage("Find it.")]
ANSWER = "Known.</think>\n\n\\boxed{42}"


@pytest.fixture
def srv() -> Iterator[SimServer]:
    with SimServer(lambda body: ANSWER) as server:
        yield server


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[ssl.SSLContext]:
    """Every TLS context made from now on (none cached yet)."""
    contexts: list[ssl.SSLContext] = []
    real = clients.http_package()

    def create_ssl_context() -> ssl.SSLContext:
        contexts.append(real.create_ssl_context())
        return contexts[-1]

    monkeypatch.setattr(clients, "_contexts", {})
    monkeypatch.setattr(
        clients, "http_package", lambda: SimpleNamespace(create_ssl_context=create_ssl_context)
    )
    return contexts


def model(srv: SimServer) -> MiroThinkerChatModel:
    chat = build_chat_model(ModelConfig(base_url=srv.base_url, max_retries=0))
    assert isinstance(chat, MiroThinkerChatModel)
    return chat


async def test_runs_at_once_share_one_tls_context_and_each_closes_its_own_client(
    srv: SimServer, made: list[ssl.SSLContext]
) -> None:
    first, second = model(srv), model(srv)
    replies = await asyncio.gather(first.areply(HISTORY), second.areply(HISTORY))
    assert [r.content for r in replies] == [ANSWER, ANSWER]
    assert len(made) == 1  # not one per model
    one, other = first._async_client, second._async_client
    assert one is not None and other is not None and one is not other
    await first.aclose()
    assert one.is_closed() and not other.is_closed()
    assert (await second.areply(HISTORY)).content == ANSWER  # untouched by the other's close
    assert (await first.areply(HISTORY)).content == ANSWER  # a closed model starts afresh
    assert len(made) == 1
    await first.aclose()
    await second.aclose()
    assert other.is_closed()


def test_a_model_used_on_two_event_loops_gets_a_client_on_each(
    srv: SimServer, made: list[ssl.SSLContext]
) -> None:
    chat = model(srv)
    seen = []

    async def once(close: bool) -> str:
        reply = await chat.areply(HISTORY)
        seen.append(chat._async_client)
        if close:
            await chat.aclose()
        return str(reply.content)

    assert asyncio.run(once(close=False)) == ANSWER
    assert asyncio.run(once(close=True)) == ANSWER  # the first loop is closed: a new client
    assert seen[0] is not seen[1] and seen[1] is not None and seen[1].is_closed()
    assert len(made) == 1  # the context is not bound to a loop


def test_the_context_follows_the_ca_settings_it_reads(
    made: list[ssl.SSLContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    default = clients.tls_context()
    assert clients.tls_context() is default
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())  # read when the context is made
    assert clients.tls_context() is not default
    monkeypatch.delenv("SSL_CERT_FILE")
    assert clients.tls_context() is default
    assert len(made) == 2


async def _mislabelled(request: Request) -> Response:
    """A reply whose JSON body is labelled text (the ``text`` route: not even JSON)."""
    if request.path_params["mode"] == "text":
        return Response("Internal error", media_type="text/plain")
    body = {
        "choices": [
            {"message": {"content": ANSWER, "reasoning": "Thought."}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    return Response(json.dumps(body), media_type="text/plain")


async def test_a_reply_read_as_plain_json_keeps_what_the_typed_reply_gave() -> None:
    routes = [Route("/{mode}/v1/chat/completions", _mislabelled, methods=["POST"])]
    with HttpServer(routes) as server:
        chat = MiroThinkerChatModel(base_url=server.url("/json/v1"), max_retries=0)
        reply = await chat.areply(HISTORY)
        assert (reply.content, reply.additional_kwargs) == (
            ANSWER,
            {"reasoning_content": "Thought."},
        )
        assert reply.response_metadata["finish_reason"] == "stop"
        assert reply.usage_metadata and reply.usage_metadata["total_tokens"] == 5
        assert [c["args"] for c in reply.tool_calls] == []
        broken = MiroThinkerChatModel(base_url=server.url("/text/v1"), max_retries=0)
        with pytest.raises(MalformedResponseError, match="the body has no choices list"):
            await broken.areply(HISTORY)
        await chat.aclose()
        await broken.aclose()
