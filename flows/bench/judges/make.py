"""``--judge SPEC`` to a judge, checked before any attempt runs.

``exact`` is GAIA's rules; a key of the flow's ``models:`` reuses that endpoint; and
``MODEL@URL`` names any OpenAI-compatible endpoint (its key from
``MIROGRAPH_JUDGE_API_KEY``, else ``OPENAI_API_KEY``). Either model is asked as a plain
chat model (native protocol, no tools) at temperature 0, whatever protocol the flow
speaks to it: the judge writes prose, not tool calls.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from mirograph.agents.config import ModelConfig
from mirograph.agents.models import build_native_model
from mirograph.errors import UserInputError
from mirograph.flows.bench.judges import Judge
from mirograph.flows.bench.judges.exact import ExactJudge
from mirograph.flows.bench.judges.llm import LlmJudge
from mirograph.state.store import shown_url

#: Where a ``MODEL@URL`` judge's API key is read from, first set wins.
JUDGE_KEY_ENVS = ("MIROGRAPH_JUDGE_API_KEY", "OPENAI_API_KEY")

#: What a judge asks of any endpoint: deterministic, no vLLM-only sampling parameters.
_PLAIN_SETTINGS = {
    "protocol": "native",
    "temperature": 0.0,
    "top_p": 1.0,
    "repetition_penalty": 1.0,
    "streaming": False,
}


def make_judge(spec: str, models: Mapping[str, ModelConfig]) -> Judge:
    """The judge ``spec`` names; a one-line ``UserInputError`` when it names none."""
    spec = spec.strip()
    if spec == "exact":
        return ExactJudge()
    if spec in models:
        return _llm_judge(judge_config(models[spec]), spec)
    model, at, url = spec.partition("@")
    if not at:
        shown = shown_url(spec).split("?")[0]
        raise UserInputError(f"unknown judge {shown!r}: {_accepted(models)}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (read: a bad port or IPv6 address raises here)
    except ValueError as exc:
        raise UserInputError(f"judge URL cannot be read ({exc}): {_accepted(models)}") from None
    # Named (in results, summary.json, errors) without a password or query it may carry.
    shown = f"{model}@{shown_url(parts._replace(query='', fragment='').geturl())}"
    if parts.query:
        shown += "?…"
    if not model or parts.scheme not in {"http", "https"} or not parts.hostname:
        raise UserInputError(
            f"judge {shown!r} is not MODEL@URL with an http(s) URL: {_accepted(models)}"
        )
    config = ModelConfig(base_url=url, model=model, api_key_env=_judge_key_env(), provider="openai")
    return _llm_judge(judge_config(config), shown, parts.password)


def judge_config(config: ModelConfig) -> ModelConfig:
    """``config`` as a plain chat model at temperature 0 (same endpoint, model and key).

    A ``mirothinker`` endpoint is vLLM's OpenAI-compatible server, so it is asked
    through the ``openai`` provider.
    """
    provider = config.provider if config.protocol == "native" else "openai"
    return config.model_copy(update={**_PLAIN_SETTINGS, "provider": provider})


def _llm_judge(config: ModelConfig, name: str, password: str | None = None) -> LlmJudge:
    """The judge, told its secrets (key, URL password) to mask in what it records."""
    key = config.api_key()
    secrets = tuple(s for s in (key if key != "EMPTY" else None, password) if s)
    return LlmJudge(build_native_model(config), name, retry_delay_s=_retry_delay(), secrets=secrets)


#: Seconds a judge waits after a failed call before it asks again (doubled each time).
RETRY_DELAY_ENV = "MIROGRAPH_JUDGE_RETRY_DELAY_S"


def _retry_delay() -> float:
    raw = os.environ.get(RETRY_DELAY_ENV, "").strip()
    try:
        delay = float(raw) if raw else 1.0
    except ValueError:
        delay = -1.0
    if not 0 <= delay <= 600:
        raise UserInputError(
            f"{RETRY_DELAY_ENV}={raw!r} is not a number of seconds from 0 to 600; fix or unset it"
        )
    return delay


def _judge_key_env() -> str:
    return next((name for name in JUDGE_KEY_ENVS if os.environ.get(name)), JUDGE_KEY_ENVS[0])


def _accepted(models: Mapping[str, ModelConfig]) -> str:
    keys = ", ".join(sorted(models)) or "none"
    return (
        f"use 'exact', a model of the flow (its models: {keys}) or MODEL@URL for an"
        " OpenAI-compatible endpoint (e.g. gpt-4.1-mini@https://api.openai.com/v1)"
    )
