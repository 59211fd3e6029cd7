"""The MiroThinker adapter over real HTTP against an in-process sim-model server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from mirograph.agents.config import ModelConfig
from mirograph.agents.mirothinker.chat_model import MiroThinkerChatModel
from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.models import build_chat_model
from mirograph.agents.sim.scripting import SimReply
from mirograph.agents.sim.server import SimServer

TWO_CALLS = (
    "Let me look twice.</think>\n\nSearching.\n\n"
    + render_call("search_and_scrape_webpage", "google_search", {"q": "MiroThinker"})
    + "\n"
    + render_call("tool-python", "run_python_code", {"code_block": "print(1)", "sandbox_id": None})
)


@pytest.fixture
def sims() -> Iterator[Callable[..., SimServer]]:
    """Servers (with these vLLM flags) answering from ``replies``, keyed by the last message."""
    with ExitStack() as stack:

        def start(**flags: Any) -> SimServer:
            replies: dict[str, Any] = {}

            def policy(body: dict[str, Any]) -> Any:
                return replies.get(body["messages"][-1]["content"], "No idea.</think>\n\nNothing.")

            server = stack.enter_context(SimServer(policy, **flags))
            server.replies = replies  # type: ignore[attr-defined]
            return server

        yield start


@pytest.fixture
def srv(sims: Callable[..., SimServer]) -> SimServer:
    return sims()


def model(srv: SimServer, **kwargs: Any) -> MiroThinkerChatModel:
    config = ModelConfig(base_url=srv.base_url, max_retries=0, **kwargs)
    chat = build_chat_model(config)
    assert isinstance(chat, MiroThinkerChatModel)
    return chat


HISTORY = [SystemMessage("You are a researcher."), HumanMessage("Find it.")]


@pytest.mark.parametrize("streaming", [False, True])
async def test_reply_with_two_calls_becomes_tool_calls(srv: SimServer, streaming: bool) -> None:
    srv.replies["Find it."] = TWO_CALLS  # type: ignore[attr-defined]
    reply = await model(srv, streaming=streaming).ainvoke(HISTORY)
    assert isinstance(reply, AIMessage)
    assert reply.content == TWO_CALLS  # kept as generated: thinking and calls included
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
        ("google_search", {"q": "MiroThinker"}),
        ("run_python_code", {"code_block": "print(1)"}),  # null dropped
    ]
    assert len({c["id"] for c in reply.tool_calls}) == 2
    assert reply.response_metadata["finish_reason"] == "stop"
    assert reply.usage_metadata and reply.usage_metadata["input_tokens"] > 0
    assert reply.usage_metadata["output_tokens"] > 0


async def test_sampling_parameters_reach_the_server(srv: SimServer) -> None:
    await model(srv, temperature=0.6, top_p=0.9, repetition_penalty=1.05, max_tokens=777).ainvoke(
        HISTORY
    )
    body = srv.requests[-1]
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.6, 0.9, 777)
    assert body["repetition_penalty"] == 1.05  # sent through extra_body
    assert "tools" not in body  # tools live in the system prompt, not the API
    await model(srv, repetition_penalty=1.0).ainvoke(HISTORY)
    assert "repetition_penalty" not in srv.requests[-1]


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
async def test_the_thinking_a_reasoning_parser_splits_out_is_sent_back(
    sims: Callable[..., SimServer], field: str, streaming: bool
) -> None:
    """Recent vLLM returns the thinking in ``reasoning``, older servers in
    ``reasoning_content``: either way the next request holds it, in the trained shape."""
    srv = sims(reasoning_parser="qwen3", reasoning_field=field)
    srv.replies["Find it."] = "Private chain of thought.\n</think>\n\nVisible part."  # type: ignore[attr-defined]
    chat = model(srv, streaming=streaming)
    first = await chat.ainvoke(HISTORY)
    assert first.content == "\n\nVisible part."  # the parser took the thinking out
    assert first.additional_kwargs["reasoning_content"] == "Private chain of thought.\n"
    await chat.ainvoke([*HISTORY, first, HumanMessage("Next.")])
    sent = srv.requests[-1]["messages"][2]
    assert sent == {
        "role": "assistant",
        "content": "<think>\nPrivate chain of thought.\n</think>\n\nVisible part.",
    }


async def test_a_policys_separate_thinking_is_kept_and_sent_back(
    sims: Callable[..., SimServer],
) -> None:
    srv = sims(reasoning_parser="deepseek_r1")
    srv.replies["Find it."] = SimReply(  # type: ignore[attr-defined]
        content="Visible part.", reasoning_content="Private chain of thought."
    )
    chat = model(srv)
    first = await chat.ainvoke(HISTORY)
    assert first.additional_kwargs["reasoning_content"] == "Private chain of thought."
    await chat.ainvoke([*HISTORY, first, HumanMessage("Next.")])
    sent = srv.requests[-1]["messages"][2]
    assert sent == {
        "role": "assistant",
        "content": "<think>\nPrivate chain of thought.\n</think>\n\nVisible part.",
    }


async def test_tool_results_of_one_turn_go_back_as_one_user_message(srv: SimServer) -> None:
    srv.replies["Find it."] = TWO_CALLS  # type: ignore[attr-defined]
    chat = model(srv)
    turn = await chat.ainvoke(HISTORY)
    results = [
        ToolMessage("result one", tool_call_id=turn.tool_calls[0]["id"]),
        ToolMessage("result two", tool_call_id=turn.tool_calls[1]["id"]),
    ]
    await chat.ainvoke([*HISTORY, turn, *results])
    messages = srv.requests[-1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == TWO_CALLS
    assert messages[3]["content"] == "result one\nresult two"


async def test_malformed_call_is_invalid_not_executed(srv: SimServer) -> None:
    broken = "Oops.</think>\n\n" + (
        "<use_mcp_tool>\n<server_name>s</server_name>\n<tool_name>t</tool_name>\n"
        "<arguments>\nnot json at all\n</arguments>\n</use_mcp_tool>"
    )
    srv.replies["Find it."] = broken  # type: ignore[attr-defined]
    reply = await model(srv).ainvoke(HISTORY)
    assert reply.tool_calls == []
    assert [c["name"] for c in reply.invalid_tool_calls] == ["t"]


@pytest.mark.parametrize(("details", "cached"), [(True, 400), (False, 0)])
async def test_cached_tokens_are_reported_on_a_shared_prefix(
    sims: Callable[..., SimServer], details: bool, cached: int
) -> None:
    """vLLM reports them with ``--enable-prompt-tokens-details`` only; else they read 0."""
    chat = model(sims(enable_prompt_tokens_details=details))
    long_history = [SystemMessage("context " * 400), HumanMessage("Find it.")]
    first = await chat.ainvoke(long_history)
    second = await chat.ainvoke([*long_history, first, HumanMessage("And?")])
    assert first.usage_metadata["input_token_details"]["cache_read"] == 0
    read = second.usage_metadata["input_token_details"]["cache_read"]
    assert read >= cached if details else read == 0


async def test_assistant_turn_without_tags_is_rendered_in_the_protocol(srv: SimServer) -> None:
    """A turn made elsewhere (native model, hand-built) is sent in the trained shape."""
    chat = model(srv).bind_tools([])
    native = AIMessage(
        "Checking.", tool_calls=[{"name": "google_search", "args": {"q": "x"}, "id": "c1"}]
    )
    await chat.ainvoke([*HISTORY, native, ToolMessage("found", tool_call_id="c1")])
    sent = srv.requests[-1]["messages"][2]["content"]
    assert sent == "Checking.\n\n" + render_call("tools", "google_search", {"q": "x"})
