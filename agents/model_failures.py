"""Provider (OpenAI client) exceptions classified into mirograph's error tree.

The error classes live in ``mirograph.errors`` (no provider library there: the
command line classifies with them); here is what maps an ``openai`` exception
onto them, and reads a ``Retry-After`` header, so that the engine reacts to a
failure by its kind, never by the provider's class.
"""

from __future__ import annotations

import email.utils
import math
import time
from datetime import UTC

import openai

from mirograph.errors import ContextOverflowError, ModelCallError, ModelUnavailableError
from mirograph.text import first_line


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait: delta-seconds or an HTTP-date.

    None when absent or unreadable (garbage, ``nan``, negative): the backoff
    alone decides. ``inf`` stays infinite and a far date stays large: the
    retry policy will not sleep that long, it pauses the run.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until(text, time.time() if now is None else now)
    if math.isnan(seconds) or seconds < 0:
        return None
    return seconds


def _seconds_until(http_date: str, now: float) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, source unknown
        when = when.replace(tzinfo=UTC)
    return max(when.timestamp() - now, 0.0)


def classify_model_error(exc: BaseException, base_url: str) -> ModelCallError | None:
    """Map a provider exception onto what the engine does about it, or None."""
    if isinstance(exc, ModelCallError):
        return exc
    if isinstance(exc, openai.BadRequestError) and "maximum context length" in str(exc):
        return ContextOverflowError(first_line(exc, 300, empty=type(exc).__name__))
    if isinstance(exc, openai.APITimeoutError):
        return ModelUnavailableError(base_url, "request timed out")
    if isinstance(exc, openai.APIConnectionError):
        return ModelUnavailableError(base_url, "connection refused or dropped")
    if isinstance(exc, openai.APIStatusError) and (
        exc.status_code in (408, 409, 429) or exc.status_code >= 500
    ):
        return ModelUnavailableError(
            base_url,
            f"HTTP {exc.status_code}: {first_line(exc, 300, empty=type(exc).__name__)}",
            retry_after=_retry_after(exc),
        )
    if isinstance(exc, openai.NotFoundError):
        return ModelUnavailableError(
            base_url,
            f"HTTP 404: {first_line(exc, 300, empty=type(exc).__name__)}; check the model name",
            retryable=False,
        )
    if type(exc) is openai.APIError:
        # The SDK raises the bare class for an ``{"error": ...}`` event inside a
        # 200 stream: vLLM sends one when its engine fails mid-reply.
        return ModelUnavailableError(
            base_url, f"error in stream: {first_line(exc, 300, empty=type(exc).__name__)}"
        )
    return None


def _retry_after(exc: openai.APIStatusError) -> float | None:
    headers = exc.response.headers if exc.response is not None else {}
    return parse_retry_after(headers.get("retry-after"))
