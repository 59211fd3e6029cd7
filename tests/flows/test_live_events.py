"""Following a run's events (``flows.watch``): the stored backlog, then live ones,
none twice and none missing across the boundary, until the run's session ends;
through Redis when configured (a Redis killed mid-run costs the run nothing), by
polling the store otherwise; ``watch_run`` draws the lines ``run`` draws."""

from __future__ import annotations

import asyncio
import io
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from support.live_kit import GatedPolicy, flow_spec, reached, tool_turns, until

from mirograph.agents.sim.server import SimServer
from mirograph.flows.events import run_events
from mirograph.flows.live import channel
from mirograph.flows.loader import validate_flow
from mirograph.flows.progress import RunProgress
from mirograph.flows.runner import start_run
from mirograph.flows.watch import follow_events, watch_run
from mirograph.graphs.run_control import RunControl

QUESTION = "Read every page about watch."
TURNS = 5


def sqlite_store(home: Path) -> str:
    return f"sqlite:///{home / 'runs.db'}"


async def collect(run_id: str, seen: list[dict[str, Any]], **kwargs: Any) -> None:
    async for event in follow_events(run_id, poll_s=0.1, **kwargs):
        seen.append(event)


def without_seq(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "seq"} for e in events]


async def follow_a_held_run(store: str, redis_url: str | None) -> list[dict[str, Any]]:
    """Start a run held at turn 3, follow it from there (its backlog: turns 1-2),
    see turn 4's tool call arrive live while it is held at turn 5, then let it end."""
    policy = GatedPolicy(TURNS, hold=(3, 5))
    seen: list[dict[str, Any]] = []
    with SimServer(policy) as srv:
        flow = validate_flow(flow_spec(srv.base_url, TURNS))
        run = asyncio.create_task(start_run(QUESTION, flow, run_id="live", store_url=store))
        try:
            await reached(policy.reached[3])
            follower = asyncio.create_task(
                collect("live", seen, store_url=store, redis_url=redis_url)
            )
            await until(lambda: tool_turns(seen) == [1, 2], "the backlog", follower)
            policy.go[3].set()
            await reached(policy.reached[5])
            await until(lambda: tool_turns(seen) == [1, 2, 3, 4], "turn 4, live", follower)
            assert not run.done() and not follower.done()  # live: the run is still held
            policy.go[5].set()
            outcome = await asyncio.wait_for(run, 60)
            await asyncio.wait_for(follower, 30)  # ends with the run's session
        finally:
            policy.release_all()
    assert outcome.status == "completed", outcome.reason
    return seen


def check_complete(seen: list[dict[str, Any]], stored: list[dict[str, Any]]) -> None:
    assert [e["seq"] for e in seen] == list(range(1, len(stored) + 1))  # none twice, none missing
    assert without_seq(seen) == stored
    assert seen[0]["event"] == "run_started" and seen[-1]["event"] == "run_completed"
    assert tool_turns(seen) == list(range(1, TURNS + 1))


@pytest.mark.timeout(120)
async def test_follow_gives_the_backlog_then_live_events_through_redis(
    home: Path, redis_server, postgres_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A PostgreSQL store stores events in batches: a live event often arrives before
    # the store holds the ones just before it, and the follower fills that gap.
    monkeypatch.setenv("MIROGRAPH_REDIS", redis_server.url)
    store = postgres_server.url
    subscribers: list[int] = []

    async def count_subscribers() -> None:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(redis_server.url)
        try:
            while not subscribers or subscribers[-1] == 0:
                subscribers.append(
                    dict(await client.pubsub_numsub(channel("live")))[channel("live").encode()]
                )
                await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    counting = asyncio.create_task(count_subscribers())
    seen = await follow_a_held_run(store, redis_server.url)
    await asyncio.wait_for(counting, 10)
    assert subscribers[-1] == 1  # the follower listened on the run's channel
    check_complete(seen, await run_events("live", store_url=store))


@pytest.mark.timeout(120)
async def test_without_redis_follow_polls_the_store(home: Path, monkeypatch) -> None:
    monkeypatch.delenv("MIROGRAPH_REDIS", raising=False)
    store = sqlite_store(home)
    seen = await follow_a_held_run(store, None)
    check_complete(seen, await run_events("live", store_url=store))
    # An ended run: what follows sequence number 3, then the end at once.
    later = [e async for e in follow_events("live", store_url=store, after=3)]
    assert later == seen[3:]


@pytest.mark.timeout(120)
async def test_a_redis_killed_mid_run_stops_nothing(
    home: Path, redis_server, monkeypatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MIROGRAPH_REDIS", redis_server.url)
    caplog.set_level(logging.WARNING, logger="mirograph.flows.live")
    store = sqlite_store(home)
    policy = GatedPolicy(TURNS, hold=(3,))
    seen: list[dict[str, Any]] = []
    with SimServer(policy) as srv:
        flow = validate_flow(flow_spec(srv.base_url, TURNS))
        run = asyncio.create_task(start_run(QUESTION, flow, run_id="live", store_url=store))
        try:
            await reached(policy.reached[3])
            follower = asyncio.create_task(collect("live", seen, store_url=store))
            await until(lambda: tool_turns(seen) == [1, 2], "the backlog", follower)
            redis_server.kill()
            policy.go[3].set()
            outcome = await asyncio.wait_for(run, 60)
            await asyncio.wait_for(follower, 30)
        finally:
            policy.release_all()
    assert outcome.status == "completed", outcome.reason
    check_complete(seen, await run_events("live", store_url=store))
    said = [r.getMessage() for r in caplog.records if r.name == "mirograph.flows.live"]
    assert len(said) == 1 and "live events not published" in said[0], said  # one warning


@pytest.mark.timeout(120)
async def test_watch_run_draws_the_lines_run_draws(home: Path, monkeypatch) -> None:
    monkeypatch.delenv("MIROGRAPH_REDIS", raising=False)
    store = sqlite_store(home)
    policy = GatedPolicy(TURNS, hold=(3,))
    drawn, watched = io.StringIO(), io.StringIO()
    control = RunControl()
    control.add_sink(RunProgress(control, _console(drawn)))  # what `run` prints, off its panel
    with SimServer(policy) as srv:
        flow = validate_flow(flow_spec(srv.base_url, TURNS))
        run = asyncio.create_task(
            start_run(QUESTION, flow, run_id="live", store_url=store, control=control)
        )
        try:
            await reached(policy.reached[3])
            watching = asyncio.create_task(
                watch_run("live", store_url=store, console=_console(watched))
            )
            policy.go[3].set()
            outcome = await asyncio.wait_for(run, 60)
            watched_outcome = await asyncio.wait_for(watching, 30)
        finally:
            policy.release_all()
    assert (watched_outcome.status, watched_outcome.answer) == (outcome.status, outcome.answer)
    ours, theirs = _lines(watched.getvalue()), _lines(drawn.getvalue())
    assert len(theirs) == TURNS and [text for _, text in ours] == [text for _, text in theirs]
    assert all(abs(a - b) <= 1 for (a, _), (b, _) in zip(ours, theirs, strict=True))


def _console(file: io.StringIO) -> Console:
    return Console(file=file, width=300, force_terminal=False, color_system=None)


_STAMP = re.compile(r"^\s*(\d+)s (.*)$")


def _lines(text: str) -> list[tuple[int, str]]:
    """(seconds stamp, rest) of each line."""
    found = []
    for line in text.splitlines():
        match = _STAMP.match(line)
        assert match, line
        found.append((int(match.group(1)), match.group(2)))
    return found


async def test_a_watcher_never_sees_events_a_killed_session_did_not_store(
    home: Path, redis_server, postgres_server
) -> None:
    # Runner A is killed after two events it never stored; B takes over and numbers its
    # own from the store's last. The watcher sees what the store holds, B's included.
    from mirograph.flows.events import RunEvents
    from mirograph.flows.live import publisher
    from mirograph.state.registry import RunRecord
    from mirograph.state.store import open_store

    url, live = postgres_server.url, publisher(redis_server.url)
    seen: list[dict[str, Any]] = []
    async with open_store(url) as store:
        registry = store.registry
        registry.create(RunRecord(id="r", question="q", flow="f", flow_spec={}, status="running"))
        lease_a = registry.leases.acquire("r")
        registry.update("r", lease=lease_a, status="running")
        a = RunEvents("r", await store.events.writer("r", lease_a), live)
        a({"event": "run_started", "who": "A"})
        await a._writer.flush()
        follower = asyncio.create_task(collect("r", seen, store_url=url, redis_url=live.url))
        await until(lambda: len(seen) == 1, "the backlog", follower)
        a._writer._task.cancel()  # killed before its next flush
        a({"event": "tool_call", "who": "A"})
        a({"event": "model_call", "who": "A"})
        await live.drain(within=2.0)  # what A published has gone out
        assert registry.leases.release(lease_a)  # expired: B takes it over
        lease_b = registry.leases.acquire("r")
        registry.update("r", lease=lease_b, status="running")
        b = RunEvents("r", await store.events.writer("r", lease_b), live)
        for name in ("run_resumed", "model_call", "run_completed"):
            b({"event": name, "who": "B"})
        await b.aclose()
        await asyncio.wait_for(follower, 30)
        stored = [(seq, e["event"], e["who"]) for seq, e in await store.events.read("r")]
    assert stored == [(1, "run_started", "A"), *((n, e, "B") for n, e in enumerate(
        ("run_resumed", "model_call", "run_completed"), 2))]  # fmt: skip
    assert [(e["seq"], e["event"], e["who"]) for e in seen] == stored
