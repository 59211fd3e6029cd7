"""Retrying model calls: exponential backoff with jitter, honouring Retry-After.

The engine retries, not the HTTP client. A stream cut in the middle is only
visible above the client, and a retry counted by the engine is reported in
the run's statistics. Past the limit the error goes up and the run pauses:
a model server that is down is not a reason to fail an investigation.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from mirograph.agents.errors import ModelUnavailableError

T = TypeVar("T")


@dataclass
class RetryPolicy:
    max_retries: int = 5
    base_s: float = 1.0
    cap_s: float = 60.0
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds before retry ``attempt`` (0-based): full jitter, at least Retry-After."""
        backoff = min(self.cap_s, self.base_s * 2**attempt)
        return max(self.rng.uniform(backoff / 2, backoff), retry_after or 0.0)

    async def call(
        self, make_call: Callable[[], Awaitable[T]], on_retry: Callable[[], None] | None = None
    ) -> T:
        attempt = 0
        while True:
            try:
                return await make_call()
            except ModelUnavailableError as exc:
                if not exc.retryable or attempt >= self.max_retries:
                    raise
                await self.sleep(self.delay(attempt, exc.retry_after))
                attempt += 1
                if on_retry is not None:
                    on_retry()
