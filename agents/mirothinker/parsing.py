"""Parse MiroThinker's XML-like tool calls out of a reply's text.

The weights do not use native function calling: a call is written into the
reply as ``<use_mcp_tool>`` / ``<server_name>`` / ``<tool_name>`` /
``<arguments>`` tags (see docs/mirothinker-protocol.md). This module turns a
reply into its visible content, its parsable calls, its malformed calls, and a
flag for leftover tag fragments, which together decide whether the reply is
answered with tool results or rolled back.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import json_repair

__all__ = [
    "MalformedCall",
    "ParsedCall",
    "ParsedReply",
    "parse_reply",
    "render_call",
]

CALL_OPEN = "<use_mcp_tool>"

# The head of a call, up to and including ``<arguments>``. Names may not hold
# ``<`` so that a broken head cannot swallow the next call's tags.
_HEAD_RE = re.compile(
    r"<use_mcp_tool>\s*"
    r"<server_name>(?P<server>[^<]*)</server_name>\s*"
    r"<tool_name>(?P<tool>[^<]*)</tool_name>\s*"
    r"<arguments>",
)
_ARGS_CLOSE = "</arguments>"
# What may follow ``</arguments>`` for it to end a call: the closing tag, the
# next call (closing tag forgotten), or the end of the reply.
_TAIL_RE = re.compile(r"\s*(?:</use_mcp_tool>|(?=<use_mcp_tool>)|\Z)")
# Any fragment of the four protocol tags, opening or closing, even truncated.
_TAG_FRAGMENT_RE = re.compile(r"</?\s*(?:use_mcp_tool|server_name|tool_name|arguments)\b")
_EMPTY_OBJECT_RE = re.compile(r"\{\s*\}")


@dataclass(frozen=True)
class ParsedCall:
    """A call whose arguments parsed into a JSON object."""

    server: str
    tool: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class MalformedCall:
    """A call with a complete head whose arguments could not be read."""

    server: str
    tool: str
    raw_arguments: str
    error: str


@dataclass(frozen=True)
class ParsedReply:
    """Everything the engine needs to decide what to do with one reply."""

    content: str
    calls: list[ParsedCall]
    malformed: list[MalformedCall]
    stray_tags: bool

    @property
    def needs_rollback(self) -> bool:
        """A reply that tried to call a tool and failed is resampled, not answered."""
        return not self.calls and (bool(self.malformed) or self.stray_tags)


def render_call(server: str, tool: str, arguments: dict[str, Any]) -> str:
    """Write a call in the canonical multi-line shape the weights were trained on."""
    return (
        f"{CALL_OPEN}\n"
        f"<server_name>{server}</server_name>\n"
        f"<tool_name>{tool}</tool_name>\n"
        f"<arguments>\n"
        f"{json.dumps(arguments, ensure_ascii=False)}\n"
        f"</arguments>\n"
        f"</use_mcp_tool>"
    )


def parse_reply(text: str) -> ParsedReply:
    """Split a reply into visible content, calls, malformed calls and stray tags."""
    calls: list[ParsedCall] = []
    malformed: list[MalformedCall] = []
    parsed_spans: list[tuple[int, int]] = []
    pos = 0
    while (head := _HEAD_RE.search(text, pos)) is not None:
        server, tool = head["server"].strip(), head["tool"].strip()
        found = _find_arguments_end(text, head.end())
        if found is None:
            raw = text[head.end() :].strip()
            malformed.append(MalformedCall(server, tool, raw, "no closing </arguments> tag"))
            break
        args_end, call_end = found
        raw = text[head.end() : args_end].strip()
        result = _read_call(server, tool, raw)
        if isinstance(result, ParsedCall):
            calls.append(result)
            parsed_spans.append((head.start(), call_end))
        else:
            malformed.append(result)
        pos = call_end
    return ParsedReply(
        content=_visible_content(text),
        calls=calls,
        malformed=malformed,
        stray_tags=_has_stray_tags(text, parsed_spans),
    )


def _visible_content(text: str) -> str:
    """The protocol's visible content: everything before the first call tag."""
    cut = text.find(CALL_OPEN)
    return (text if cut < 0 else text[:cut]).rstrip()


def _find_arguments_end(text: str, start: int) -> tuple[int, int] | None:
    """Locate the ``</arguments>`` that ends this call; return (args end, call end).

    ``</arguments>`` may also occur inside a JSON string value, so a close that
    is followed by ``</use_mcp_tool>`` (or the next call, or the end of the
    reply) is preferred, and among those the first whose body is valid JSON.
    """
    closes = [m.start() for m in re.finditer(re.escape(_ARGS_CLOSE), text[start:])]
    if not closes:
        return None
    ends: list[tuple[int, int]] = []
    for offset in closes:
        args_end = start + offset
        tail = _TAIL_RE.match(text, args_end + len(_ARGS_CLOSE))
        if tail is not None:
            ends.append((args_end, tail.end()))
    for args_end, call_end in ends:
        if _is_strict_json(text[start:args_end]):
            return args_end, call_end
    if ends:
        return ends[0]
    first = start + closes[0]
    return first, first + len(_ARGS_CLOSE)


def _is_strict_json(raw: str) -> bool:
    """True when the text is valid JSON as written."""
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True


def _read_call(server: str, tool: str, raw: str) -> ParsedCall | MalformedCall:
    """Turn a call's parts into a ParsedCall, or explain why it is malformed."""
    if not server or not tool:
        return MalformedCall(server, tool, raw, "empty server or tool name")
    arguments = _load_arguments(raw)
    if isinstance(arguments, str):
        return MalformedCall(server, tool, raw, arguments)
    kept = {key: value for key, value in arguments.items() if value is not None}
    return ParsedCall(server, tool, kept)


def _load_arguments(raw: str) -> dict[str, Any] | str:
    """Parse arguments as JSON, then with json_repair; a str return is the error."""
    if not raw:
        return {}
    try:
        value: Any = json.loads(raw)
    except ValueError as exc:
        strict_error = _one_line(f"invalid JSON ({exc})")
    else:
        if isinstance(value, dict):
            return value
        return f"arguments are a JSON {type(value).__name__}, not an object"
    try:
        repaired: Any = json_repair.loads(raw)
    except Exception as exc:  # json_repair has no narrow error type of its own
        return _one_line(f"{strict_error}; repair failed: {exc}")
    if not isinstance(repaired, dict):
        return f"{strict_error}; repair gave a {type(repaired).__name__}, not an object"
    if not repaired and not _EMPTY_OBJECT_RE.fullmatch(raw):
        return f"{strict_error}; repair gave an empty object"
    return repaired


def _one_line(message: str) -> str:
    """Collapse whitespace so that an error fits on one line."""
    return " ".join(message.split())


def _has_stray_tags(text: str, spans: list[tuple[int, int]]) -> bool:
    """True when a tag fragment lies outside every successfully parsed call."""
    pos = 0
    for start, end in [*spans, (len(text), len(text))]:
        if _TAG_FRAGMENT_RE.search(text, pos, start):
            return True
        pos = end
    return False
