"""The simulated server behaves as vLLM does by default, and as vLLM's flags make it."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from support.loop_kit import servers
from support.testkit import Cli

from mirograph.agents.sim import policies
from mirograph.agents.sim.scripting import Fault
from mirograph.agents.sim.server import SimServer
from mirograph.agents.sim.tokens import count_message_tokens
from mirograph.agents.sim.vllm import DEFAULT_MAX_MODEL_LEN, VllmOptions, split_reasoning

MESSAGES: list[Any] = [{"role": "user", "content": "What is six times seven?"}]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {"name": "echo", "parameters": {"type": "object", "properties": {}}},
    }
]
RAW = "Six sevens.\n</think>\n\n\\boxed{42}"

serve = pytest.fixture(servers)


def _client(srv: SimServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0)


def _ask(srv: SimServer, **extra: Any) -> Any:
    return _client(srv).chat.completions.create(
        **{"model": "mirothinker", "messages": MESSAGES, **extra}
    )


def test_continuing_the_last_message_is_checked_as_vllm_checks_it(
    serve: Callable[..., SimServer],
) -> None:
    srv = serve(lambda body: "more thinking.</think>\n\nSummary.", reasoning_parser="deepseek_r1")
    opened = [*MESSAGES, {"role": "assistant", "content": "<think>\n"}]
    with pytest.raises(openai.BadRequestError, match="Cannot set both"):
        _ask(srv, messages=opened, extra_body={"continue_final_message": True})
    with pytest.raises(openai.BadRequestError, match="final message is not an assistant"):
        _ask(
            srv,
            extra_body={"continue_final_message": True, "add_generation_prompt": False},
        )
    reply = (
        _ask(
            srv,
            messages=opened,
            extra_body={"continue_final_message": True, "add_generation_prompt": False},
        )
        .choices[0]
        .message
    )
    # The continuation has no opening tag: the parser still splits at </think>.
    assert (reply.reasoning, reply.content) == ("more thinking.", "\n\nSummary.")


def test_an_unknown_model_name_is_a_404_in_vllms_shape(serve: Callable[..., SimServer]) -> None:
    srv = serve(policies.answer, model_name="sim-8b")
    with pytest.raises(openai.NotFoundError) as missing:
        _ask(srv, model="mirothinker")
    assert missing.value.body == {
        "message": "The model `mirothinker` does not exist.",
        "type": "NotFoundError",
        "param": "model",
        "code": 404,
    }
    assert _ask(srv, model="sim-8b").choices[0].message.content.endswith("\\boxed{42}")
    with httpx.Client(base_url=srv.root_url) as http:
        assert http.post("/tokenize", json={"model": "x", "prompt": "a"}).status_code == 404
        unnamed = http.post("/v1/chat/completions", json={"messages": MESSAGES})
    assert unnamed.status_code == 200  # vLLM serves a request that names no model


def test_prompt_tokens_details_are_null_unless_enabled(serve: Callable[..., SimServer]) -> None:
    usage = {"stream": True, "stream_options": {"include_usage": True}}
    bare = serve(policies.answer)
    assert _ask(bare).usage.prompt_tokens_details is None
    assert list(_ask(bare, **usage))[-1].usage.prompt_tokens_details is None
    srv = serve(policies.answer, enable_prompt_tokens_details=True)
    long = [{"role": "system", "content": "context " * 40}, *MESSAGES]
    assert _ask(srv, messages=long).usage.prompt_tokens_details.cached_tokens == 0
    again = list(_ask(srv, messages=long, **usage))[-1].usage.prompt_tokens_details
    assert again.cached_tokens >= 32  # the same prompt again: its whole blocks were cached


def test_the_context_length_is_enforced_by_default_in_vllms_current_words(
    serve: Callable[..., SimServer],
) -> None:
    srv = serve(policies.answer)
    assert srv.options.max_model_len == DEFAULT_MAX_MODEL_LEN == 262_144
    prompt = count_message_tokens(MESSAGES)
    assert _ask(srv, max_tokens=DEFAULT_MAX_MODEL_LEN - prompt).choices
    with pytest.raises(openai.BadRequestError) as too_large:
        _ask(srv, max_tokens=DEFAULT_MAX_MODEL_LEN - prompt + 1)
    asked = DEFAULT_MAX_MODEL_LEN - prompt + 1
    assert too_large.value.body["message"] == (
        f"'max_tokens' or 'max_completion_tokens' is too large: {asked}. This model's maximum"
        f" context length is 262144 tokens and your request has {prompt} input tokens"
        f" ({asked} > 262144 - {prompt}). (parameter=max_tokens, value={asked})"
    )
    small = serve(policies.answer, max_context_tokens=prompt)
    with pytest.raises(openai.BadRequestError) as too_long:
        _ask(small)
    assert too_long.value.body["message"] == (
        f"This model's maximum context length is {prompt} tokens. However, your request has"
        f" {prompt} input tokens. Please reduce the length of the input messages."
        f" (parameter=input_tokens, value={prompt})"
    )
    assert too_long.value.body["param"] == "input_tokens"


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
def test_a_reasoning_parser_returns_the_thinking_apart(
    serve: Callable[..., SimServer], field: str
) -> None:
    srv = serve(lambda body: RAW, reasoning_parser="qwen3", reasoning_field=field)
    message = _ask(srv).choices[0].message
    assert (message.content, message.model_extra) == ("\n\n\\boxed{42}", {field: "Six sevens.\n"})
    chunks = list(_ask(srv, stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join((d.model_extra or {}).get(field) or "" for d in deltas) == "Six sevens.\n"
    assert "".join(d.content or "" for d in deltas) == "\n\n\\boxed{42}"


def test_without_a_reasoning_parser_the_thinking_stays_in_the_text(
    serve: Callable[..., SimServer],
) -> None:
    message = _ask(serve(lambda body: RAW)).choices[0].message
    assert (message.content, message.model_extra) == (RAW, {})


def test_reasoning_parsers_split_as_vllms_do() -> None:
    assert split_reasoning("<think>a</think>b", "qwen3") == ("a", "b")
    assert split_reasoning("a</think>b</think>c", "deepseek_r1") == ("a", "b</think>c")
    assert split_reasoning("no close tag", "qwen3") == (None, "no close tag")
    assert split_reasoning("no close tag", "deepseek_r1") == ("no close tag", "")


def test_tools_need_a_tool_parser_as_on_vllm(serve: Callable[..., SimServer]) -> None:
    bare = serve(policies.tool_loop)
    with pytest.raises(openai.BadRequestError) as refused:
        _ask(bare, tools=TOOLS)
    assert refused.value.body["message"] == (
        '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
    )
    ignored = _ask(bare, tools=TOOLS, tool_choice="none").choices[0].message
    assert ignored.tool_calls is None and "<use_mcp_tool>" in ignored.content
    parsed = _ask(serve(policies.tool_loop, tool_call_parser="hermes"), tools=TOOLS)
    assert [c.function.name for c in parsed.choices[0].message.tool_calls] == ["echo"]


def test_an_engine_failure_mid_stream_is_an_error_event_then_done(
    serve: Callable[..., SimServer],
) -> None:
    srv = serve(lambda body: Fault(malformed="error_event", message="engine died"))
    body = {"model": "mirothinker", "messages": MESSAGES, "stream": True}
    response = httpx.post(f"{srv.base_url}/chat/completions", json=body, timeout=10)
    events = [line.removeprefix("data: ") for line in response.text.split("\n\n") if line]
    assert response.status_code == 200 and events[-1] == "[DONE]"
    assert json.loads(events[-2]) == {
        "error": {
            "message": "engine died",
            "type": "InternalServerError",
            "param": None,
            "code": 500,
        }
    }
    with pytest.raises(openai.APIError, match="engine died") as raised:
        list(_ask(srv, stream=True))
    assert type(raised.value) is openai.APIError  # the bare class: no status to go by


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"model_name": " "}, "the served model name is empty"),
        ({"max_model_len": 0}, "max_model_len must be a whole number >= 1, not 0"),
        (
            {"reasoning_parser": "r1"},
            "unknown reasoning parser 'r1'; use one of deepseek_r1, qwen3",
        ),
        ({"reasoning_field": "thoughts"}, "unknown reasoning field 'thoughts'"),
        ({"tool_call_parser": ""}, "the tool call parser name is empty"),
    ],
)
def test_options_are_checked(options: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint.replace("(", r"\(")):
        VllmOptions(**options)


def test_the_command_line_takes_vllms_flags(cli: Cli, sim_model: Callable[..., str]) -> None:
    flags = ["--served-model-name", "sim-8b", "--max-model-len", "4096"]
    flags += ["--enable-prompt-tokens-details", "--reasoning-parser", "deepseek_r1"]
    base_url = sim_model("mirograph.agents.sim.policies:answer", *flags, "--tool-call-parser", "x")
    client = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0)
    reply = client.chat.completions.create(model="sim-8b", messages=MESSAGES, tools=TOOLS)
    message = reply.choices[0].message
    assert message.model_extra["reasoning"] == "The answer is known without tools.\n"
    assert reply.usage.prompt_tokens_details.cached_tokens == 0
    with pytest.raises(openai.BadRequestError, match="maximum context length is 4096 tokens"):
        client.chat.completions.create(model="sim-8b", messages=MESSAGES, max_tokens=4096)
    bad = cli("sim-model", "--policy", "mirograph.agents.sim.policies:answer", "--port", "0",
              "--reasoning-parser", "nope")  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip().endswith(
        "sim-model: unknown reasoning parser 'nope'; use one of deepseek_r1, qwen3"
    )


def test_the_command_line_and_sim_server_defaults_are_vllms() -> None:
    from mirograph.flows.cli import sim_model

    defaults = VllmOptions()
    command = inspect.signature(sim_model).parameters
    python = inspect.signature(SimServer).parameters
    for name in (
        "model_name",
        "enable_prompt_tokens_details",
        "reasoning_parser",
        "reasoning_field",
        "tool_call_parser",
    ):
        assert command[name].default == python[name].default == getattr(defaults, name), name
    assert command["max_model_len"].default == python["max_context_tokens"].default
    assert defaults.max_model_len == DEFAULT_MAX_MODEL_LEN
