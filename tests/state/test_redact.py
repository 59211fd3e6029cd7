"""Secrets never reach a stored reason or tool error."""

from __future__ import annotations

import pytest

from mirograph.state.redact import redact


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
