"""The "server unavailable" hint names the failing server's own port."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest
from support.testkit import free_port

from mirograph.agents.model_failures import classify_model_error
from mirograph.agents.sim.policies import answer
from mirograph.agents.sim.scripting import Fault
from mirograph.agents.sim.server import SimServer
from mirograph.errors import ContextOverflowError, ModelUnavailableError, server_port
from mirograph.flows.loader import validate_flow
from mirograph.flows.runner import start_run
from mirograph.graphs.config import FlowConfig


@pytest.mark.parametrize(
    ("base_url", "port"),
    [
        ("http://127.0.0.1:8123/v1", 8123),
        ("http://localhost:9000", 9000),
        ("http://gpu-box/v1", 80),
        ("https://models.example.org/v1", 443),
        ("http://host:99999/v1", 8000),  # out of range: the default, not a crash
        ("not a url", 8000),
        ("", 8000),
    ],
)
def test_the_port_is_read_from_the_base_url(base_url: str, port: int) -> None:
    assert server_port(base_url) == port


def test_the_hint_names_both_servers_on_the_failing_port() -> None:
    error = ModelUnavailableError("http://127.0.0.1:8123/v1", "connection refused or dropped")
    text = str(error)
    assert text.startswith(
        "model server at http://127.0.0.1:8123/v1 is unavailable (connection refused or dropped);"
    )
    assert "`vllm serve miromind-ai/MiroThinker-v1.0-8B" in text
    assert "`mirograph sim-model --policy mirograph.agents.sim.policies:tool_loop" in text
    assert text.count("--port 8123`") == 2 and "8000" not in text


async def test_a_run_with_no_server_pauses_naming_the_flows_port(
    home: Path, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there
    flow = validate_flow(
        {
            "name": "one",
            "models": {"m": {"base_url": f"http://127.0.0.1:{port}/v1", "max_retries": 0}},
            "agents": {"main": {"model": "m"}},
            "entry": "main",
        }
    )
    outcome = await start_run("What is it?", flow, store_url=f"sqlite:///{tmp_path / 'r.db'}")
    assert outcome.status == "paused"
    assert (outcome.reason or "").count(f"--port {port}`") == 2


# -- what vLLM answers, classified -------------------------------------------


def _bad_request(message: str) -> openai.BadRequestError:
    request = httpx.Request("POST", "http://vllm/v1/chat/completions")
    body = {"message": message, "type": "BadRequestError", "param": None, "code": 400}
    response = httpx.Response(400, json={"error": body}, request=request)
    return openai.BadRequestError(f"Error code: 400 - {body}", response=response, body=body)


@pytest.mark.parametrize(
    "message",
    [
        # vLLM up to 0.10: prompt plus completion, in one sentence.
        "This model's maximum context length is 8192 tokens. However, you requested 9100 tokens"
        " (8100 in the messages, 1000 in the completion). Please reduce the length of the"
        " messages or completion.",
        # vLLM now: the prompt alone, then max_tokens too large.
        "This model's maximum context length is 8192 tokens. However, your request has 9000"
        " input tokens. Please reduce the length of the input messages."
        " (parameter=input_tokens, value=9000)",
        "'max_tokens' or 'max_completion_tokens' is too large: 4096. This model's maximum context"
        " length is 8192 tokens and your request has 5000 input tokens (4096 > 8192 - 5000)."
        " (parameter=max_tokens, value=4096)",
    ],
)
def test_every_vllm_overflow_wording_is_a_context_overflow(message: str) -> None:
    error = classify_model_error(_bad_request(message), "http://vllm/v1")
    assert isinstance(error, ContextOverflowError)
    assert "maximum context length is 8192 tokens" in str(error)


def test_the_sims_overflow_is_one_too_over_http() -> None:
    with SimServer(answer, max_context_tokens=64) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0)
        for max_tokens in (None, 60):  # the prompt alone; the prompt and the reply
            messages = [{"role": "user", "content": "word " * (100 if max_tokens is None else 5)}]
            with pytest.raises(openai.BadRequestError) as refused:
                client.chat.completions.create(
                    model="mirothinker", messages=messages, max_tokens=max_tokens
                )
            assert isinstance(
                classify_model_error(refused.value, srv.base_url), ContextOverflowError
            )


async def test_error_events_in_the_stream_are_retried_then_the_run_pauses(
    home: Path, tmp_path: Path
) -> None:
    engine_died = Fault(malformed="error_event", message="engine died")
    with SimServer(lambda body: engine_died) as srv:
        outcome = await start_run("Q?", _flow(srv, streaming=True), store_url=_store(tmp_path))
    assert outcome.status == "paused"
    assert "is unavailable (error in stream: engine died)" in (outcome.reason or "")
    assert len(srv.requests) == 3  # the call and its two retries


async def test_an_unknown_model_name_pauses_at_once_naming_it(home: Path, tmp_path: Path) -> None:
    with SimServer(answer, model_name="other") as srv:
        outcome = await start_run("Q?", _flow(srv), store_url=_store(tmp_path))
    assert outcome.status == "paused"
    assert "The model `mirothinker` does not exist.; check the model name" in (outcome.reason or "")
    assert len(srv.requests) == 1  # not retried: the name will not change by itself


def _flow(srv: SimServer, **model: object) -> FlowConfig:
    settings = {"base_url": srv.base_url, "max_retries": 2, "retry_base_s": 0, **model}
    return validate_flow(
        {
            "name": "one",
            "models": {"m": settings},
            "agents": {"main": {"model": "m"}},
            "entry": "main",
        }
    )


def _store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'r.db'}"
