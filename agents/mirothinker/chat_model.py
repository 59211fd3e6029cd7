"""A LangChain chat model that speaks the MiroThinker protocol to vLLM.

Tools are described in the system prompt and called with ``<use_mcp_tool>``
tags in the reply text; this adapter turns those into standard
``AIMessage.tool_calls`` so the rest of the engine is protocol-agnostic, and
turns ``ToolMessage``s back into the one ``user`` message per turn the weights
were trained on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx
import openai
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import InputTokenDetails, UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from mirograph.agents.adapter import CountsTokens, RepliesDirectly
from mirograph.agents.mirothinker import wire
from mirograph.agents.mirothinker.clients import async_client, tls_context
from mirograph.agents.mirothinker.parsing import parse_reply, render_call
from mirograph.agents.mirothinker.thinking import with_thinking
from mirograph.agents.mirothinker.wire import Poster
from mirograph.agents.model_failures import classify_model_error
from mirograph.errors import MalformedResponseError, ModelUnavailableError
from mirograph.state.retention import OMITTED

DEFAULT_SERVER = "tools"
#: Where a streamed reply's last chunk carries its calls exactly as parsed (see
#: ``_as_parsed``); removed before anyone downstream sees the message.
_PARSED_CALLS = "mirothinker_parsed_calls"
#: A UTF-16 surrogate: one left in decoded text was lone (JSON's ``"\ud800"``).
_SURROGATE = re.compile("[\ud800-\udfff]")

T = TypeVar("T")

__all__ = ["MalformedResponseError", "MessageConverter", "MiroThinkerChatModel"]


class MiroThinkerChatModel(BaseChatModel, CountsTokens, RepliesDirectly):
    """OpenAI-compatible ``/v1/chat/completions`` client in the MiroThinker shape.

    Beyond LangChain's interface it offers the engine (``agents.adapter``) exact
    token counts (``count_tokens``) and a reply without callbacks (``areply``).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    base_url: str = "http://localhost:8000/v1"
    model: str = "mirothinker"
    api_key: str = Field(default="EMPTY", repr=False, exclude=True)
    temperature: float = 1.0
    top_p: float = 0.95
    repetition_penalty: float = 1.05
    max_tokens: int = 16384
    timeout_s: float = 600.0
    max_retries: int = 5
    #: Ask the server for a stream even when nobody listens. Left unset, a caller
    #: that streams gets tokens anyway; set to False it never does (LangChain's opt-out).
    streaming: bool = False

    _async_client: openai.AsyncOpenAI | None = PrivateAttr(default=None)
    _sync_client: openai.OpenAI | None = PrivateAttr(default=None)
    _poster: Poster | None = PrivateAttr(default=None)
    _client_loop: asyncio.AbstractEventLoop | None = PrivateAttr(default=None)
    _converter: MessageConverter = PrivateAttr(default_factory=lambda: MessageConverter())
    _tokenize_missing: bool = PrivateAttr(default=False)

    @property
    def _llm_type(self) -> str:
        return "mirothinker"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "model": self.model}

    def bind_tools(
        self, tools: Sequence[BaseTool | dict[str, Any]], **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Remember which server each tool lives on; the prompt already lists them."""
        servers = {_tool_name(tool): _tool_server(tool) for tool in tools}
        return self.bind(tool_servers=servers, **kwargs)

    # -- requests -----------------------------------------------------------

    def request_body(
        self,
        messages: Sequence[BaseMessage],
        tool_servers: dict[str, str] | None = None,
        max_tokens: int | None = None,
    ) -> dict[str, Any]:
        """The ``/v1/chat/completions`` body for these messages (public for tests)."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self._converter.convert(messages, tool_servers or {}),
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": max_tokens or self.max_tokens,
        }
        if self.repetition_penalty != 1.0:
            # vLLM's sampling extension, outside OpenAI's schema (``extra_body`` on the wire).
            body["repetition_penalty"] = self.repetition_penalty
        if body["messages"] and body["messages"][-1]["role"] == "assistant":
            # A reply begun for the model (the failure summary opens its thinking):
            # vLLM's chat-template options continue it instead of starting a new turn.
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        return body

    async def areply(
        self,
        messages: Sequence[BaseMessage],
        tool_servers: dict[str, str] | None = None,
        *,
        max_tokens: int | None = None,
    ) -> AIMessage:
        """One reply, without LangChain's callback machinery (the engine's fast path)."""
        result = await self._agenerate(
            list(messages), tool_servers=tool_servers or {}, max_tokens=max_tokens
        )
        message = result.generations[0].message
        assert isinstance(message, AIMessage)
        message.id = message.id or f"lc_run--{uuid.uuid4()}"
        return message

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        body = self._body(messages, kwargs)
        if self.streaming:
            parts = _StreamParts()
            async for _ in self._adeltas(body, parts):
                pass
            return _result(parts.message())
        # The low-level post() sends the body as built: the SDK's per-field
        # request transform costs ~0.5 ms per message, and a 600-turn history
        # has 1,200 of them.
        # The reply is read as plain JSON (``cast_to=object``): building the SDK's
        # typed objects from it cost ~0.4 ms per call, for the few fields read here.
        # httpx's timeout is per read: a server trickling bytes would hold the
        # call forever, so the whole call gets ``timeout_s`` as its deadline.
        with self._server_faults("the body"):
            try:
                async with asyncio.timeout(self.timeout_s):
                    response = await self._post(body)
            except TimeoutError as exc:
                raise self._timed_out() from exc
            reply = _plain_reply(response)
        return _result(_message(*reply))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        """Text and reasoning as the server sends them, then the parsed calls and usage.

        LangChain takes this path when a caller streams (``stream_mode="messages"``,
        ``astream_events``) and reports each chunk to the callbacks itself.
        """
        parts = _StreamParts()
        async for content, reasoning in self._adeltas(self._body(messages, kwargs), parts):
            yield _delta_chunk(content, reasoning)
        yield _last_chunk(parts.message())

    async def _agenerate_with_cache(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # LangChain assembles a streamed reply by merging chunks, which re-parses
        # tool-call arguments: a malformed call would lose its error or even turn
        # valid. Put the calls back as parsed, so the graph stores what the
        # non-streamed path would have (see ``_last_chunk``).
        result = await super()._agenerate_with_cache(
            messages, stop=stop, run_manager=run_manager, **kwargs
        )
        return _as_parsed(result, text=self.output_version != "v1")

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        body = self._body(messages, kwargs)
        if self.streaming:
            parts = _StreamParts()
            for _ in self._deltas(body, parts):
                pass
            return _result(parts.message())
        with self._server_faults("the body"):
            response = self._client().post("/chat/completions", body=body, cast_to=object)
            reply = _plain_reply(response)
        return _result(_message(*reply))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        parts = _StreamParts()
        for content, reasoning in self._deltas(self._body(messages, kwargs), parts):
            yield _delta_chunk(content, reasoning)
        yield _last_chunk(parts.message())

    def _generate_with_cache(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        result = super()._generate_with_cache(
            messages, stop=stop, run_manager=run_manager, **kwargs
        )
        return _as_parsed(result, text=self.output_version != "v1")

    def _body(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> dict[str, Any]:
        return self.request_body(messages, kwargs.get("tool_servers"), kwargs.get("max_tokens"))

    async def _adeltas(
        self, body: dict[str, Any], parts: _StreamParts
    ) -> AsyncIterator[tuple[str, str]]:
        """(content, reasoning) pieces of a streamed reply, gathered into ``parts`` too.

        The whole stream shares one deadline, ``timeout_s`` from the request, checked
        around each read only: a consumer slow between pieces is not the server's fault.
        """
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        request = self._aclient().post(
            "/chat/completions",
            body=_streamed(body),
            cast_to=ChatCompletion,
            stream=True,
            stream_cls=openai.AsyncStream[ChatCompletionChunk],
        )
        stream = await self._by(deadline, request)
        try:
            with self._server_faults("a stream event"):
                chunks = aiter(stream)
                while (chunk := await self._by(deadline, anext(chunks, None))) is not None:
                    if piece := parts.add(chunk):
                        yield piece
                parts.check_complete()
        finally:
            await stream.close()

    async def _by(self, deadline: float, step: Awaitable[T]) -> T:
        """``step``'s result, or ``ModelUnavailableError`` once ``deadline`` has passed."""
        try:
            async with asyncio.timeout_at(deadline):
                return await step
        except TimeoutError as exc:
            raise self._timed_out() from exc

    def _timed_out(self) -> ModelUnavailableError:
        return ModelUnavailableError(self.base_url, "request timed out")

    def _deltas(self, body: dict[str, Any], parts: _StreamParts) -> Iterator[tuple[str, str]]:
        """The blocking twin of ``_adeltas``."""
        stream = self._client().post(
            "/chat/completions",
            body=_streamed(body),
            cast_to=ChatCompletion,
            stream=True,
            stream_cls=openai.Stream[ChatCompletionChunk],
        )
        try:
            with self._server_faults("a stream event"):
                for chunk in stream:
                    if piece := parts.add(chunk):
                        yield piece
                parts.check_complete()
        finally:
            stream.close()

    @contextmanager
    def _server_faults(self, source: str) -> Iterator[None]:
        """A response that breaks the protocol is the server's fault: retry, then pause."""
        try:
            yield
        except MalformedResponse as exc:
            raise MalformedResponseError(self.base_url, str(exc)) from exc
        except json.JSONDecodeError as exc:
            what = f"{source} is not JSON ({exc.msg} at char {exc.pos})"
            raise MalformedResponseError(self.base_url, what) from exc
        except openai.APIError as exc:
            # An ``{"error": ...}`` event in the stream (vLLM's engine failing):
            # retryable, like the 500 it would have been before the stream began.
            mapped = (
                classify_model_error(exc, self.base_url) if type(exc) is openai.APIError else None
            )
            if mapped is None:
                raise
            raise mapped from exc

    async def aclose(self) -> None:
        """Close the HTTP connections while their event loop is still running."""
        if self._async_client is not None:
            client, self._async_client = self._async_client, None
            await client.close()
        if self._poster is not None:
            poster, self._poster = self._poster, None
            await poster.aclose()

    async def count_tokens(self, messages: Sequence[BaseMessage]) -> int | None:
        """Exact prompt tokens from vLLM's ``/tokenize``; None where the server has none."""
        if self._tokenize_missing:
            return None
        root = self.base_url.rstrip("/").removesuffix("/v1")
        body = {"model": self.model, "messages": self._converter.convert(messages, {})}
        try:  # only near the context limit: a short-lived client is fine
            async with httpx.AsyncClient(timeout=min(self.timeout_s, 30.0)) as client:
                response = await client.post(f"{root}/tokenize", json=body)
        except httpx.HTTPError:
            return None
        if response.status_code in (404, 405):
            self._tokenize_missing = True
            return None
        if response.status_code != 200:
            return None
        count = response.json().get("count")
        return int(count) if isinstance(count, int) else None

    def _aclient(self) -> openai.AsyncOpenAI:
        loop = asyncio.get_running_loop()
        if self._async_client is not None and self._client_loop is not loop:
            self._async_client = self._poster = None  # connections of a closed loop: start afresh
        if self._async_client is None:
            self._client_loop = loop
            # On the process's TLS context (``clients``): a new one cost ~22 ms per run.
            self._async_client = async_client(
                self.base_url, self.api_key, self.timeout_s, self.max_retries
            )
            self._poster = (
                Poster(self._async_client, "/chat/completions", tls_context())
                if wire.usable(self.max_retries)
                else None
            )
        return self._async_client

    async def _post(self, body: dict[str, Any]) -> Any:
        """The non-streamed reply's JSON: through ``wire.Poster`` where it sends what
        the SDK would (about a quarter of the SDK's CPU per call), else the SDK."""
        client = self._aclient()
        if self._poster is None:
            return await client.post("/chat/completions", body=body, cast_to=object)
        return await self._poster.post_json(body)

    def _client(self) -> openai.OpenAI:
        if self._sync_client is None:
            self._sync_client = openai.OpenAI(
                base_url=self.base_url,
                api_key=self.api_key,
                timeout=self.timeout_s,
                max_retries=self.max_retries,
            )
        return self._sync_client


# -- LangChain messages -> MiroThinker messages ------------------------------


def to_openai_messages(
    messages: Sequence[BaseMessage], tool_servers: dict[str, str]
) -> list[dict[str, str]]:
    """System, user and assistant messages in the trained shape.

    Consecutive tool results become ONE user message, joined by newlines; a
    group whose results were all omitted by retention shows the placeholder
    once. Assistant turns go back as generated, thinking included.
    """
    return MessageConverter().convert(messages, tool_servers)


class MessageConverter:
    """Converts histories that grow by appending, reusing the previous conversion.

    A 600-turn history is sent again every turn. Keep-K changes it only near
    its end, where a result leaves the window and new messages arrive. So the
    converter reuses its previous output up to the first message that is not
    the identical object, and converts only from there.
    """

    def __init__(self) -> None:
        self._messages: list[BaseMessage] = []
        self._output: list[dict[str, str]] = []
        #: ``_starts[i]``: length of the output before message ``i`` was seen.
        self._starts: list[int] = []
        self._servers: dict[str, str] | None = None

    def convert(
        self, messages: Sequence[BaseMessage], tool_servers: dict[str, str]
    ) -> list[dict[str, str]]:
        start = self._reusable(messages) if tool_servers == self._servers else 0
        reused = self._starts[start] if start < len(self._starts) else len(self._output)
        out = self._output[:reused] if start else []
        starts = self._starts[:start]
        pending: list[str] = []
        for message in messages[start:]:
            starts.append(len(out))
            if isinstance(message, ToolMessage):
                pending.append(_text(message))
                continue
            if pending:
                out.append(_merged_results(pending))
                pending = []
            out.append(_convert(message, tool_servers))
        self._messages, self._starts, self._servers = list(messages), starts, dict(tool_servers)
        self._output = list(out)
        if pending:
            out.append(_merged_results(pending))
        return out

    def _reusable(self, messages: Sequence[BaseMessage]) -> int:
        """How many leading messages can reuse the previous output (never mid-group)."""
        previous = self._messages
        same = 0
        limit = min(len(messages), len(previous))
        while same < limit and messages[same] is previous[same]:
            same += 1
        # Results are emitted when their group ends: restart at a group boundary.
        while same > 0 and isinstance(previous[same - 1], ToolMessage):
            same -= 1
        return same


def _merged_results(results: list[str]) -> dict[str, str]:
    merged = OMITTED if all(r == OMITTED for r in results) else "\n".join(results)
    return {"role": "user", "content": merged}


def _convert(message: BaseMessage, tool_servers: dict[str, str]) -> dict[str, str]:
    if isinstance(message, SystemMessage):
        return {"role": "system", "content": _text(message)}
    if isinstance(message, AIMessage):
        return {"role": "assistant", "content": _assistant_text(message, tool_servers)}
    if isinstance(message, HumanMessage):
        return {"role": "user", "content": _text(message)}
    raise TypeError(f"cannot send a {type(message).__name__} to a MiroThinker model")


def _assistant_text(message: AIMessage, tool_servers: dict[str, str]) -> str:
    text = with_thinking(_text(message), message.additional_kwargs.get("reasoning_content"))
    if message.tool_calls and "<use_mcp_tool>" not in text:
        # A turn produced elsewhere (a native model, a hand-made history): write
        # its calls in the protocol so the weights see the shape they know.
        calls = [
            render_call(tool_servers.get(c["name"], DEFAULT_SERVER), c["name"], c["args"])
            for c in message.tool_calls
        ]
        text = "\n\n".join([text.rstrip(), *calls]).lstrip()
    return text


def _text(message: BaseMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    return "".join(
        part if isinstance(part, str) else str(part.get("text", "")) for part in message.content
    )


def _tool_name(tool: BaseTool | dict[str, Any]) -> str:
    if isinstance(tool, BaseTool):
        return tool.name
    return str(tool.get("name") or tool.get("function", {}).get("name"))


def _tool_server(tool: BaseTool | dict[str, Any]) -> str:
    if isinstance(tool, BaseTool):
        return str((tool.metadata or {}).get("mcp_server", DEFAULT_SERVER))
    return str(tool.get("server", DEFAULT_SERVER))


# -- MiroThinker reply -> AIMessage ------------------------------------------


class MalformedResponse(ValueError):
    """A 200 response that breaks the chat-completions protocol; says what was wrong."""


def _streamed(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "stream": True, "stream_options": {"include_usage": True}}


class _StreamParts:
    """Accumulates a streamed reply and checks it was a whole one.

    A stream cut mid-way raises in the iterator; a stream that ends cleanly
    but early, or whose chunks lack the protocol's parts, is caught here.
    """

    def __init__(self) -> None:
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self.chunks = 0
        self.choices = 0
        self.saw_content = False
        self.saw_tool_calls = False
        self.finish_reason: str | None = None
        self.usage: UsageMetadata | None = None

    def add(self, chunk: Any) -> tuple[str, str] | None:
        """Take one chunk; return its (content, reasoning) text when it has any."""
        choices = getattr(chunk, "choices", None)
        if not isinstance(choices, list):
            raise MalformedResponse("a stream chunk has no choices list")
        self.chunks += 1
        if getattr(chunk, "usage", None) is not None:
            self.usage = _usage(chunk.usage)
        content, reasoning = "", ""
        for choice in choices:
            delta = getattr(choice, "delta", None)
            if delta is None:
                raise MalformedResponse("a stream choice has no delta")
            self.choices += 1
            if (text := getattr(delta, "content", None)) is not None:
                self.saw_content = True
                content += _text_of(text, "a delta's content")
            reasoning += _reasoning_of(delta) or ""
            self.saw_tool_calls = self.saw_tool_calls or bool(getattr(delta, "tool_calls", None))
            if finish := getattr(choice, "finish_reason", None):
                self.finish_reason = finish
        if content:
            self._content.append(content)
        if reasoning:
            self._reasoning.append(reasoning)
        return (content, reasoning) if content or reasoning else None

    def check_complete(self) -> None:
        """Raise ``MalformedResponse`` unless the stream carried a whole reply."""
        if not self.chunks:
            raise MalformedResponse("the stream had no chunks")
        if not self.choices:
            raise MalformedResponse("no stream chunk had a choice")
        if self.finish_reason is None:
            raise MalformedResponse("the stream ended without a finish_reason or [DONE]")
        if not (self.saw_content or self._reasoning or self.saw_tool_calls):
            raise MalformedResponse("every delta's content was null and there were no tool calls")

    def message(self) -> AIMessage:
        reasoning = "".join(self._reasoning) or None
        return _message("".join(self._content), reasoning, self.finish_reason, self.usage)


def _plain_reply(response: Any) -> tuple[str, str | None, str | None, UsageMetadata | None]:
    """Content, reasoning, finish reason and usage of a non-streamed body (its JSON,
    or the SDK's object for it), or ``MalformedResponse`` saying what is missing."""
    if isinstance(response, str):
        # A body not labelled JSON comes back as text; the SDK's typed path read it as
        # JSON all the same where it parsed, so a mislabelling server still works.
        with contextlib.suppress(ValueError):
            response = json.loads(response)
    choices = _field(response, "choices")
    if not isinstance(choices, list):
        raise MalformedResponse("the body has no choices list")
    if not choices:
        raise MalformedResponse("choices is empty")
    choice = choices[0]
    message = _field(choice, "message")
    if message is None:
        raise MalformedResponse("the choice has no message")
    reasoning = _reasoning_of(message)
    content = _field(message, "content")
    if content is None and not reasoning and not _field(message, "tool_calls"):
        raise MalformedResponse("message content is null and there are no tool calls")
    text = "" if content is None else _text_of(content, "message content")
    finish = _field(choice, "finish_reason")
    return text, reasoning, finish, _usage(_field(response, "usage"))


def _text_of(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise MalformedResponse(f"{what} is a {type(value).__name__}, not text")
    return _clean(value)


def _clean(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD.

    JSON can escape one (``"\ud800"``) and Python decodes it, but it cannot be
    encoded as UTF-8: storing the reply or sending it back would fail.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


#: Where a server with a reasoning parser puts the thinking: ``reasoning`` (vLLM
#: since late 2025, the only one since early 2026), ``reasoning_content`` (older
#: vLLM, SGLang). Servers that sent both sent the same text: the first found is read.
_REASONING_FIELDS = ("reasoning", "reasoning_content")


def _reasoning_of(message_or_delta: Any) -> str | None:
    """The thinking a reasoning parser split out of the reply, in either field."""
    for field in _REASONING_FIELDS:  # declared by the SDK or not (then an extra)
        if isinstance(reasoning := _field(message_or_delta, field), str):
            return _clean(reasoning)
    return None


def _result(message: AIMessage) -> ChatResult:
    return ChatResult(generations=[ChatGeneration(message=message)])


def _message(
    content: str, reasoning: str | None, finish_reason: str | None, usage: UsageMetadata | None
) -> AIMessage:
    parsed = parse_reply(content)
    tool_calls = [
        {"name": c.tool, "args": c.arguments, "id": _call_id(), "type": "tool_call"}
        for c in parsed.calls
    ]
    invalid = [
        {
            "name": m.tool,
            "args": m.raw_arguments,
            "id": _call_id(),
            "error": m.error,
            "type": "invalid_tool_call",
        }
        for m in parsed.malformed
    ]
    return AIMessage(
        content=content,
        tool_calls=tool_calls,
        invalid_tool_calls=invalid,
        additional_kwargs={"reasoning_content": reasoning} if reasoning else {},
        usage_metadata=usage,
        response_metadata={
            "finish_reason": finish_reason,
            "stray_tags": parsed.stray_tags,
            "servers": {c.tool: c.server for c in parsed.calls},
        },
    )


# -- streamed chunks ----------------------------------------------------------


def _delta_chunk(content: str, reasoning: str) -> ChatGenerationChunk:
    kwargs = {"reasoning_content": reasoning} if reasoning else {}
    return ChatGenerationChunk(message=AIMessageChunk(content=content, additional_kwargs=kwargs))


def _last_chunk(message: AIMessage) -> ChatGenerationChunk:
    """No text: the calls parsed from the whole reply, its usage and finish reason.

    Chunk merging re-parses tool-call arguments and drops a malformed call's
    error, so the calls also ride along as parsed, for ``_as_parsed``.
    """
    calls = [(c["name"], json.dumps(c["args"]), c["id"]) for c in message.tool_calls]
    calls += [(c["name"], c["args"], c["id"]) for c in message.invalid_tool_calls]
    parsed = {"tool_calls": message.tool_calls, "invalid_tool_calls": message.invalid_tool_calls}
    chunk = AIMessageChunk(
        content="",
        tool_call_chunks=[
            tool_call_chunk(name=name, args=args, id=call_id, index=index)
            for index, (name, args, call_id) in enumerate(calls)
        ],
        usage_metadata=message.usage_metadata,
        response_metadata={**message.response_metadata, _PARSED_CALLS: parsed},
        chunk_position="last",
    )
    return ChatGenerationChunk(message=chunk)


def _as_parsed(result: ChatResult, *, text: bool) -> ChatResult:
    """A streamed reply as the non-streamed path has it: its calls exactly as parsed
    and, unless content blocks were asked for (``output_version="v1"``), its content
    as text even where LangChain's content-block (v2) streaming assembled blocks."""
    for generation in result.generations:
        message = generation.message
        parsed = message.response_metadata.pop(_PARSED_CALLS, None)
        if not isinstance(message, AIMessage) or parsed is None:
            continue
        message.tool_calls = parsed["tool_calls"]
        message.invalid_tool_calls = parsed["invalid_tool_calls"]
        if text and isinstance(message.content, list):
            message.content = _text(message)
            message.response_metadata.pop("output_version", None)
    return result


def _usage(usage: Any) -> UsageMetadata | None:
    """Token counts, or ``MalformedResponse`` when they are not counts.

    A negative or non-integer count is refused rather than clamped: budgets and
    the context estimate add these up, and a server that lies about them is
    broken in a way a retry may fix and a pause reports; zero would hide it.
    """
    if usage is None:
        return None
    if not isinstance(usage, BaseModel | Mapping):
        raise MalformedResponse(f"usage is a {type(usage).__name__}, not an object")
    details = _field(usage, "prompt_tokens_details")
    cached = _field(details, "cached_tokens") if isinstance(details, BaseModel | Mapping) else None
    return UsageMetadata(
        input_tokens=_count(_field(usage, "prompt_tokens"), "prompt_tokens"),
        output_tokens=_count(_field(usage, "completion_tokens"), "completion_tokens"),
        total_tokens=_count(_field(usage, "total_tokens"), "total_tokens"),
        input_token_details=InputTokenDetails(cache_read=_count(cached, "cached_tokens")),
    )


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def _count(value: Any, name: str) -> int:
    """A token count as servers send it: an integer, or one written as a whole float
    or as digits (as the SDK's typed reading took them, and the streamed path still
    does); anything else (negative, fractional, a boolean, text) is malformed."""
    if value is None:
        return 0
    whole = type(value) is float and value.is_integer()
    digits = type(value) is str and value.strip().isdigit()
    count = value if type(value) is int else int(value) if whole or digits else None
    if count is None or count < 0:
        raise MalformedResponse(f"usage {name} is {str(value)[:40]!r}, not a count of tokens")
    return count


def _call_id() -> str:
    return f"call_{uuid.uuid4().hex[:16]}"
