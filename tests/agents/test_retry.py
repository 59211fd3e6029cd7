"""Retry-After: read robustly, waited up to the cap, and too long a wait pauses the run.

Over real HTTP against sim-model, with an injected sleep that records the
waits instead of waiting them out.
"""

from __future__ import annotations

import math
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from support.loop_kit import Sleeps, make_loop, run_loop, scripted, servers

from mirograph.agents.model_failures import parse_retry_after
from mirograph.agents.retry import RetryPolicy
from mirograph.agents.sim.scripting import Fault
from mirograph.agents.sim.server import SimServer
from mirograph.errors import RetryLaterError
from mirograph.flows.loader import validate_flow
from mirograph.flows.runner import run_report, start_run

ANSWER = "Done.</think>\n\n\\boxed{42}"
NOW = 1_700_000_000.0
server = pytest.fixture(servers)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("100000", 100000.0),
        ("inf", math.inf),
        ("1e999", math.inf),
        (formatdate(NOW + 30, usegmt=True), 30.0),
        (formatdate(NOW - 30, usegmt=True), 0.0),  # a date already past: retry now
        ("nan", None),
        ("-5", None),
        ("soon", None),
        ("", None),
        ("Wed, 99 Foo 2015 07:28:00 GMT", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_a_date_and_garbage_is_ignored(
    header: str | None, seconds: float | None
) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


async def test_a_retry_after_above_the_cap_waits_the_cap(server: Any, tmp_path: Path) -> None:
    srv = server(scripted([Fault(429, retry_after=200)], ANSWER))
    sleeps = Sleeps()
    retry = RetryPolicy(max_retries=2, cap_s=60, max_wait_s=300, sleep=sleeps)
    values = await run_loop(make_loop(srv, [], retry=retry), tmp_path)
    assert values["answer"] == "42"
    assert sleeps.delays == [60.0]


@pytest.mark.parametrize("header", [-5.0, math.nan])
async def test_an_unreadable_retry_after_leaves_the_backoff(
    server: Any, tmp_path: Path, header: float
) -> None:
    srv = server(scripted([Fault(503, retry_after=header)], ANSWER))
    sleeps = Sleeps()
    retry = RetryPolicy(max_retries=2, base_s=1.0, sleep=sleeps)
    values = await run_loop(make_loop(srv, [], retry=retry), tmp_path)
    assert values["answer"] == "42"
    assert len(sleeps.delays) == 1 and 0.5 <= sleeps.delays[0] <= 1.0


@pytest.mark.parametrize(
    ("header", "wait"), [(100000.0, "100000 s"), (math.inf, "an unbounded time")]
)
async def test_a_wait_longer_than_worth_sleeping_raises_to_pause_without_sleeping(
    server: Any, tmp_path: Path, header: float, wait: str
) -> None:
    srv = server(scripted([Fault(429, "slow down", retry_after=header)], ANSWER))
    sleeps = Sleeps()
    retry = RetryPolicy(max_retries=5, max_wait_s=300, sleep=sleeps)
    with pytest.raises(RetryLaterError) as raised:
        await run_loop(make_loop(srv, [], retry=retry), tmp_path)
    assert sleeps.delays == [] and len(srv.requests) == 1
    assert str(raised.value) == (
        f"model server at {srv.base_url} asked to retry after {wait}"
        " (HTTP 429: Error code: 429 - slow down); resume later"
    )


async def test_a_run_asked_to_wait_a_day_pauses_with_the_reason(home: Path, tmp_path: Path) -> None:
    """Through the runner, with its real sleep: nothing waits, the run pauses."""
    with SimServer(lambda body: Fault(429, "slow down", retry_after=86400)) as srv:
        flow = validate_flow(
            {
                "name": "one",
                "models": {"m": {"base_url": srv.base_url, "max_tokens": 64}},
                "agents": {"main": {"model": "m"}},
                "entry": "main",
            }
        )
        store = f"sqlite:///{tmp_path / 'runs.db'}"
        outcome = await start_run("What is it?", flow, run_id="day", store_url=store)
        report = await run_report("day", store_url=store)
    assert outcome.status == "paused" and len(srv.requests) == 1
    assert "asked to retry after 86400 s" in (outcome.reason or "")
    assert (outcome.reason or "").endswith("resume later")
    assert report["status"] == "paused" and report["reason"] == outcome.reason
