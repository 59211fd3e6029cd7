"""Secrets never reach a stored reason, tool error or model reply."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage

from mirograph.state.redact import redact, redact_reply


def test_secret_environment_values_are_masked() -> None:
    env = {
        "TAVILY_API_KEY": "plain-secret-value",
        "API_KEY_PROD": "another-secret-1",
        "HOME": "/root",
        "MY_TOKEN": "abc",
    }
    text = "key plain-secret-value rejected; prod another-secret-1; home /root; token abc"
    assert redact(text, env) == "key *** rejected; prod ***; home /root; token abc"  # short stay


def test_key_shaped_strings_are_masked_without_the_environment() -> None:
    text = "Error code: 401 - Incorrect API key provided: sk-secret-1234567. Check it."
    assert redact(text, {}) == "Error code: 401 - Incorrect API key provided: ***. Check it."
    assert redact("tvly-dev-abcdefgh1234 and sk-ab", {}) == "*** and sk-ab"


def test_a_secret_set_or_removed_while_running_is_seen_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = "token sup3r-s3cret-value in use"
    assert redact(text, shapes=False) == text
    monkeypatch.setenv("SERVICE_TOKEN", "sup3r-s3cret-value")
    assert redact(text, shapes=False) == "token *** in use"
    monkeypatch.setenv("SERVICE_TOKEN", "another-s3cret-value")
    assert redact(text, shapes=False) == text
    monkeypatch.delenv("SERVICE_TOKEN")
    assert redact("another-s3cret-value", shapes=False) == "another-s3cret-value"


@pytest.mark.parametrize(
    "text",
    [
        "tallest skyscrapers 2024",
        "https://en.wikipedia.org/wiki/skyscraper-index",
        "a skillfully made plan",
        "hf_transfer-enabled downloads",
        "pip install sk-learn-extra",
    ],
)
def test_ordinary_words_are_not_taken_for_keys(text: str) -> None:
    assert redact(text, {}) == text


@pytest.mark.parametrize(
    "key",
    [
        "sk-proj-Ab3dEfGh1jKlMnOp",
        "tvly-dev-abcdefgh1234",
        "hf_AbCdEfGh1JkLmNoPqRsT",
        "ghp_0123456789abcdefABCDEF",
        "AKIAIOSFODNN7EXAMPLE",
    ],
)
def test_key_shapes_are_masked(key: str) -> None:
    assert redact(f"used {key} here", {}) == "used *** here"


PLANTED = "tvly-planted-0123456789"


def test_every_place_in_a_reply_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret of the environment that a model repeats is masked before the
    reply is stored, wherever it sits in the reply."""
    monkeypatch.setenv("TAVILY_API_KEY", PLANTED)
    reply = AIMessage(
        content=[{"type": "text", "text": f"the key is {PLANTED}"}],
        tool_calls=[{"id": "c1", "name": "google_search", "args": {"q": f"is {PLANTED} valid"}}],
        invalid_tool_calls=[{"id": "c2", "name": "x", "args": f'{{"k": "{PLANTED}', "error": "e"}],
        additional_kwargs={"reasoning_content": f"I saw {PLANTED}", "tool_calls": [PLANTED]},
    )
    stored = redact_reply(reply)
    assert PLANTED not in stored.model_dump_json()
    assert stored.content == [{"type": "text", "text": "the key is ***"}]
    assert stored.tool_calls[0]["args"] == {"q": "is *** valid"}
    assert stored.additional_kwargs["reasoning_content"] == "I saw ***"


def test_a_reply_without_secrets_is_kept_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """Key-shaped words are left alone: tools run on the stored reply and the
    answer is read from it."""
    monkeypatch.setenv("TAVILY_API_KEY", PLANTED)
    reply = AIMessage(
        "Searching.\n\\boxed{skyscrapers}",
        tool_calls=[
            {"id": "c1", "name": "google_search", "args": {"q": "tallest skyscrapers sk-learn"}}
        ],
    )
    assert redact_reply(reply) is reply


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://u:pw@h:5/db", "postgresql://u:***@h:5/db"),
        (
            "postgresql://bob@h/db?password=TOP&sslmode=a",
            "postgresql://bob@h/db?password=***&sslmode=a",
        ),
        ("postgresql:///db?host=x&Password=TOP", "postgresql:///db?host=x&Password=***"),
        ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),  # a raw @ in the password
        (
            "postgresql://u@h/db and https://example.com/a:b",
            "postgresql://u@h/db and https://example.com/a:b",
        ),
        (
            "command: mirograph show x --store postgresql://pg:hunter2@127.0.0.1:5/f",
            "command: mirograph show x --store postgresql://pg:***@127.0.0.1:5/f",
        ),
    ],
)
def test_a_urls_password_is_masked_wherever_it_appears(text: str, shown: str) -> None:
    assert redact(text, {}) == shown
