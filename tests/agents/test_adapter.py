"""Adapters declare what they offer by deriving from a capability, not by their class."""

from __future__ import annotations

from unittest.mock import Mock

import pytest
from langchain_core.callbacks import AsyncCallbackManager
from langchain_core.tracers.context import tracing_v2_enabled
from langchain_core.tracers.stdout import ConsoleCallbackHandler

from mirograph.agents.adapter import CountsTokens, RepliesDirectly, observed
from mirograph.agents.config import ModelConfig
from mirograph.agents.models import build_chat_model


def test_mirothinker_counts_tokens_and_replies_directly() -> None:
    model = build_chat_model(ModelConfig(base_url="http://127.0.0.1:9/v1"))
    assert isinstance(model, CountsTokens) and isinstance(model, RepliesDirectly)


def test_a_native_model_offers_neither_and_goes_through_langchain() -> None:
    config = ModelConfig(protocol="native", base_url="http://127.0.0.1:9/v1", max_retries=0)
    model = build_chat_model(config)
    assert not isinstance(model, CountsTokens) and not isinstance(model, RepliesDirectly)


def test_a_method_of_the_same_name_is_not_a_declaration() -> None:
    """A user's chat model may have its own ``areply``: it is not called directly."""

    class Duck:
        def areply(self, text: str) -> str:
            return text

        async def count_tokens(self, messages: object) -> int:
            return 0

    assert not isinstance(Duck(), RepliesDirectly) and not isinstance(Duck(), CountsTokens)


def test_a_call_is_observed_by_a_handler_or_a_tracer(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LANGSMITH_TRACING", "LANGSMITH_TRACING_V2", "LANGCHAIN_TRACING_V2"):
        monkeypatch.delenv(name, raising=False)
    assert not observed({})
    assert not observed({"callbacks": AsyncCallbackManager(handlers=[])})
    assert observed({"callbacks": [ConsoleCallbackHandler()]})
    assert observed({"callbacks": AsyncCallbackManager(handlers=[ConsoleCallbackHandler()])})
    with tracing_v2_enabled(client=Mock()):  # a client never asked: nothing is traced here
        assert observed({})
