"""A run's events as server-sent events: what makes the page live.

``follow_events`` (the one follower ``watch`` uses) gives the stored events after
the page's last one, then the live ones (Redis where configured, else the store
polled), and ends with the session. Each becomes one SSE message whose ``id`` is
its sequence number, so a browser that reconnects asks for what it missed
(``Last-Event-ID``). A comment every ``KEEPALIVE_S`` keeps proxies from closing a
quiet stream; an ``end`` message says the session is over (the page then watches
the run's status and opens a new stream when it runs again).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from mirograph.errors import MirographError
from mirograph.flows.watch import follow_events
from mirograph.state.redact import scrub

#: Seconds of quiet after which a comment is sent.
KEEPALIVE_S = 15.0
#: Seconds between two reads of the store without Redis: a new turn is on the page
#: within a second (watch's 0.5 s, plus the page's reads, came to 1.3 s; a read of
#: the events file, or one indexed query, costs little; at most MAX_STREAMS follow).
POLL_S = 0.2
#: Events buffered between the follower and a slow browser.
BUFFER = 1000


def sse(data: Any, *, event: str | None = None, seq: int | None = None) -> str:
    """One SSE message of JSON ``data``."""
    head = f"event: {event}\n" if event else ""
    head += f"id: {seq}\n" if seq is not None else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


async def event_stream(
    run_id: str, after: int, store_url: str | None, redis_url: str | None
) -> AsyncIterator[str]:
    """The SSE text of ``run_id``'s events after ``after``, until its session ends."""
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(BUFFER)

    async def pump() -> None:
        try:
            async for event in follow_events(
                run_id, store_url=store_url, redis_url=redis_url, after=after, poll_s=POLL_S
            ):
                await queue.put(("event", event))
            await queue.put(("end", None))
        except MirographError as exc:
            await queue.put(("error", str(exc)))

    task = asyncio.create_task(pump())
    try:
        yield ": following\n\n"
        while True:
            try:
                kind, item = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            if kind == "event":
                yield sse(scrub(item), seq=item.get("seq"))
            elif kind == "end":
                yield sse({"run_id": run_id}, event="end")
                return
            else:
                yield sse({"error": item}, event="failure")
                return
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
