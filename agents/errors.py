"""Model-call failures the engine reacts to, independent of the provider library."""

from __future__ import annotations

import openai


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
        super().__init__(
            f"model server at {base_url} is unavailable ({detail}); start one with"
            " `vllm serve miromind-ai/MiroThinker-v1.0-8B --served-model-name mirothinker"
            " --max-model-len 262144 --port 8000` or, to try the engine,"
            " `mirograph sim-model --policy mirograph.agents.sim.policies:tool_loop"
            " --port 8000`"
        )


class ContextOverflowError(ModelCallError):
    """The server rejected the prompt as longer than the model's context."""


def is_model_failure(exc: BaseException) -> bool:
    """A model call that failed for good (bad key, bad request, server gone): the run
    stops, resumable once fixed, rather than a sub-agent's failure being papered over."""
    return isinstance(exc, (ModelCallError, openai.APIError))


def classify_model_error(exc: BaseException, base_url: str) -> ModelCallError | None:
    """Map a provider exception onto what the engine does about it, or None."""
    if isinstance(exc, ModelCallError):
        return exc
    if isinstance(exc, openai.BadRequestError) and "maximum context length" in str(exc):
        return ContextOverflowError(_one_line(exc))
    if isinstance(exc, openai.APITimeoutError):
        return ModelUnavailableError(base_url, "request timed out")
    if isinstance(exc, openai.APIConnectionError):
        return ModelUnavailableError(base_url, "connection refused or dropped")
    if isinstance(exc, openai.APIStatusError) and (
        exc.status_code in (408, 409, 429) or exc.status_code >= 500
    ):
        return ModelUnavailableError(
            base_url,
            f"HTTP {exc.status_code}: {_one_line(exc)}",
            retry_after=_retry_after(exc),
        )
    if isinstance(exc, openai.NotFoundError):
        return ModelUnavailableError(
            base_url, f"HTTP 404: {_one_line(exc)}; check the model name", retryable=False
        )
    return None


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after") if exc.response is not None else None
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
