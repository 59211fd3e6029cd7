"""The lean POST for non-streamed model calls sends and raises what the SDK does.

Each check runs the same request through the SDK's client and through
``wire.Poster`` against a real local server and compares what arrives and what
comes back; a small asyncio server in the test sends the bytes uvicorn never
does (chunks, gzip, a kept connection closed under the client).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
from langchain_core.messages import HumanMessage
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from support.http_server import HttpServer

from mirograph.agents.mirothinker import wire
from mirograph.agents.mirothinker.chat_model import MiroThinkerChatModel
from mirograph.agents.mirothinker.clients import async_client, tls_context
from mirograph.agents.model_failures import classify_model_error

BODY = {"model": "m", "messages": [{"role": "user", "content": 'é \u2028 "q"'}], "top_p": 0.95}
REPLY = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "\\boxed{1}"}}]}

seen: list[tuple[bytes, list[tuple[str, str]], Any]] = []


async def _answer(request: Request) -> Response:
    """Answers as the path's mode says, recording what arrived."""
    seen.append((await request.body(), list(request.headers.items()), request.client))
    mode = request.path_params["mode"]
    if mode == "ok":
        return Response(json.dumps(REPLY), media_type="application/json")
    if mode == "text":
        return Response(json.dumps(REPLY), media_type="text/plain; charset=latin-1")
    if mode == "broken":
        return Response(b'{"choices": [', media_type="application/json")
    if mode == "busy":
        error = {"error": {"message": "slow down", "type": "rate_limit"}}
        return Response(json.dumps(error), status_code=429, headers={"Retry-After": "7"})
    if mode == "overflow":
        error = {"error": {"message": "This model's maximum context length is 8 tokens"}}
        return Response(json.dumps(error), status_code=400, media_type="application/json")
    if mode == "moved":
        return Response(status_code=307, headers={"Location": "/ok/v1/chat/completions"})
    return Response(b"no such model", status_code=404)


@pytest.fixture(scope="module")
def server() -> Iterator[HttpServer]:
    route = Route("/{mode}/v1/chat/completions", _answer, methods=["POST"])
    with HttpServer([route]) as running:
        yield running


async def _both(base_url: str) -> tuple[list[Any], list[Any]]:
    """What the SDK and the poster each return or raise for ``BODY``, and what arrived."""
    client = async_client(base_url, "sk-test", 30.0, 0)
    poster = wire.Poster(client, "/chat/completions", tls_context())
    outcomes = []
    arrived = []
    for call in (
        lambda: client.post("/chat/completions", body=BODY, cast_to=object),
        lambda: poster.post_json(BODY),
    ):
        seen.clear()
        try:
            outcomes.append(await call())
        except Exception as exc:  # compared below
            outcomes.append(exc)
        arrived.append(list(seen))
    await poster.aclose()
    await client.close()
    return outcomes, arrived


def _same_exception(sdk: Any, ours: Any, base_url: str) -> None:
    assert isinstance(sdk, Exception) and type(ours) is type(sdk)
    assert str(ours) == str(sdk)
    if isinstance(sdk, openai.APIStatusError):
        assert isinstance(ours, openai.APIStatusError) and ours.body == sdk.body
    ours_mapped, sdk_mapped = (
        classify_model_error(ours, base_url),
        classify_model_error(sdk, base_url),
    )
    assert repr(ours_mapped) == repr(sdk_mapped)
    assert getattr(ours_mapped, "retry_after", None) == getattr(sdk_mapped, "retry_after", None)


async def test_the_request_is_the_sdks_byte_for_byte(server: HttpServer) -> None:
    (sdk, ours), (sdk_seen, our_seen) = await _both(server.url("/ok/v1"))
    assert ours == sdk == REPLY
    assert our_seen[0][0] == sdk_seen[0][0]  # the body
    assert sorted(our_seen[0][1]) == sorted(sdk_seen[0][1])  # every header
    assert ("authorization", "Bearer sk-test") in our_seen[0][1]


@pytest.mark.parametrize("mode", ["busy", "overflow", "nothing"])
async def test_a_status_error_is_the_sdks_own(server: HttpServer, mode: str) -> None:
    base_url = server.url(f"/{mode}/v1")
    (sdk, ours), _ = await _both(base_url)
    _same_exception(sdk, ours, base_url)


async def test_a_body_not_labelled_json_comes_back_as_its_text(server: HttpServer) -> None:
    (sdk, ours), _ = await _both(server.url("/text/v1"))
    assert isinstance(ours, str) and ours == sdk and json.loads(ours) == REPLY


async def test_a_body_labelled_json_that_is_not_raises_as_the_sdk_does(
    server: HttpServer,
) -> None:
    (sdk, ours), _ = await _both(server.url("/broken/v1"))
    assert isinstance(sdk, json.JSONDecodeError) and isinstance(ours, json.JSONDecodeError)
    assert str(ours) == str(sdk)


async def test_a_redirect_is_followed_as_the_sdk_follows_it(server: HttpServer) -> None:
    (sdk, ours), (_, our_seen) = await _both(server.url("/moved/v1"))
    assert ours == sdk == REPLY
    paths = [len(our_seen), our_seen[-1][0]]
    assert paths == [3, our_seen[0][0]]  # ours, then the SDK's to the same place and onwards


async def test_no_server_is_the_sdks_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"  # bound, not listening
        (sdk, ours), _ = await _both(base_url)
    _same_exception(sdk, ours, base_url)
    assert isinstance(ours, openai.APIConnectionError)


async def test_calls_share_a_kept_connection_and_close_it_on_aclose(server: HttpServer) -> None:
    client = async_client(server.url("/ok/v1"), "k", 30.0, 0)
    poster = wire.Poster(client, "/chat/completions", tls_context())
    seen.clear()
    for _ in range(3):
        assert await poster.post_json(BODY) == REPLY
    assert len({peer for _, _, peer in seen}) == 1  # one client port: one connection
    together = await asyncio.gather(*(poster.post_json(BODY) for _ in range(3)))
    assert together == [REPLY] * 3
    await poster.aclose()
    assert poster._idle == []
    await client.close()


# -- a server of the test's own, for what uvicorn never sends -------------------


class RawServer:
    """Answers each connection's first request as ``reply`` says; a second request on
    the same connection is met by closing it unanswered (a kept connection gone)."""

    def __init__(self, chunked: bool, gzipped: bool) -> None:
        self.chunked, self.gzipped = chunked, gzipped
        self.connections = 0
        self.closed = 0
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        answered = False
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                if answered:
                    break
                writer.write(self.response())
                answered = True
        except asyncio.IncompleteReadError:
            pass
        finally:
            self.closed += 1
            writer.close()

    def response(self) -> bytes:
        body = json.dumps(REPLY).encode()
        headers = [
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK",
            b"content-type: application/json",
        ]
        if self.gzipped:
            body = gzip.compress(body)
            headers.append(b"content-encoding: gzip")
        if self.chunked:
            headers.append(b"transfer-encoding: chunked")
            half = len(body) // 2
            parts = [body[:half], body[half:]]
            body = (
                b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\nx: y\r\n\r\n"
            )
        else:
            headers.append(b"content-length: %d" % len(body))
        return b"\r\n".join(headers) + b"\r\n\r\n" + body


@pytest.fixture
async def raw(request: pytest.FixtureRequest) -> AsyncIterator[RawServer]:
    chunked, gzipped = request.param
    server = RawServer(chunked, gzipped)
    server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    yield server
    server.server.close()


def _url(server: RawServer) -> str:
    assert server.server is not None
    return f"http://127.0.0.1:{server.server.sockets[0].getsockname()[1]}/v1"


@pytest.mark.parametrize("raw", [(True, True), (False, False)], indirect=True)
async def test_a_kept_connection_the_server_dropped_is_retried_on_a_new_one(
    raw: RawServer,
) -> None:
    client = async_client(_url(raw), "k", 30.0, 0)
    poster = wire.Poster(client, "/chat/completions", tls_context())
    for _ in range(3):  # each one after the first meets the dropped connection first
        assert await poster.post_json(BODY) == REPLY
    assert raw.connections == 3
    await poster.aclose()
    await client.close()


async def test_a_chat_model_takes_the_lean_path_unless_a_proxy_is_set(
    server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    lean = MiroThinkerChatModel(base_url=server.url("/ok/v1"), max_retries=0)
    retrying = MiroThinkerChatModel(base_url=server.url("/ok/v1"), max_retries=2)
    for chat in (lean, retrying):
        assert (await chat.areply([HumanMessage("q")])).content == "\\boxed{1}"
    assert lean._poster is not None and retrying._poster is None
    await lean.aclose()
    assert lean._poster is None
    await retrying.aclose()
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    assert not wire.usable(0)
