"""Model-call failures the engine reacts to, independent of the provider library."""

from __future__ import annotations

import email.utils
import math
import time
from datetime import UTC
from urllib.parse import urlsplit

import openai

from mirograph.text import first_line

#: The port a hint names when the base URL gives none we can read.
DEFAULT_PORT = 8000


class ModelCallError(RuntimeError):
    """A model call failed after the client's own retries."""


class ModelUnavailableError(ModelCallError):
    """The server could not be reached or kept failing: the run pauses, resumable."""

    def __init__(
        self,
        base_url: str,
        detail: str,
        *,
        retryable: bool = True,
        retry_after: float | None = None,
    ) -> None:
        self.base_url = base_url
        self.detail = detail
        self.retryable = retryable
        self.retry_after = retry_after
        super().__init__(self.describe())

    def describe(self) -> str:
        """The one line a user reads when the run pauses on this error."""
        return (
            f"model server at {self.base_url} is unavailable ({self.detail});"
            f" {start_hint(self.base_url)}"
        )


class MalformedResponseError(ModelUnavailableError):
    """The server answered, but not in the protocol: retried like any server fault,
    then the run pauses with what was wrong (no hint to start a server that is up)."""

    def __init__(self, base_url: str, what: str) -> None:
        super().__init__(base_url, f"malformed response: {what}")

    def describe(self) -> str:
        return f"model server at {self.base_url} sent a {self.detail}; check its logs, then resume"


class RetryLaterError(ModelUnavailableError):
    """The server asked for a longer wait than is worth sleeping through in-process:
    the run pauses instead, with the wait it asked for, and is resumed later."""

    def __init__(self, base_url: str, detail: str, wait_s: float) -> None:
        super().__init__(base_url, detail, retryable=False, retry_after=wait_s)

    def describe(self) -> str:
        wait = (
            "an unbounded time" if math.isinf(self.retry_after or 0) else f"{self.retry_after:g} s"
        )
        return (
            f"model server at {self.base_url} asked to retry after {wait} ({self.detail});"
            " resume later"
        )


class ContextOverflowError(ModelCallError):
    """The server rejected the prompt as longer than the model's context."""


class TaskFailedError(RuntimeError):
    """An agent's task itself cannot be done: not the engine, the store or a server failing.

    Raised inside a sub-agent, it becomes a report of the failure to the
    parent, whose investigation goes on; every other exception stops the run.
    """


def start_hint(base_url: str) -> str:
    """How to start a server where ``base_url`` points: a real model, or the simulated one."""
    port = server_port(base_url)
    return (
        "start one with `vllm serve miromind-ai/MiroThinker-v1.0-8B --served-model-name"
        f" mirothinker --max-model-len 262144 --port {port}` or, to try the engine,"
        f" `mirograph sim-model --policy mirograph.agents.sim.policies:tool_loop --port {port}`"
    )


def server_port(base_url: str) -> int:
    """The port ``base_url`` names (its scheme's default when it names none)."""
    try:
        parts = urlsplit(base_url)
        port = parts.port
    except ValueError:  # a port out of range or not a number
        return DEFAULT_PORT
    if port is not None:
        return port
    return {"http": 80, "https": 443}.get(parts.scheme, DEFAULT_PORT)


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
        return ContextOverflowError(first_line(exc))
    if isinstance(exc, openai.APITimeoutError):
        return ModelUnavailableError(base_url, "request timed out")
    if isinstance(exc, openai.APIConnectionError):
        return ModelUnavailableError(base_url, "connection refused or dropped")
    if isinstance(exc, openai.APIStatusError) and (
        exc.status_code in (408, 409, 429) or exc.status_code >= 500
    ):
        return ModelUnavailableError(
            base_url,
            f"HTTP {exc.status_code}: {first_line(exc)}",
            retry_after=_retry_after(exc),
        )
    if isinstance(exc, openai.NotFoundError):
        return ModelUnavailableError(
            base_url, f"HTTP 404: {first_line(exc)}; check the model name", retryable=False
        )
    if type(exc) is openai.APIError:
        # The SDK raises the bare class for an ``{"error": ...}`` event inside a
        # 200 stream: vLLM sends one when its engine fails mid-reply.
        return ModelUnavailableError(base_url, f"error in stream: {first_line(exc)}")
    return None


def _retry_after(exc: openai.APIStatusError) -> float | None:
    headers = exc.response.headers if exc.response is not None else {}
    return parse_retry_after(headers.get("retry-after"))
