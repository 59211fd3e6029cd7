"""Follow a run from anywhere the store is reachable: its stored events, then its live
ones, until its session ends (``mirograph watch``, the web view, bench's progress).

Live events come through Redis when it is configured (subscribed to *before* the
stored backlog is read, so none falls between the two: an event is published once
stored; duplicates are dropped by sequence number, and a gap, an event Redis did
not carry, is filled from the store). Without Redis, or once it goes away, the
store is polled every ``POLL_S``. A server store that goes away (restarted, its
network down) is waited for, however long, with one line saying so (``StoreAway``):
a person watching a long run wants it back, and Ctrl-C stops watching. ``watch_run``
draws the events as ``mirograph run`` draws its own (``flows.progress``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console

from mirograph.flows import live
from mirograph.flows.runs import find_run
from mirograph.state.events import READ_LIMIT
from mirograph.state.postgres.store import is_outage
from mirograph.state.registry import RunRecord
from mirograph.state.store import Store, open_store, shown_url

if TYPE_CHECKING:
    from mirograph.flows.runner import RunOutcome

log = logging.getLogger(__name__)

#: The events that end a session of a run (``_end_session``'s ``run_<status>``).
SESSION_ENDS = frozenset({"run_completed", "run_no_answer", "run_paused", "run_failed"})
#: Seconds between two reads of the store when it is polled.
POLL_S = 0.5
#: Seconds of quiet after which a follower asks the registry whether the run still runs.
CHECK_S = 1.0
#: Seconds a gap in the live sequence may wait for the store before it is skipped.
GAP_WAIT_S = 3.0


class StoreAway:
    """Says once that the store went away while watching (``say``: default a warning),
    and once that it is back; a watcher keeps waiting meanwhile."""

    def __init__(self, url: str | None, say: Callable[[str], None] | None = None) -> None:
        self.url = url
        self.say = say or log.warning
        self.away = False

    def lost(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the store gone away (said once); else the caller raises."""
        if not is_outage(exc):
            return False
        if not self.away:
            self.away = True
            where = shown_url(self.url) if self.url else "the run store"
            self.say(
                f"the store at {where} is not reachable: still watching, waiting for it"
                " to come back (Ctrl-C stops watching, not the run)"
            )
        return True

    def back(self) -> None:
        if self.away:
            self.away = False
            self.say("the store is back: watching goes on")

    def find(self, registry: Any, run_id: str) -> RunRecord | None:
        """The run's record; None while the store is away. (The store is said back
        only once events can be read again: the registry's own connection comes back
        before the pool's, and saying so then would say the outage twice.)"""
        try:
            return find_run(registry, run_id)
        except Exception as exc:
            if not self.lost(exc):
                raise
            return None


async def follow_events(
    run_id: str,
    *,
    store_url: str | None = None,
    redis_url: str | None = None,
    after: int = 0,
    poll_s: float = POLL_S,
    say: Callable[[str], None] | None = None,
    away: StoreAway | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """The run's events after sequence number ``after``, stored then live, each with
    its ``seq``, oldest first, none twice; ends with the run's session (its
    ``run_completed``, ``run_no_answer``, ``run_paused`` or ``run_failed`` event), or
    once no live runner holds the run. ``redis_url``: default ``$MIROGRAPH_REDIS``;
    none, polling the store. A run not in the store: ``RunNotFoundError``. A store
    that goes away meanwhile is waited for (``say`` tells it, once: ``StoreAway``;
    ``away``: the watcher's own, so a watch says it once however many sessions it
    follows)."""
    async with open_store(store_url) as store:
        find_run(store.registry, run_id)
        url = live.redis_url(redis_url)
        subscription = await _Subscription.open(url, run_id) if url else None
        try:
            away = away or StoreAway(store_url, say)
            follower = _Follower(store, run_id, after, subscription, poll_s, away)
            async for event in follower.events():
                yield event
        finally:
            if subscription is not None:
                await subscription.close()


class _Follower:
    """Orders what the store and the live channel give into one sequence."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        after: int,
        subscription: _Subscription | None,
        poll_s: float,
        away: StoreAway,
    ) -> None:
        self.store = store
        self.away = away
        self.run_id = run_id
        self.last = after
        self.live = subscription
        self.poll_s = poll_s
        self.pending: dict[int, dict[str, Any]] = {}
        self.gap_since: float | None = None
        self.checked = time.monotonic()

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        for event in await self._stored():  # the backlog: earlier sessions' ends included
            yield event
        if not self._running():  # between sessions, or its runner is gone
            for event in await self._stored():  # what came before it stopped
                yield event
            return
        while True:
            await self._wait_for_more()
            for event in self._in_order():
                yield event
                if event["event"] in SESSION_ENDS:
                    return
            if time.monotonic() - self.checked >= CHECK_S:
                self.checked = time.monotonic()
                if not self._running():
                    for event in await self._stored():
                        yield event
                    return

    async def _stored(self) -> list[dict[str, Any]]:
        """The stored events after the last one given, in order (gaps accepted)."""
        found = []
        while True:
            batch = await self._read()
            for seq, event in batch:
                self.pending.pop(seq, None)
                found.append(_numbered(seq, event))
                self.last = seq
            if len(batch) < READ_LIMIT:
                return found

    async def _wait_for_more(self) -> None:
        """Take what comes live (or from the store, polled), filling gaps from the store."""
        if self.live is not None:
            received = []
            try:
                received = await self.live.receive(self.poll_s)
            except Exception as exc:  # Redis went away: poll the store from now on
                log.debug("live events lost (%s); polling the store", exc)
                await self.live.close()
                self.live = None
            for seq, event in received:
                if seq > self.last:
                    self.pending[seq] = event
            if received and self.last + 1 in self.pending:
                self.gap_since = None
                return
            # Quiet, or a gap (an event Redis did not carry): the store has them.
        else:
            await asyncio.sleep(self.poll_s)
        for seq, event in await self._read():
            self.pending[seq] = event
        if self.pending and self.last + 1 not in self.pending:
            now = time.monotonic()
            self.gap_since = self.gap_since or now
            if now - self.gap_since >= GAP_WAIT_S:  # never stored: go on without it
                self.last = min(self.pending) - 1
                self.gap_since = None

    async def _read(self) -> list[tuple[int, dict[str, Any]]]:
        """The stored events after the last one given; none while the store is away."""
        try:
            found = await self.store.events.read(self.run_id, self.last)
        except Exception as exc:
            if not self.away.lost(exc):
                raise
            if self.live is None:
                await asyncio.sleep(self.poll_s)  # a refused connection fails at once
            return []
        self.away.back()
        return found

    def _in_order(self) -> list[dict[str, Any]]:
        ready = []
        while self.last + 1 in self.pending:
            self.last += 1
            ready.append(_numbered(self.last, self.pending.pop(self.last)))
        if ready:
            self.checked = time.monotonic()
        return ready

    def _running(self) -> bool:
        """Whether a live runner holds the run (the store away: assumed, and waited for)."""
        record = self.away.find(self.store.registry, self.run_id)
        return record is None or record.effective_status == "running"


def _numbered(seq: int, event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "seq": seq}


class _Subscription:
    """A run's live channel on Redis."""

    def __init__(self, client: Any, pubsub: Any) -> None:
        self._client = client
        self._pubsub = pubsub

    @classmethod
    async def open(cls, url: str, run_id: str) -> _Subscription | None:
        """Subscribed to the run's channel; None (one warning) when Redis is unreachable."""
        import redis.asyncio as aioredis

        try:
            client = aioredis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=5)
        except ValueError as exc:
            from mirograph.errors import UserInputError

            raise UserInputError(
                f"Redis URL {shown_url(url)} cannot be used ({exc});"
                " write it as redis://HOST:PORT/DB"
            ) from None
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(live.channel(run_id))
        except Exception as exc:
            log.warning(
                "Redis at %s is unreachable (%s): following run %s from the store",
                shown_url(url),
                " ".join(str(exc).split()) or type(exc).__name__,
                run_id,
            )
            await _quietly(pubsub.aclose(), client.aclose())
            return None
        return cls(client, pubsub)

    async def receive(self, wait_s: float) -> list[tuple[int, dict[str, Any]]]:
        """What was published since the last call, waiting up to ``wait_s`` for the first."""
        found = []
        message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=wait_s)
        while message is not None:
            if message.get("type") == "message" and (parsed := live.parse(message["data"])):
                found.append(parsed)
            message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0)
        return found

    async def close(self) -> None:
        await _quietly(self._pubsub.aclose(), self._client.aclose())


async def _quietly(*closing: Any) -> None:
    for awaitable in closing:
        try:
            await awaitable
        except Exception as exc:  # a Redis gone away cannot be closed cleanly
            log.debug("closing a Redis connection: %s", exc)


async def watch_run(
    run_id: str,
    *,
    store_url: str | None = None,
    redis_url: str | None = None,
    console: Console,
) -> RunOutcome:
    """Draw the run's progress on ``console`` as ``mirograph run`` draws it (the lines
    of its calls; on a terminal, the live panel too), from its first event until its
    session ends; the run's outcome then (a killed runner's run reads ``paused``)."""
    from mirograph.flows.runner import RunOutcome

    view = WatchView(run_id, console)
    try:
        async for event in follow_events(
            run_id, store_url=store_url, redis_url=redis_url, say=view.say
        ):
            view(event)
    finally:
        view.stop()
    async with open_store(store_url) as store:
        record = find_run(store.registry, run_id)
    return RunOutcome(record.id, record.effective_status, record.answer, record.reason)


class WatchView:
    """``flows.progress.RunProgress`` fed with followed events: its clock and token
    count are the watched run's (from each session's start event and the events'
    times), so the lines read as the runner's own."""

    def __init__(self, run_id: str, console: Console) -> None:
        from mirograph.flows.progress import RunProgress
        from mirograph.graphs.run_control import RunControl

        self._at: float | None = None
        #: The run's running time when its last session ended (older events lack it).
        self._ended_wall = 0.0
        self.control = RunControl(clock=self._clock)
        self.control.run_id = run_id
        self.progress = RunProgress(self.control, console)
        self.progress.note = "watching · Ctrl-C stops watching, the run goes on"
        self._panel = console.is_terminal
        if self._panel:
            self.progress.__enter__()

    def _clock(self) -> float:
        return time.time() if self._at is None else self._at

    def __call__(self, event: dict[str, Any]) -> None:
        ts = float(event.get("ts") or time.time())
        self._at = ts
        kind = event.get("event")
        if kind in ("run_started", "run_resumed"):
            self.control.begin(
                self.control.run_id,
                tokens_before=int(event.get("tokens") or self.control.tokens),
                wall_before=float(event.get("wall_seconds") or self._ended_wall),
            )
        elif kind == "model_call":
            self.control.tokens += int(event.get("prompt_tokens") or 0)
            self.control.tokens += int(event.get("completion_tokens") or 0)
        elif kind in SESSION_ENDS:
            self._ended_wall = float(event.get("wall_seconds") or self._ended_wall)
        self.progress(event)
        if abs(time.time() - ts) < 2.0:
            self._at = None  # live: the panel's clock runs on

    def say(self, line: str) -> None:
        """A line of the watcher's own (not the run's), dim."""
        self.progress.console.print(line, style="dim", markup=False)

    def stop(self) -> None:
        if self._panel:
            self.progress.stop()
