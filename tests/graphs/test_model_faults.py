"""Model-server faults are retried with backoff; past the limit the error goes up."""

from __future__ import annotations

import pytest
from langchain_core.tools import tool
from support.loop_kit import Sleeps, call, make_loop, run_loop, scripted, servers

from mirograph.agents.retry import RetryPolicy
from mirograph.agents.sim.scripting import Fault
from mirograph.agents.tools.base import on_server
from mirograph.errors import ModelUnavailableError

ANSWER = "Done.</think>\n\n\\boxed{42}"


@tool
def echo(text: str) -> str:
    """Echo the text."""
    return text


TOOLS = [on_server(echo, "lab")]
server = pytest.fixture(servers)


async def test_server_errors_are_retried_with_growing_jittered_backoff(server, tmp_path) -> None:
    srv = server(scripted([Fault(500), Fault(503), Fault(502), call("echo", text="x")], ANSWER))
    sleeps = Sleeps()
    retry = RetryPolicy(max_retries=5, base_s=1.0, sleep=sleeps)
    values = await run_loop(make_loop(srv, TOOLS, retry=retry), tmp_path)
    assert values["answer"] == "42"
    assert values["stats"]["retries"] == 3 and values["stats"]["turns"] == 2
    first, second, third = sleeps.delays
    assert 0.5 <= first <= 1 and 1 <= second <= 2 and 2 <= third <= 4


async def test_rate_limit_waits_at_least_retry_after(server, tmp_path) -> None:
    srv = server(scripted([Fault(429, retry_after=7)], ANSWER))
    sleeps = Sleeps()
    values = await run_loop(
        make_loop(srv, TOOLS, retry=RetryPolicy(max_retries=2, sleep=sleeps)), tmp_path
    )
    assert values["answer"] == "42"
    assert sleeps.delays == [7.0]


async def test_timeouts_and_cut_streams_are_retried(server, tmp_path) -> None:
    cut = Fault(status=0, cut_stream_after_chars=12)
    srv = server(scripted([Fault(200, delay_ms=800), cut, call("echo", text="x")], ANSWER))
    sleeps = Sleeps()
    loop = make_loop(
        srv,
        TOOLS,
        model={"timeout_s": 0.3, "streaming": True},
        retry=RetryPolicy(max_retries=3, sleep=sleeps),
    )
    values = await run_loop(loop, tmp_path)
    assert values["answer"] == "42"
    assert values["stats"]["retries"] == 2


async def test_past_the_limit_the_error_goes_up_to_pause_the_run(server, tmp_path) -> None:
    srv = server(scripted([Fault(500)] * 10, ANSWER))
    sleeps = Sleeps()
    loop = make_loop(srv, TOOLS, retry=RetryPolicy(max_retries=2, sleep=sleeps))
    with pytest.raises(ModelUnavailableError, match="HTTP 500") as info:
        await run_loop(loop, tmp_path)
    assert "vllm serve" in str(info.value) and len(sleeps.delays) == 2
    assert len(srv.requests) == 3
