"""A simulated OpenAI-compatible (vLLM-shaped) model server, driven by a policy.

Tests, benchmarks and the demo drive the engine over real HTTP against this
server, so that the model adapter, streaming, retries and context handling are
exercised exactly as against vLLM, while a policy scripts what the model says
and which faults it injects (errors, delays, cut streams, malformed 200s: the
``Fault`` fields are documented in ``agents/sim/scripting.py``). Where vLLM's
flags decide what a reply looks like, ``VllmOptions`` (``agents/sim/vllm.py``)
holds them, with vLLM's defaults.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from mirograph.agents.mirothinker.parsing import parse_reply
from mirograph.agents.sim.scripting import Fault, Policy, PolicyResult, SimReply, load_policy
from mirograph.agents.sim.tokens import PrefixCache, count_tokens, encode_request
from mirograph.agents.sim.vllm import (
    DEFAULT_MAX_MODEL_LEN,
    VllmOptions,
    context_error,
    continuation_error,
    split_reasoning,
    tool_choice_error,
    unknown_model_error,
    wants_tool_calls,
)
from mirograph.text import describe

__all__ = ["SimServer", "VllmOptions", "create_app", "serve_forever"]

logger = logging.getLogger(__name__)

_WORDS_PER_CHUNK = 3
_ERROR_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    409: "ConflictError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
}
_WORD_START_RE = re.compile(r"(?<=\s)(?=\S)")


class _BadRequest(Exception):
    """A request the server refuses with HTTP 400."""


@dataclass(frozen=True)
class _Reply:
    """One assistant reply, ready to be rendered plain or streamed."""

    content: str | None
    reasoning: str | None
    tool_calls: list[dict[str, Any]] | None
    finish_reason: str
    usage: dict[str, Any]
    #: The field the thinking goes in (``VllmOptions.reasoning_field``).
    reasoning_field: str = "reasoning"

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.reasoning is not None:
            message[self.reasoning_field] = self.reasoning
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        return message


def create_app(
    policy: Policy,
    *,
    options: VllmOptions | None = None,
    latency_ms: int = 0,
    on_request: Callable[[dict[str, Any]], None] | None = None,
) -> Starlette:
    """Build the ASGI app; ``on_request`` sees each chat request body (for test records)."""
    cache = PrefixCache()
    options = options or VllmOptions()
    model_name, max_model_len = options.model_name, options.max_model_len

    async def models(_: Request) -> Response:
        card = {
            "id": model_name,
            "object": "model",
            "created": int(time.time()),
            "owned_by": "mirograph",
            "root": model_name,
            "parent": None,
            "max_model_len": max_model_len,
        }
        return JSONResponse({"object": "list", "data": [card]})

    async def health(_: Request) -> Response:
        return Response(status_code=200)

    async def tokenize(request: Request) -> Response:
        try:
            body = await _read_body(request)
        except _BadRequest as exc:
            return _error(400, str(exc))
        if unknown := unknown_model_error(body, model_name):
            return _error(404, unknown, param="model")
        tokens = encode_request(body)
        return JSONResponse(
            {
                "count": len(tokens),
                "max_model_len": max_model_len,
                "tokens": tokens,
                "token_strs": None,
            }
        )

    async def chat(request: Request) -> Response:
        try:
            body = await _read_body(request)
            if not isinstance(body.get("messages"), list) or not body["messages"]:
                raise _BadRequest("'messages' must be a non-empty list")
        except _BadRequest as exc:
            return _error(400, str(exc))
        if on_request is not None:
            on_request(body)
        if unknown := unknown_model_error(body, model_name):
            return _error(404, unknown, param="model")
        if refused := tool_choice_error(body, options):
            return _error(400, refused)
        if refused := continuation_error(body):
            return _error(400, refused)
        prompt = encode_request(body)
        if overflow := context_error(body, len(prompt), max_model_len):
            param, message = overflow
            return _error(400, message, param=param)
        if latency_ms > 0:
            await asyncio.sleep(latency_ms / 1000)
        try:
            result = await _call_policy(policy, body)
        except Exception as exc:
            logger.warning("sim-model policy raised", exc_info=True)
            return _error(500, describe(exc))
        stream = bool(body.get("stream"))
        if isinstance(result, Fault):
            return await _fault_response(result, stream=stream, model=model_name)
        cached = cache.lookup_and_insert(prompt)
        reply = _build_reply(result, body, options, prompt_tokens=len(prompt), cached_tokens=cached)
        if stream:
            return _stream_response(reply, body, model=model_name)
        return JSONResponse(_completion(reply, model=model_name))

    return Starlette(
        routes=[
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/tokenize", tokenize, methods=["POST"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
        ]
    )


async def _read_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, or a 400-worthy complaint."""
    try:
        body = await request.json()
    except ValueError as exc:
        raise _BadRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise _BadRequest("request body must be a JSON object")
    return body


async def _call_policy(policy: Policy, body: dict[str, Any]) -> PolicyResult:
    """Await async policies; run sync ones in a thread so they cannot stall the loop."""
    if inspect.iscoroutinefunction(policy) or inspect.iscoroutinefunction(
        getattr(policy, "__call__", None)  # noqa: B004 - async callable objects
    ):
        result: Any = await policy(body)  # type: ignore[misc]
    else:
        result = await run_in_threadpool(policy, body)
        if inspect.isawaitable(result):
            result = await result
    if not isinstance(result, str | SimReply | Fault):
        raise TypeError(f"policy returned {type(result).__name__}; expected str, SimReply or Fault")
    return result


def _build_reply(
    result: str | SimReply,
    body: dict[str, Any],
    options: VllmOptions,
    *,
    prompt_tokens: int,
    cached_tokens: int,
) -> _Reply:
    """Turn a policy's text into a reply as vLLM with these ``options`` would send it."""
    reply = result if isinstance(result, SimReply) else SimReply(content=result)
    completion_tokens = count_tokens(reply.content) + count_tokens(reply.reasoning_content or "")
    details = {"cached_tokens": cached_tokens} if options.enable_prompt_tokens_details else None
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": details,
    }
    reasoning, content = _parsed(reply, options.reasoning_parser)
    native = wants_tool_calls(body, options)
    tool_calls = _native_tool_calls(content or "", body) if native else None
    finish = reply.finish_reason
    if tool_calls:
        content = parse_reply(content or "").content or None
        finish = "tool_calls" if finish == "stop" else finish
    return _Reply(content, reasoning, tool_calls, finish, usage, options.reasoning_field)


def _parsed(reply: SimReply, parser: str | None) -> tuple[str | None, str | None]:
    """(reasoning, content) as the server's reasoning parser, or its absence, returns them.

    A policy's separate ``reasoning_content`` is the thinking the model wrote:
    without a parser it comes back inside the text, before ``</think>``.
    """
    if parser is None:
        if reply.reasoning_content is None:
            return None, reply.content
        return None, f"{reply.reasoning_content}\n</think>\n\n{reply.content}"
    if reply.reasoning_content is not None:
        return reply.reasoning_content, reply.content or None
    reasoning, content = split_reasoning(reply.content, parser)
    return reasoning, content or None


def _native_tool_calls(text: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """OpenAI ``tool_calls`` for the ``<use_mcp_tool>`` blocks in the text.

    Ids are ``call_<n>`` numbered across the conversation (earlier calls in the
    history count), so they stay unique without server state.
    """
    declared = [
        tool["function"]["name"]
        for tool in body.get("tools") or []
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict)
    ]
    earlier = sum(
        len(message.get("tool_calls") or [])
        for message in body.get("messages") or []
        if isinstance(message, dict) and message.get("role") == "assistant"
    )
    return [
        {
            "id": f"call_{earlier + index + 1}",
            "type": "function",
            "function": {
                "name": _function_name(call.server, call.tool, declared),
                "arguments": json.dumps(call.arguments, ensure_ascii=False),
            },
        }
        for index, call in enumerate(parse_reply(text).calls)
    ]


def _function_name(server: str, tool: str, declared: list[str]) -> str:
    """The tool's name, or the one declared name that qualifies it with its server."""
    if tool in declared:
        return tool
    qualified = [name for name in declared if name.endswith(tool) and server in name]
    return qualified[0] if len(qualified) == 1 else tool


def _completion(reply: _Reply, *, model: str) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` object."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": reply.message(),
                "logprobs": None,
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": reply.usage,
    }


def _pieces(text: str) -> list[str]:
    """Split text into a few words per piece, losslessly, as a stream would."""
    words = _WORD_START_RE.split(text)
    return [
        "".join(words[i : i + _WORDS_PER_CHUNK]) for i in range(0, len(words), _WORDS_PER_CHUNK)
    ]


class _ChunkWriter:
    """Builds ``chat.completion.chunk`` SSE events sharing one id and timestamp."""

    def __init__(self, model: str, *, include_usage: bool) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage

    def event(
        self, delta: dict[str, Any] | None, finish_reason: str | None = None, usage: Any = None
    ) -> bytes:
        choices = (
            []
            if delta is None
            else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
        )
        return self.choices_event(choices, usage)

    def choices_event(self, choices: list[dict[str, Any]], usage: Any = None) -> bytes:
        """One event with these choices as given (malformed ones included)."""
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = usage
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def _stream_response(reply: _Reply, body: dict[str, Any], *, model: str) -> _RawResponse:
    """The SSE stream of a reply: role, reasoning, content, tool calls, finish, usage."""
    writer = _ChunkWriter(model, include_usage=_include_usage(body))
    events = [writer.event({"role": "assistant", "content": ""})]
    field = reply.reasoning_field
    events += [writer.event({field: p}) for p in _pieces(reply.reasoning or "")]
    events += [writer.event({"content": p}) for p in _pieces(reply.content or "")]
    for index, call in enumerate(reply.tool_calls or []):
        events.append(writer.event({"tool_calls": [{"index": index, **call}]}))
    events.append(writer.event({}, reply.finish_reason))
    if writer.include_usage:
        events.append(writer.event(None, usage=reply.usage))
    events.append(b"data: [DONE]\n\n")
    return _RawResponse(200, "text/event-stream", events, complete=True)


async def _fault_response(fault: Fault, *, stream: bool, model: str) -> Response | _RawResponse:
    """An error response, or a response that starts and then breaks off."""
    if fault.delay_ms > 0:
        await asyncio.sleep(fault.delay_ms / 1000)
    if fault.malformed is not None:
        render = _MALFORMED_STREAMS if stream else _MALFORMED_BODIES
        return render[fault.malformed](fault, model)
    if not fault.cuts_stream:
        headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
        return _error(fault.status, fault.message, headers=headers)
    count = fault.cut_stream_after_chars or 0
    source = fault.message or "x"
    text = (source * (count // len(source) + 1))[:count]
    if not stream:
        partial = json.dumps({"id": "chatcmpl-cut", "choices": [{"message": {"content": text}}]})
        return _RawResponse(200, "application/json", [partial[:count].encode()], complete=False)
    writer = _ChunkWriter(model, include_usage=False)
    events = [writer.event({"role": "assistant", "content": ""})]
    events += [writer.event({"content": p}) for p in _pieces(text)]
    return _RawResponse(200, "text/event-stream", events, complete=False)


# -- malformed responses: 200s that break the protocol (see agents/sim/policy.py) --

_NOT_JSON = b'{"id": "chatcmpl-malformed", "choices": [{"message": '


def _plain_not_json(fault: Fault, model: str) -> _RawResponse:
    return _RawResponse(200, "application/json", [_NOT_JSON], complete=True)


def _plain_empty(fault: Fault, model: str) -> _RawResponse:
    return _RawResponse(200, "application/json", [b""], complete=True)


def _plain_with_choices(choices: list[dict[str, Any]], model: str) -> JSONResponse:
    body = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": {"prompt_tokens": 1, "completion_tokens": 0, "total_tokens": 1},
    }
    return JSONResponse(body)


def _plain_no_choices(fault: Fault, model: str) -> JSONResponse:
    return _plain_with_choices([], model)


def _plain_no_message(fault: Fault, model: str) -> JSONResponse:
    return _plain_with_choices([{"index": 0, "logprobs": None, "finish_reason": "stop"}], model)


def _plain_null_content(fault: Fault, model: str) -> JSONResponse:
    message = {"role": "assistant", "content": None}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
    return _plain_with_choices([choice], model)


def _plain_cut_short(fault: Fault, model: str) -> _RawResponse:
    """A JSON body that stops half-way, on a cleanly ended response."""
    full = json.dumps(_completion(_Reply(fault.message, None, None, "stop", {}), model=model))
    return _RawResponse(200, "application/json", [full[: len(full) // 2].encode()], complete=True)


#: What the ``*_usage`` modes report as ``usage``: not an object, or counts below zero.
_BAD_USAGE: dict[str, Any] = {
    "bad_usage": "abc",
    "negative_usage": {"prompt_tokens": -(10**9), "completion_tokens": -5, "total_tokens": -1},
}


def _plain_bad_usage(fault: Fault, model: str) -> JSONResponse:
    body = _completion(_Reply(fault.message, None, None, "stop", {}), model=model)
    return JSONResponse({**body, "usage": _BAD_USAGE[fault.malformed or ""]})


def _plain_error_event(fault: Fault, model: str) -> JSONResponse:
    """The error object vLLM streams, sent as a 200 body: it has no choices."""
    return JSONResponse({"error": {"message": fault.message, "type": "InternalServerError"}})


_MALFORMED_BODIES: dict[str, Callable[[Fault, str], Response | _RawResponse]] = {
    "invalid_json": _plain_not_json,
    "garbage_sse": _plain_not_json,
    "no_choices": _plain_no_choices,
    "no_message": _plain_no_message,
    "null_content": _plain_null_content,
    "empty_stream": _plain_empty,
    "no_done": _plain_cut_short,
    "bad_usage": _plain_bad_usage,
    "negative_usage": _plain_bad_usage,
    "error_event": _plain_error_event,
}


def _sse(events: list[bytes], *, done: bool = True) -> _RawResponse:
    """A cleanly ended event stream; ``done`` adds the closing ``[DONE]``."""
    tail = [b"data: [DONE]\n\n"] if done else []
    return _RawResponse(200, "text/event-stream", [*events, *tail], complete=True)


def _stream_not_json(fault: Fault, model: str) -> _RawResponse:
    writer = _ChunkWriter(model, include_usage=False)
    return _sse(
        [writer.event({"role": "assistant", "content": ""}), b"data: " + _NOT_JSON + b"\n\n"]
    )


def _stream_garbage(fault: Fault, model: str) -> _RawResponse:
    writer = _ChunkWriter(model, include_usage=False)
    garbage = b"this line is not an event\ndata: <html>502 Bad Gateway</html>\n\n"
    return _sse([writer.event({"role": "assistant", "content": ""}), garbage])


def _stream_no_choices(fault: Fault, model: str) -> _RawResponse:
    return _sse([_ChunkWriter(model, include_usage=False).event(None)])


def _stream_no_delta(fault: Fault, model: str) -> _RawResponse:
    writer = _ChunkWriter(model, include_usage=False)
    return _sse([writer.choices_event([{"index": 0, "logprobs": None, "finish_reason": "stop"}])])


def _stream_null_content(fault: Fault, model: str) -> _RawResponse:
    writer = _ChunkWriter(model, include_usage=False)
    events = [writer.event({"role": "assistant", "content": None}), writer.event({}, "stop")]
    return _sse(events)


def _stream_no_done(fault: Fault, model: str) -> _RawResponse:
    writer = _ChunkWriter(model, include_usage=False)
    events = [writer.event({"role": "assistant", "content": ""})]
    events += [writer.event({"content": p}) for p in _pieces(fault.message)]
    return _sse(events, done=False)


def _stream_empty(fault: Fault, model: str) -> _RawResponse:
    return _sse([])


def _stream_bad_usage(fault: Fault, model: str) -> _RawResponse:
    writer = _ChunkWriter(model, include_usage=False)
    events = [writer.event({"content": fault.message}, "stop")]
    writer.include_usage = True
    return _sse([*events, writer.event(None, usage=_BAD_USAGE[fault.malformed or ""])])


def _stream_error_event(fault: Fault, model: str) -> _RawResponse:
    """Content, then the ``{"error": ...}`` event and the ``[DONE]`` vLLM sends when its
    engine fails mid-reply (a 200 stream cannot change its status any more)."""
    writer = _ChunkWriter(model, include_usage=False)
    error = {
        "error": {
            "message": fault.message,
            "type": "InternalServerError",
            "param": None,
            "code": 500,
        }
    }
    events = [writer.event({"role": "assistant", "content": "partial "})]
    return _sse([*events, f"data: {json.dumps(error)}\n\n".encode()])


_MALFORMED_STREAMS: dict[str, Callable[[Fault, str], Response | _RawResponse]] = {
    "invalid_json": _stream_not_json,
    "garbage_sse": _stream_garbage,
    "no_choices": _stream_no_choices,
    "no_message": _stream_no_delta,
    "null_content": _stream_null_content,
    "empty_stream": _stream_empty,
    "no_done": _stream_no_done,
    "bad_usage": _stream_bad_usage,
    "negative_usage": _stream_bad_usage,
    "error_event": _stream_error_event,
}


class _RawResponse:
    """An ASGI response sent piece by piece; ``complete=False`` drops the connection.

    Returning without the final body message makes uvicorn close the socket
    mid-body, which a client sees as an incomplete chunked read.
    """

    def __init__(self, status: int, media_type: str, pieces: list[bytes], *, complete: bool):
        self.status = status
        self.media_type = media_type
        self.pieces = pieces
        self.complete = complete

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", self.media_type.encode()), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        for piece in self.pieces:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        if self.complete:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def _error(
    status: int,
    message: str,
    *,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An OpenAI/vLLM-style error body."""
    kind = _ERROR_TYPES.get(status, "InternalServerError" if status >= 500 else "BadRequestError")
    payload = {"error": {"message": message, "type": kind, "param": param, "code": status}}
    return JSONResponse(payload, status_code=status, headers=headers)


class NotifyingServer(uvicorn.Server):
    """A uvicorn server that reports once it is listening, instead of being polled."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[int], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_started(self.servers[0].sockets[0].getsockname()[1])


def server_config(app: Starlette, host: str, port: int, *, log_config: Any) -> uvicorn.Config:
    """uvicorn settings for a quiet local test server (h11, no lifespan, quick shutdown)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=log_config,
        log_level="warning",
        access_log=False,
        lifespan="off",
        http="h11",
        ws="none",
        timeout_graceful_shutdown=1,  # a simulated model has no work worth waiting for
    )


class SimServer:
    """The simulated model on a background thread, for tests and in-process demos.

    ``requests`` records every chat request body received, in order. The
    keyword arguments after ``latency_ms`` are vLLM's flags, with its defaults
    (``VllmOptions``; ``max_context_tokens`` is ``--max-model-len``), as on
    the ``sim-model`` command line.
    """

    def __init__(
        self,
        policy: Policy | str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: int = 0,
        max_context_tokens: int = DEFAULT_MAX_MODEL_LEN,
        model_name: str = "mirothinker",
        enable_prompt_tokens_details: bool = False,
        reasoning_parser: str | None = None,
        reasoning_field: str = "reasoning",
        tool_call_parser: str | None = None,
    ) -> None:
        self.requests: list[dict[str, Any]] = []
        self.host = host
        self._port_arg = port
        self.options = VllmOptions(
            model_name=model_name,
            max_model_len=max_context_tokens,
            enable_prompt_tokens_details=enable_prompt_tokens_details,
            reasoning_parser=reasoning_parser,
            reasoning_field=reasoning_field,
            tool_call_parser=tool_call_parser,
        )
        self.app = create_app(
            load_policy(policy) if isinstance(policy, str) else policy,
            options=self.options,
            latency_ms=latency_ms,
            on_request=self.requests.append,
        )
        self._started = threading.Event()
        self._port: int | None = None
        self._server = NotifyingServer(
            server_config(self.app, host, port, log_config=None), self._on_started
        )
        self._thread: threading.Thread | None = None

    def _on_started(self, port: int) -> None:
        self._port = port
        self._started.set()

    def _run(self) -> None:
        try:
            self._server.run()
        except SystemExit:
            pass  # uvicorn logged why startup failed; start() raises
        except Exception:
            logger.exception("sim-model server thread failed")
        finally:
            self._started.set()

    def start(self, timeout: float = 30.0) -> SimServer:
        """Start serving and return once the socket is listening."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="sim-model", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout) or self._port is None:
            self.close()
            raise RuntimeError(f"sim-model did not start listening on {self.host}:{self._port_arg}")
        return self

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("SimServer is not started")
        return self._port

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def close(self) -> None:
        """Stop serving and wait for the thread to finish."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()


def serve_forever(
    policy_spec: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    latency_ms: int = 0,
    options: VllmOptions | None = None,
) -> None:
    """Serve until interrupted; print one ``sim-model listening on URL`` line once ready."""
    app = create_app(load_policy(policy_spec), options=options, latency_ms=latency_ms)

    def announce(real_port: int) -> None:
        print(f"sim-model listening on http://{host}:{real_port}/v1", flush=True)

    server = NotifyingServer(
        server_config(app, host, port, log_config=uvicorn.config.LOGGING_CONFIG), announce
    )
    try:
        server.run()
    except SystemExit:
        if not server.started:
            raise RuntimeError(f"sim-model could not listen on {host}:{port}") from None
        raise
