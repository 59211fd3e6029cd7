"""What a simulated model says: policies, their results, and loading them by name.

The simulated server is stateless: a policy sees one request body and returns
the reply text, a richer ``SimReply``, or a ``Fault`` to inject. Policies are
named ``module:function`` on the command line so that tests, benchmarks and the
demo can script the model without touching the server.

``Fault`` fields:

- ``status``: HTTP status of an OpenAI-style error response (default 500).
- ``message``: the error text; for a cut stream or ``no_done``, the text sent.
- ``retry_after``: seconds for a ``Retry-After`` header, if any.
- ``delay_ms``: wait this long before answering (to trip client timeouts).
- ``cut_stream_after_chars``: start a 200 response, send that many characters
  and drop the connection (also when ``status`` is 0).
- ``malformed``: answer 200 with a body a real server should never send; the
  mode names what is wrong (``status`` is then ignored). Each mode renders
  for plain and streamed requests alike, so one policy serves both:

  ================  ===============================  ================================
  mode              plain request                    streamed request
  ================  ===============================  ================================
  ``invalid_json``  body that is not JSON            a ``data:`` event that is not JSON
  ``no_choices``    ``"choices": []``                chunks with ``"choices": []`` only
  ``no_message``    a choice without ``message``     a chunk choice without ``delta``
  ``null_content``  ``content: null``, no tool calls every delta's ``content`` null
  ``garbage_sse``   as ``invalid_json``              lines that are not SSE JSON events
  ``empty_stream``  an empty body                    ``data: [DONE]`` and nothing else
  ``no_done``       a JSON body cut short (clean     content chunks, then a clean end:
                    close, no dropped connection)    no finish_reason, usage, [DONE]
  ``bad_usage``     ``"usage": "abc"``               a last chunk with that usage
  ``negative_usage``
                    token counts below zero          a last chunk with such counts
  ``error_event``   ``{"error": ...}`` as the body   content, then vLLM's error event
                                                     (``message``) and [DONE]
  ================  ===============================  ================================
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import parse_qsl

from mirograph.errors import PolicySpecError
from mirograph.text import describe

__all__ = ["MALFORMED_MODES", "Fault", "Policy", "PolicyResult", "SimReply", "load_policy"]

#: What a ``Fault(malformed=...)`` can get wrong (see the module docstring).
MALFORMED_MODES = (
    "invalid_json",
    "no_choices",
    "no_message",
    "null_content",
    "garbage_sse",
    "empty_stream",
    "no_done",
    "bad_usage",
    "negative_usage",
    "error_event",
)


@dataclass(frozen=True)
class SimReply:
    """A reply with its thinking apart, or cut by the length limit.

    ``reasoning_content`` is the thinking the model wrote before ``</think>``:
    a server with a reasoning parser returns it apart, one without returns it
    inside the content, as vLLM does (``agents/sim/vllm.py``).
    """

    content: str
    reasoning_content: str | None = None
    finish_reason: str = "stop"


@dataclass(frozen=True)
class Fault:
    """A failure to inject instead of a reply.

    ``status`` is the HTTP status of an OpenAI-style error response, sent after
    ``delay_ms``. When ``cut_stream_after_chars`` is set (or ``status`` is 0) the
    server instead starts a 200 response, sends that many characters of content
    (drawn from ``message``) and drops the connection, so the client sees a
    broken stream rather than a clean end. ``malformed`` (one of
    ``MALFORMED_MODES``) answers 200 with a body that breaks the protocol.
    """

    status: int = 500
    message: str = "simulated server error"
    retry_after: float | None = None
    delay_ms: int = 0
    cut_stream_after_chars: int | None = None
    malformed: str | None = None

    def __post_init__(self) -> None:
        if self.malformed is not None and self.malformed not in MALFORMED_MODES:
            modes = ", ".join(MALFORMED_MODES)
            raise ValueError(f"unknown malformed mode {self.malformed!r}; use one of {modes}")

    @property
    def cuts_stream(self) -> bool:
        """True when this fault breaks a started response instead of erroring."""
        if self.malformed is not None:
            return False
        return self.cut_stream_after_chars is not None or self.status == 0


PolicyResult: TypeAlias = str | SimReply | Fault
Policy: TypeAlias = Callable[[dict[str, Any]], PolicyResult | Awaitable[PolicyResult]]

_SHAPE = "expected 'module:function' optionally followed by '?key=value&...'"


def load_policy(spec: str) -> Policy:
    """Import ``module:function`` and bind ``?key=value`` pairs as keyword arguments;
    a spec that does not load is a one-line ``PolicySpecError`` (bad input, exit 2)."""
    target, _, query = spec.partition("?")
    module_name, sep, attr_path = target.partition(":")
    if not sep or not module_name.strip() or not attr_path.strip():
        raise PolicySpecError(f"invalid policy spec {spec!r}: {_SHAPE}")
    try:
        obj: Any = importlib.import_module(module_name.strip())
    except Exception as exc:  # any import-time failure is a bad spec to the caller
        raise PolicySpecError(f"invalid policy spec {spec!r}: {describe(exc)} ({_SHAPE})") from exc
    for name in attr_path.strip().split("."):
        try:
            obj = getattr(obj, name)
        except AttributeError as exc:
            raise PolicySpecError(
                f"invalid policy spec {spec!r}: {module_name} has no attribute {attr_path!r} "
                f"({_SHAPE})"
            ) from exc
    if not callable(obj):
        raise PolicySpecError(
            f"invalid policy spec {spec!r}: {attr_path!r} is not callable ({_SHAPE})"
        )
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise PolicySpecError(
            f"invalid policy spec {spec!r}: bad query {query!r} ({_SHAPE})"
        ) from exc
    if not pairs:
        return obj  # type: ignore[no-any-return]
    return functools.partial(obj, **{key: _convert(value) for key, value in pairs})


def _convert(value: str) -> Any:
    """Turn a query value into an int, float or bool where it parses as one."""
    lowered = value.lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value
