"""Token streaming: a caller that streams sees the reply as the server sends it.

``stream_mode="messages"`` and ``astream_events`` attach a streaming callback
handler; the agent loop then calls the model through LangChain, which streams
through ``_astream``. The message the graph stores must be the one the fast,
non-streamed path produces.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from langchain_core.tools import tool
from langchain_core.tracers._streaming import _V2StreamingCallbackHandler
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from support.loop_kit import make_loop, scripted, servers

from mirograph.agents.mirothinker.chat_model import MiroThinkerChatModel
from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.sim.scripting import SimReply
from mirograph.agents.sim.server import SimServer
from mirograph.agents.tools.base import on_server
from mirograph.graphs.config import recursion_limit

THINKING = "I should look this up before answering, and then compute the value carefully."
TURN = (
    f"{THINKING}\n</think>\n\nI will search for it and then run a quick computation.\n\n"
    + render_call("lab", "echo", {"text": "MiroThinker"})
)
#: A valid call and a malformed one: both kinds must survive streaming exactly.
TWO_KINDS = (
    TURN
    + "\n<use_mcp_tool>\n<server_name>lab</server_name>\n<tool_name>echo</tool_name>\n"
    + "<arguments>\nnot json at all\n</arguments>\n</use_mcp_tool>"
)
ANSWER = "All the facts are in; the answer follows from them.\n</think>\n\nIt is \\boxed{42}"
HISTORY = [SystemMessage("You are a researcher."), HumanMessage("Find it.")]

serve = pytest.fixture(servers)


@tool
def echo(text: str) -> str:
    """Echo the text."""
    return text


def as_compared(message: AIMessage) -> dict[str, Any]:
    """What must match between streamed and non-streamed replies (ids are fresh per call)."""
    return {
        "content": message.content,
        "tool_calls": [{**c, "id": None} for c in message.tool_calls],
        "invalid_tool_calls": [{**c, "id": None} for c in message.invalid_tool_calls],
        "usage": message.usage_metadata,
        "additional_kwargs": message.additional_kwargs,
        "finish_reason": message.response_metadata.get("finish_reason"),
        "stray_tags": message.response_metadata.get("stray_tags"),
        "servers": message.response_metadata.get("servers"),
    }


@pytest.fixture
def srv(serve: Callable[..., SimServer]) -> SimServer:
    reply = SimReply(content=TWO_KINDS, reasoning_content="Private " * 12)
    return serve(lambda body: reply, reasoning_parser="qwen3")


async def test_streamed_reply_assembles_to_the_non_streamed_one(srv: SimServer) -> None:
    model = MiroThinkerChatModel(base_url=srv.base_url, max_retries=0)
    plain = await model.areply(HISTORY)
    assert plain.tool_calls and plain.invalid_tool_calls  # both kinds are compared
    assert plain.invalid_tool_calls[0]["error"]
    streaming = MiroThinkerChatModel(base_url=srv.base_url, max_retries=0, streaming=True)
    chunks = [chunk async for chunk in streaming.astream(HISTORY)]
    texts = [c.content for c in chunks if c.content]
    assert len(texts) > 5 and "".join(texts) == plain.content
    reasoning = [c.additional_kwargs.get("reasoning_content") for c in chunks]
    assert "".join(r for r in reasoning if r) == plain.additional_kwargs["reasoning_content"]
    last = chunks[-1]
    assert last.chunk_position == "last" and last.usage_metadata == plain.usage_metadata
    assert [c["name"] for c in last.tool_call_chunks] == ["echo", "echo"]
    invoked = await streaming.ainvoke(HISTORY)  # streamed under the hood, then assembled
    assert type(invoked) is AIMessage
    assert as_compared(invoked) == as_compared(plain)
    assert "mirothinker_parsed_calls" not in invoked.response_metadata
    assert as_compared(streaming.invoke(HISTORY)) == as_compared(plain)  # blocking twin


class ContentBlockListener(AsyncCallbackHandler, _V2StreamingCallbackHandler):
    """What LangGraph attaches for content-block (protocol v2) message streaming."""

    def __init__(self) -> None:
        self.events = 0

    def on_stream_event(self, event: Any, **kwargs: Any) -> None:
        self.events += 1


async def test_content_block_streaming_stores_the_same_reply(srv: SimServer) -> None:
    model = MiroThinkerChatModel(base_url=srv.base_url, max_retries=0)
    plain = await model.areply(HISTORY)
    listener = ContentBlockListener()
    streamed = await model.ainvoke(HISTORY, {"callbacks": [listener]})
    assert listener.events > 10
    assert as_compared(streamed) == as_compared(plain)
    assert set(streamed.response_metadata) == set(plain.response_metadata)


def _graph_config(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}, "recursion_limit": recursion_limit(10)}


async def _compiled(srv: SimServer, saver: AsyncSqliteSaver) -> Any:
    loop = make_loop(srv, [on_server(echo, "lab")], model={"max_tokens": 512})
    return loop, loop.build().compile(checkpointer=saver)


def _replies(values: dict[str, Any]) -> list[AIMessage]:
    return [m for m in values["messages"] if isinstance(m, AIMessage)]


async def test_messages_mode_streams_partial_chunks_of_each_reply(
    serve: Callable[..., SimServer], tmp_path: Path
) -> None:
    srv, twin = serve(scripted([TURN], ANSWER)), serve(scripted([TURN], ANSWER))
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "cp.db")) as saver:
        loop, graph = await _compiled(srv, saver)
        fast_loop, fast_graph = await _compiled(twin, saver)  # the same run, nobody streaming
        streamed: dict[str, list[AIMessageChunk]] = {}
        try:
            async for message, _meta in graph.astream(
                {"question": "What is it?"}, _graph_config("s"), stream_mode="messages"
            ):
                if isinstance(message, AIMessageChunk):
                    streamed.setdefault(message.id or "", []).append(message)
            await fast_graph.ainvoke({"question": "What is it?"}, _graph_config("p"))
        finally:
            await loop.aclose()
            await fast_loop.aclose()
        stored = _replies((await graph.aget_state(_graph_config("s"))).values)
        fast = _replies((await graph.aget_state(_graph_config("p"))).values)
    assert [m.content for m in stored][:2] == [TURN, ANSWER]
    assert len(streamed) == len(stored)  # one stream per reply
    for reply, chunks in zip(stored, streamed.values(), strict=True):
        pieces = [c.content for c in chunks if c.content]
        assert len(pieces) > 3 and "".join(pieces) == reply.content
    assert [as_compared(m) for m in stored] == [as_compared(m) for m in fast]


async def test_astream_events_has_chat_model_stream_events(
    serve: Callable[..., SimServer], tmp_path: Path
) -> None:
    srv = serve(scripted([TURN], ANSWER))
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "cp.db")) as saver:
        loop, graph = await _compiled(srv, saver)
        kinds: dict[str, int] = {}
        text: list[str] = []
        ended: list[AIMessage] = []
        try:
            async for event in graph.astream_events(
                {"question": "What is it?"}, _graph_config("e"), version="v2"
            ):
                kinds[event["event"]] = kinds.get(event["event"], 0) + 1
                if event["event"] == "on_chat_model_stream":
                    text.append(event["data"]["chunk"].content)
                if event["event"] == "on_chat_model_end":
                    ended.append(event["data"]["output"])
        finally:
            await loop.aclose()
        stored = _replies((await graph.aget_state(_graph_config("e"))).values)
    assert kinds["on_chat_model_start"] == kinds["on_chat_model_end"] == len(stored)
    assert kinds["on_chat_model_stream"] > 10
    assert "".join(text) == "".join(m.content for m in stored)
    assert [as_compared(m) for m in ended] == [as_compared(m) for m in stored]
    assert ended[0].tool_calls[0]["args"] == {"text": "MiroThinker"}
