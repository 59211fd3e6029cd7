"""The simulated model server, exercised over real HTTP with the openai client and httpx."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from support.loop_kit import servers

from mirograph.agents.mirothinker.parsing import parse_reply, render_call
from mirograph.agents.sim import policies
from mirograph.agents.sim.scripting import Fault, SimReply, load_policy
from mirograph.agents.sim.server import SimServer
from mirograph.agents.sim.tokens import PrefixCache, count_message_tokens
from mirograph.errors import PolicySpecError

LONG_TEXT = "The quick brown fox jumps over the lazy dog, again and again. " * 8
MESSAGES: list[Any] = [
    {"role": "system", "content": "You are a careful research assistant."},
    {"role": "user", "content": "What is six times seven?"},
]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "echo",
            "description": "Echo the index.",
            "parameters": {"type": "object", "properties": {"index": {"type": "integer"}}},
        },
    }
]


#: The name the sim serves by default (vLLM answers 404 for any other).
MODEL = "mirothinker"


def _client(srv: SimServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0)


#: Start SimServers for a test and close them all afterwards.
serve = pytest.fixture(servers)


def test_plain_completion(serve: Callable[..., SimServer]) -> None:
    srv = serve(policies.answer)
    reply = _client(srv).chat.completions.create(model="mirothinker", messages=MESSAGES)
    assert reply.object == "chat.completion"
    assert reply.model == "mirothinker"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content.endswith("\\boxed{42}")
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == count_message_tokens(MESSAGES)
    assert reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert srv.requests[0]["messages"] == MESSAGES


def test_models_lists_the_served_name(serve: Callable[..., SimServer]) -> None:
    srv = serve(policies.answer, model_name="sim-8b")
    assert [m.id for m in _client(srv).models.list()] == ["sim-8b"]


def test_streaming_reassembles_the_same_text_with_usage(serve: Callable[..., SimServer]) -> None:
    srv = serve(lambda body: LONG_TEXT)
    client = _client(srv)
    plain = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == LONG_TEXT == plain.choices[0].message.content
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 3
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_reasoning_content_surfaces_plain_and_streamed(serve: Callable[..., SimServer]) -> None:
    srv = serve(
        lambda body: SimReply(content="\\boxed{7}", reasoning_content="Let me think."),
        reasoning_parser="qwen3",
        reasoning_field="reasoning_content",
    )
    client = _client(srv)
    plain = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert plain.choices[0].message.model_extra["reasoning_content"] == "Let me think."
    chunks = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
    reasoning = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks
    )
    assert reasoning == "Let me think."


def test_native_tools_turn_calls_into_tool_calls(serve: Callable[..., SimServer]) -> None:
    srv = serve(policies.tool_loop, tool_call_parser="hermes")
    client = _client(srv)
    reply = client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is not None
    assert "<use_mcp_tool>" not in choice.message.content
    [call] = choice.message.tool_calls
    assert (call.id, call.function.name) == ("call_1", "echo")
    assert json.loads(call.function.arguments) == {"index": 1}
    history = [*MESSAGES, choice.message.model_dump(exclude_none=True)]
    history.append({"role": "tool", "tool_call_id": call.id, "content": "1"})
    second = client.chat.completions.create(model=MODEL, messages=history, tools=TOOLS)
    assert second.choices[0].message.tool_calls[0].id == "call_2"
    streamed = list(
        client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS, stream=True)
    )
    deltas = [tc for c in streamed for tc in (c.choices[0].delta.tool_calls or [])]
    assert [(d.id, d.function.name) for d in deltas] == [("call_1", "echo")]
    assert streamed[-1].choices[0].finish_reason == "tool_calls"


def test_without_tools_calls_stay_in_the_text(serve: Callable[..., SimServer]) -> None:
    srv = serve(policies.tool_loop)
    reply = _client(srv).chat.completions.create(model=MODEL, messages=MESSAGES)
    assert reply.choices[0].message.tool_calls is None
    parsed = parse_reply(reply.choices[0].message.content)
    assert [(c.server, c.tool, c.arguments) for c in parsed.calls] == [
        ("tool-demo", "echo", {"index": 1})
    ]


def test_fault_500_and_429_with_retry_after(serve: Callable[..., SimServer]) -> None:
    faults = {"a": Fault(500, "engine exploded"), "b": Fault(429, "slow down", retry_after=3)}
    srv = serve(lambda body: faults[body["messages"][-1]["content"]])
    client = _client(srv)
    with pytest.raises(openai.InternalServerError) as failed:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "a"}])
    assert failed.value.status_code == 500
    assert "engine exploded" in failed.value.message
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "b"}])
    assert limited.value.status_code == 429
    assert limited.value.response.headers["retry-after"] == "3"
    assert limited.value.body == {
        "message": "slow down",
        "type": "RateLimitError",
        "param": None,
        "code": 429,
    }


def test_policy_exception_is_a_500_and_the_server_stays_up(serve: Callable[..., SimServer]) -> None:
    def policy(body: dict[str, Any]) -> str:
        if body["messages"][-1]["content"] == "boom":
            raise ValueError("policy blew up\nsecond line")
        return "fine"

    srv = serve(policy)
    with httpx.Client(base_url=srv.base_url) as http:
        failed = http.post(
            "/chat/completions", json={"messages": [{"role": "user", "content": "boom"}]}
        )
        assert failed.status_code == 500
        assert failed.json()["error"]["message"] == "ValueError: policy blew up"
        ok = http.post("/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
        assert ok.json()["choices"][0]["message"]["content"] == "fine"


async def test_async_policy_is_awaited(serve: Callable[..., SimServer]) -> None:
    async def policy(body: dict[str, Any]) -> str:
        return "from async"

    srv = serve(policy)
    async with httpx.AsyncClient(base_url=srv.base_url) as http:
        reply = await http.post("/chat/completions", json={"messages": MESSAGES})
    assert reply.json()["choices"][0]["message"]["content"] == "from async"


def test_context_length_400_with_vllm_message(serve: Callable[..., SimServer]) -> None:
    prompt = count_message_tokens(MESSAGES)
    srv = serve(policies.answer, max_context_tokens=prompt + 10)
    client = _client(srv)
    fits = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10)
    assert fits.choices[0].message.content
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=11)
    assert refused.value.status_code == 400
    assert refused.value.body["message"] == (
        f"'max_tokens' or 'max_completion_tokens' is too large: 11. This model's maximum context"
        f" length is {prompt + 10} tokens and your request has {prompt} input tokens"
        f" (11 > {prompt + 10} - {prompt}). (parameter=max_tokens, value=11)"
    )
    assert refused.value.body["type"] == "BadRequestError"
    assert refused.value.body["param"] == "max_tokens"
    assert [r["max_tokens"] for r in srv.requests] == [10, 11]


def test_tokenize_count_equals_prompt_tokens(serve: Callable[..., SimServer]) -> None:
    srv = serve(policies.answer, max_context_tokens=4096)
    reply = _client(srv).chat.completions.create(model=MODEL, messages=MESSAGES)
    with httpx.Client(base_url=srv.root_url) as http:
        tokens = http.post("/tokenize", json={"model": MODEL, "messages": MESSAGES}).json()
        prompt = http.post("/tokenize", json={"model": MODEL, "prompt": "a b, c"}).json()
    assert tokens["count"] == reply.usage.prompt_tokens == len(tokens["tokens"])
    assert tokens["max_model_len"] == 4096
    assert all(isinstance(t, int) for t in tokens["tokens"])
    assert prompt["count"] == 4


def test_cached_tokens_grow_on_a_shared_prefix(serve: Callable[..., SimServer]) -> None:
    srv = serve(policies.answer, enable_prompt_tokens_details=True)
    client = _client(srv)
    history = [{"role": "system", "content": LONG_TEXT}, {"role": "user", "content": "first"}]
    first = client.chat.completions.create(model=MODEL, messages=history)
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    history += [first.choices[0].message.model_dump(exclude_none=True)]
    history += [{"role": "user", "content": "second"}]
    second = client.chat.completions.create(model=MODEL, messages=history)
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert 0 < cached <= first.usage.prompt_tokens
    assert cached % 16 == 0


def test_prefix_cache_is_block_aligned_and_bounded() -> None:
    cache = PrefixCache(block_tokens=4, max_blocks=3)
    assert cache.lookup_and_insert(list(range(10))) == 0
    assert cache.lookup_and_insert(list(range(10))) == 8
    assert cache.lookup_and_insert(list(range(8))) == 4  # one token is always recomputed
    assert cache.lookup_and_insert([99, *range(9)]) == 0
    assert len(cache) == 3


def test_cut_stream_breaks_the_client(serve: Callable[..., SimServer]) -> None:
    srv = serve(lambda body: Fault(status=0, message="partial ", cut_stream_after_chars=20))
    client = _client(srv)
    seen: list[str] = []
    with pytest.raises((openai.APIConnectionError, httpx.TransportError)):
        for chunk in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
            seen.append(chunk.choices[0].delta.content or "")
    assert "".join(seen) == ("partial " * 3)[:20]
    with pytest.raises((openai.APIConnectionError, httpx.TransportError)):
        client.chat.completions.create(model=MODEL, messages=MESSAGES)


def test_load_policy_binds_typed_kwargs() -> None:
    policy = load_policy("mirograph.agents.sim.policies:tool_loop?turns=2&tool=search&answer=yes")
    assert isinstance(policy, functools.partial)
    assert policy.keywords == {"turns": 2, "tool": "search", "answer": "yes"}
    history = [{"role": "user", "content": "q"}]
    assert render_call("tool-demo", "search", {"index": 1}) in policy({"messages": history})
    history += [{"role": "assistant", "content": "x"}] * 2
    assert policy({"messages": history}).endswith("\\boxed{yes}")
    flags = load_policy("mirograph.agents.sim.policies:answer?text=1.5&x=true").keywords
    assert flags == {"text": 1.5, "x": True}
    assert load_policy("mirograph.agents.sim.policies:answer") is policies.answer


@pytest.mark.parametrize(
    "spec",
    [
        "mirograph.agents.sim.policies",
        "mirograph.agents.sim.policies:",
        "no_such_module_xyz:f",
        "mirograph.agents.sim.policies:nope",
        "mirograph.agents.sim.policies:__doc__",
    ],
)
def test_load_policy_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(PolicySpecError, match="module:function") as bad:
        load_policy(spec)
    assert spec in str(bad.value)
    assert "\n" not in str(bad.value)


def test_echo_last_boxes_the_last_user_text() -> None:
    body = {"messages": [*MESSAGES, {"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    assert policies.echo_last(body).endswith("\\boxed{hi}")


@pytest.mark.timeout(20)
def test_serve_forever_prints_its_port() -> None:
    code = (
        "from mirograph.agents.sim.server import serve_forever; "
        "serve_forever('mirograph.agents.sim.policies:answer')"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        prefix = "sim-model listening on http://127.0.0.1:"
        assert line.startswith(prefix), line or proc.stderr.read()
        assert line.endswith("/v1\n"), line
        base_url = line.removeprefix("sim-model listening on ").strip()
        models = httpx.get(f"{base_url}/models").json()
        assert models["data"][0]["id"] == "mirothinker"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
