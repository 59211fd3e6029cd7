"""Retrying model calls: exponential backoff with jitter, honouring Retry-After.

The engine retries, not the HTTP client. A stream cut in the middle is only
visible above the client, and a retry counted by the engine is reported in
the run's statistics. Past the limit the error goes up and the run pauses:
a model server that is down is not a reason to fail an investigation.

A server's ``Retry-After`` is honoured up to ``cap_s``; one asking for more
than ``max_wait_s`` is not slept through (a run asleep for a day looks hung
and holds its runner): the run pauses with the wait asked for, to be resumed.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from mirograph.errors import ModelUnavailableError, RetryLaterError

T = TypeVar("T")


@dataclass
class RetryPolicy:
    max_retries: int = 5
    base_s: float = 1.0
    #: The longest single wait, backoff or Retry-After.
    cap_s: float = 60.0
    #: The longest Retry-After worth waiting for in-process; past it the run pauses.
    max_wait_s: float = 300.0
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds before retry ``attempt`` (0-based): full jitter, at least Retry-After,
        at most ``cap_s``."""
        backoff = min(self.cap_s, self.base_s * 2**attempt)
        jittered = self.rng.uniform(backoff / 2, backoff)
        if retry_after is None or not retry_after >= 0:  # absent, or nan from a caller
            return jittered
        return max(jittered, min(retry_after, self.cap_s))

    async def call(
        self, make_call: Callable[[], Awaitable[T]], on_retry: Callable[[], None] | None = None
    ) -> T:
        attempt = 0
        while True:
            try:
                return await make_call()
            except ModelUnavailableError as exc:
                if not exc.retryable:
                    raise
                if exc.retry_after is not None and exc.retry_after > self.max_wait_s:
                    raise RetryLaterError(exc.base_url, exc.detail, exc.retry_after) from exc
                if attempt >= self.max_retries:
                    raise
                await self.sleep(self.delay(attempt, exc.retry_after))
                attempt += 1
                if on_retry is not None:
                    on_retry()
