"""Secrets never reach a stored reason or tool error."""

from __future__ import annotations

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
