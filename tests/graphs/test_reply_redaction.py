"""A secret of the environment that a model repeats is masked before the reply is
stored, wherever it sits in the reply; key-shaped words are left alone (tools
run on the stored reply and the answer is read from it)."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage

from mirograph.graphs.agent_loop import _redacted

SECRET = "tvly-planted-0123456789"


@pytest.fixture(autouse=True)
def planted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAVILY_API_KEY", SECRET)


def test_every_place_in_a_reply_is_masked() -> None:
    reply = AIMessage(
        content=[{"type": "text", "text": f"the key is {SECRET}"}],
        tool_calls=[{"id": "c1", "name": "google_search", "args": {"q": f"is {SECRET} valid"}}],
        invalid_tool_calls=[{"id": "c2", "name": "x", "args": f'{{"k": "{SECRET}', "error": "e"}],
        additional_kwargs={"reasoning_content": f"I saw {SECRET}", "tool_calls": [SECRET]},
    )
    stored = _redacted(reply)
    assert SECRET not in stored.model_dump_json()
    assert stored.content == [{"type": "text", "text": "the key is ***"}]
    assert stored.tool_calls[0]["args"] == {"q": "is *** valid"}
    assert stored.additional_kwargs["reasoning_content"] == "I saw ***"


def test_a_reply_without_secrets_is_kept_as_it_is() -> None:
    reply = AIMessage(
        "Searching.\n\\boxed{skyscrapers}",
        tool_calls=[
            {"id": "c1", "name": "google_search", "args": {"q": "tallest skyscrapers sk-learn"}}
        ],
    )
    assert _redacted(reply) is reply
