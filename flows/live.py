"""Live copies of runs' events through Redis pub/sub, when Redis is configured.

Redis carries what must be fast and may be lost: each event is PUBLISHed on its
run's channel as soon as the store holds it (``EventWriter.listen``: a file line at
once, a PostgreSQL batch within its ``FLUSH_S``), for ``watch`` and the web view; so
a watcher never sees an event a crash loses, whose number a later session gives
again. Publishing never stops or slows a run: the engine only queues the event
(``publish``), one thread per process sends the queue, and a Redis that is down
or restarting costs one warning, its events go unpublished (they are in the store),
and publishing starts again once it is back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections import deque
from typing import Any

from mirograph.errors import UserInputError
from mirograph.state.store import shown_url

log = logging.getLogger(__name__)

#: The environment variable naming the Redis server for live events (a URL).
REDIS_ENV = "MIROGRAPH_REDIS"
#: Seconds a failing Redis is left alone before the next try.
RETRY_S = 2.0
#: Seconds the sending thread gathers events before it sends them.
BATCH_S = 0.05
#: Events kept waiting for a slow Redis at most (older ones are dropped, still stored).
QUEUE_MAX = 10_000


def redis_url(explicit: str | None = None) -> str | None:
    """The Redis URL given, else ``$MIROGRAPH_REDIS``; None: no live fan-out."""
    return explicit or os.environ.get(REDIS_ENV) or None


def channel(run_id: str) -> str:
    """The pub/sub channel of a run's events."""
    return f"mirograph:events:{run_id}"


def message(seq: int, text: str) -> str:
    """What is published: the event's sequence number and its JSON text."""
    return f'{{"seq": {seq}, "event": {text}}}'


def parse(data: bytes | str) -> tuple[int, dict[str, Any]] | None:
    """(seq, event) of a published message; None for anything else."""
    try:
        body = json.loads(data)
        return int(body["seq"]), dict(body["event"])
    except (ValueError, KeyError, TypeError):
        return None


class LivePublisher:
    """Publishes events on their runs' channels from a thread of its own (one per
    process and Redis URL: ``publisher``)."""

    def __init__(self, url: str) -> None:
        import redis

        self.url = url
        self._client = redis.Redis.from_url(
            url, socket_connect_timeout=1, socket_timeout=1, health_check_interval=30
        )
        self._queue: deque[tuple[str, str]] = deque(maxlen=QUEUE_MAX)
        self._wake = threading.Condition()
        self._sending = 0
        self._down_until = 0.0
        self._warned = False
        self._thread = threading.Thread(target=self._send, name="mirograph-live", daemon=True)
        self._thread.start()

    def publish(self, run_id: str, seq: int, text: str) -> None:
        """Queue one event (the caller never waits on Redis)."""
        with self._wake:
            self._queue.append((channel(run_id), message(seq, text)))
            self._wake.notify()

    async def drain(self, within: float) -> None:
        """Wait, at most ``within`` seconds, for what is queued to be sent."""
        deadline = time.monotonic() + within
        while (self._queue or self._sending) and time.monotonic() < deadline:
            if time.monotonic() < self._down_until:
                return  # Redis is away: nothing will go out now
            await asyncio.sleep(0.01)

    def _send(self) -> None:
        import redis

        while True:
            with self._wake:
                while not self._queue:
                    self._wake.wait()
            # A moment for the turn's other events: one send (and one hand-over of the
            # interpreter's lock, costly on a busy machine) per batch, not per event.
            time.sleep(BATCH_S)
            with self._wake:
                batch = list(self._queue)
                self._queue.clear()
                self._sending = len(batch)
            wait = self._down_until - time.monotonic()
            try:
                if wait > 0:
                    continue  # dropped: Redis was away a moment ago (the store has them)
                pipe = self._client.pipeline(transaction=False)
                for name, body in batch:
                    pipe.publish(name, body)
                pipe.execute()
                if self._warned:
                    log.info("Redis at %s is back: live events are published again", self._shown)
                    self._warned = False
            except (redis.RedisError, OSError) as exc:
                self._down_until = time.monotonic() + RETRY_S
                if not self._warned:
                    self._warned = True
                    log.warning(
                        "live events not published: Redis at %s is unreachable (%s); runs go"
                        " on and their events are stored, retrying every %.0f s",
                        self._shown,
                        " ".join(str(exc).split()) or type(exc).__name__,
                        RETRY_S,
                    )
            finally:
                self._sending = 0

    @property
    def _shown(self) -> str:
        return shown_url(self.url)


_PUBLISHERS: dict[str, LivePublisher] = {}
_LOCK = threading.Lock()


def publisher(url: str | None) -> LivePublisher | None:
    """This process's publisher to the Redis at ``url`` (None: no Redis configured)."""
    if not url:
        return None
    with _LOCK:
        found = _PUBLISHERS.get(url)
        if found is None:
            try:
                found = _PUBLISHERS[url] = LivePublisher(url)
            except ValueError as exc:  # not a URL redis-py can use
                raise UserInputError(
                    f"Redis URL {shown_url(url)} (from {REDIS_ENV} or --redis) cannot be used"
                    f" ({exc}); write it as redis://HOST:PORT/DB"
                ) from None
        return found
