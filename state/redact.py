"""Keep secrets out of what is stored or shown: run reasons, tool errors, reports.

Provider errors may quote the API key they rejected (``Incorrect API key
provided: sk-...``); a tool may echo its environment. Text that is stored
passes through ``redact`` first; a model's reply through ``redact_reply``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import AIMessage

#: Environment variables whose values are secrets.
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|_PAT$|^PAT_", re.IGNORECASE)
#: Shapes of well-known API keys, redacted even when not in this environment: a
#: provider prefix, a separator, then 12+ key characters with a digit among them
#: (so words like "skyscrapers" or "hf_transfer-enabled" are left alone).
KEY_SHAPE = re.compile(
    r"\b(?:sk|tvly|hf|ghp|gho|xox[abp])[-_](?=[A-Za-z0-9_\-]*\d)[A-Za-z0-9_\-]{12,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
)
MASK = "***"
#: A password in a URL: ``scheme://user:PASSWORD@host`` (the last ``@`` of the
#: authority: a password may hold a raw ``@`` or ``/``) and ``?password=...``.
URL_PASSWORD = re.compile(
    r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@?#]*:)[^\s?#]*@(?=[^\s@]*$|[^\s@/?#]*[/?#\s:])"
)
URL_PASSWORD_PARAM = re.compile(r"([?&]password=)[^&\s#]*", re.IGNORECASE)


def redact(text: str, env: Mapping[str, str] | None = None, *, shapes: bool = True) -> str:
    """``text`` with secret environment values and (with ``shapes``) key-shaped strings
    masked. Long tool outputs skip the shape scan: it costs ~0.2 ms per 8 KB."""
    for value in secret_values(env):
        if value in text:
            text = text.replace(value, MASK)
    return KEY_SHAPE.sub(MASK, without_url_passwords(text)) if shapes else text


def without_url_passwords(text: str) -> str:
    """``text`` with the password of every URL in it masked (a store URL named in an
    error, a command line in a crash report)."""
    if "://" not in text:
        return text
    text = URL_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    return URL_PASSWORD_PARAM.sub(lambda m: f"{m.group(1)}{MASK}", text)


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """The values of ``env``'s secret variables (``os.environ`` by default).

    Every event and reply is redacted, so the process environment's list is
    cached and read again only when the environment changes (decoding it
    costs ~40 µs a call).
    """
    if env is None or env is os.environ:
        raw = getattr(os.environ, "_data", None)
        if isinstance(raw, dict):
            key = tuple(raw.items())
            if _cache is None or _cache[0] != key:
                _remember(key, _secrets(os.environ))
            assert _cache is not None
            return _cache[1]
        env = os.environ
    return _secrets(env)


def _secrets(env: Mapping[str, str]) -> list[str]:
    return [v for name, v in env.items() if len(v) >= 8 and SECRET_NAME.search(name)]


_cache: tuple[tuple[object, ...], list[str]] | None = None


def _remember(key: tuple[object, ...], values: list[str]) -> None:
    global _cache
    _cache = (key, values)


def scrub(value: Any, *, shapes: bool = True) -> Any:
    """``value`` with every string in it redacted (dicts, lists and tuples walked)."""
    if isinstance(value, str):
        return redact(value, shapes=shapes) if len(value) >= 8 else value  # none is shorter
    if isinstance(value, Mapping):
        return {k: scrub(v, shapes=shapes) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, shapes=shapes) for v in value]
    return value


def redact_reply(reply: AIMessage) -> AIMessage:
    """The reply as it is stored: a secret of this environment that the model
    repeated (one pasted in a question, say) is masked. Only exact values are
    masked, never key-shaped words: the stored reply is what tools run and what
    the answer is read from. A reply without secrets is returned as it is."""
    secrets = secret_values()
    fields = {
        "content": reply.content,
        "tool_calls": reply.tool_calls,
        "invalid_tool_calls": reply.invalid_tool_calls,
        "additional_kwargs": reply.additional_kwargs,
    }
    if not secrets or not any(
        secret in json.dumps(fields, ensure_ascii=False, default=str) for secret in secrets
    ):
        return reply
    return reply.model_copy(update=scrub(fields, shapes=False))
