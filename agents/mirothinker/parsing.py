"""Parse MiroThinker's XML-like tool calls out of a reply's text.

The weights do not use native function calling: a call is written into the
reply as ``<use_mcp_tool>`` / ``<server_name>`` / ``<tool_name>`` /
``<arguments>`` tags (see docs/mirothinker-protocol.md). This module turns a
reply into its visible content, its parsable calls, its malformed calls, a
flag for leftover tag fragments and one for a last call left unclosed, which
together decide whether the reply is answered with tool results or rolled back.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from typing import Any

import json_repair

from mirograph.text import one_line

__all__ = [
    "MAX_CALLS_PER_REPLY",
    "MalformedCall",
    "ParsedCall",
    "ParsedReply",
    "has_unclosed_call",
    "parse_reply",
    "render_call",
]

CALL_OPEN = "<use_mcp_tool>"
CALL_CLOSE = "</use_mcp_tool>"

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
_JSON_BLANKS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_FIRST_WINDOW = 4096

#: Calls one reply may make; later ones are answered as skipped, not run. The
#: prompt asks for one call per reply and the reference agent sets no limit
#: (it runs a reply's calls one after another); calls here run concurrently,
#: so a cap bounds one turn's work. Ten is above any parallel fan-out seen.
MAX_CALLS_PER_REPLY = 10
#: Characters of arguments one reply may hand to json_repair, all its calls
#: together. json_repair is pure Python and superlinear on some flat garbage:
#: runs of ``"{]\\`` or ``]null{`` take about 2e-7 s times the length squared
#: (0.05 s at 512 characters, 0.2 s at 1k, minutes at 32k), runs of ``\\"]{{``
#: grow faster still (0.2 s at 512, 1.3 s at 1k). The parse runs on the event
#: loop, so the reply's total is capped; the slips long arguments make (raw
#: newlines, bad escapes, a trailing comma, a cut-off end) are mended first by
#: ``_mend``, which is linear and has no cap.
MAX_REPAIR_CHARS = 512
#: Deepest nesting of lists and objects in arguments (no tool schema nears it).
MAX_ARGUMENT_DEPTH = 64


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
    #: The last call has no closing ``</use_mcp_tool>`` (the reply was cut, or the
    #: model stopped short): the reference rolls such a reply back.
    unclosed_call: bool = False

    @property
    def needs_rollback(self) -> bool:
        """A reply that tried to call a tool and failed is resampled, not answered."""
        calls = bool(self.calls or self.malformed)
        return (not self.calls and (calls or self.stray_tags)) or (calls and self.unclosed_call)


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


def parse_reply(text: str, max_calls: int = MAX_CALLS_PER_REPLY) -> ParsedReply:
    """Split a reply into visible content, calls, malformed calls and stray tags.

    Time is linear in the length of ``text`` and nothing in it raises: a call
    the parser cannot read is a ``MalformedCall``. Calls after the first
    ``max_calls`` are not read; one ``MalformedCall`` tells the model they were
    skipped.
    """
    calls: list[ParsedCall] = []
    malformed: list[MalformedCall] = []
    parsed_spans: list[tuple[int, int]] = []
    budget = _RepairBudget(MAX_REPAIR_CHARS)
    pos = 0
    while (head := _HEAD_RE.search(text, pos)) is not None:
        server, tool = head["server"].strip(), head["tool"].strip()
        if len(calls) + len(malformed) >= max_calls:
            malformed.append(_skipped(server, tool, text.count(CALL_OPEN, head.start()), max_calls))
            break
        next_call = text.find(CALL_OPEN, head.end())
        found = _find_arguments_end(text, head.end(), next_call)
        if found is None:
            stop = len(text) if next_call < 0 else next_call
            raw = text[head.end() : stop].strip()
            malformed.append(MalformedCall(server, tool, raw, "no closing </arguments> tag"))
            if next_call < 0:
                break
            pos = next_call
            continue
        args_end, call_end = found
        raw = text[head.end() : args_end].strip()
        result = _read_call(server, tool, raw, budget)
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
        unclosed_call=has_unclosed_call(text),
    )


def has_unclosed_call(text: str) -> bool:
    """Whether the last ``<use_mcp_tool>`` of ``text`` has no ``</use_mcp_tool>`` after it."""
    start = text.rfind(CALL_OPEN)
    return start >= 0 and text.find(CALL_CLOSE, start) < 0


def _skipped(server: str, tool: str, count: int, max_calls: int) -> MalformedCall:
    """The one entry that stands for every call past the cap (``count`` of them)."""
    error = (
        f"skipped: a reply may make at most {max_calls} tool calls; this call and the"
        f" {count - 1} after it were not run; make them in later turns"
    )
    return MalformedCall(server, tool, "", error)


def _visible_content(text: str) -> str:
    """The protocol's visible content: everything before the first call tag."""
    cut = text.find(CALL_OPEN)
    return (text if cut < 0 else text[:cut]).rstrip()


def _find_arguments_end(text: str, start: int, next_call: int) -> tuple[int, int] | None:
    """Locate the ``</arguments>`` that ends this call; return (args end, call end).

    ``</arguments>`` may also occur inside a JSON string value, so the end of a
    strictly valid JSON value followed by the closing tags wins. Otherwise the
    first close before the next call that is followed by ``</use_mcp_tool>``
    (or the next call, or the end of the reply) ends it, else the first close.
    Each step reads forward from ``start`` once, so a reply of many calls
    parses in time linear in its length.
    """
    value_end = _strict_json_end(text, start)
    if value_end is not None and text.startswith(_ARGS_CLOSE, value_end):
        tail = _TAIL_RE.match(text, value_end + len(_ARGS_CLOSE))
        if tail is not None:
            return value_end, tail.end()
    stop = len(text) if next_call < 0 else next_call
    first = close = text.find(_ARGS_CLOSE, start, stop)
    while close >= 0:
        tail = _TAIL_RE.match(text, close + len(_ARGS_CLOSE))
        if tail is not None:
            return close, tail.end()
        close = text.find(_ARGS_CLOSE, close + len(_ARGS_CLOSE), stop)
    if first < 0:
        return None
    return first, first + len(_ARGS_CLOSE)


def _strict_json_end(text: str, start: int) -> int | None:
    """Where the strict JSON value at ``start`` (and the blanks after it) ends, or None.

    The value is decoded from a window that doubles until the outcome cannot
    depend on what lies past it. A decode error costs time proportional to its
    offset in the string decoded (it counts lines), so decoding the whole rest
    of the reply for every call would make a reply of many calls quadratic.
    """
    begin = _JSON_BLANKS.match(text, start).end()  # type: ignore[union-attr]
    size = _FIRST_WINDOW
    while True:
        window = text[begin : begin + size]
        whole = begin + size >= len(text)
        try:
            _, end = _DECODER.raw_decode(window)
        except RecursionError:
            return None
        except ValueError as exc:
            cut_short = isinstance(exc, json.JSONDecodeError) and (
                exc.msg.startswith("Unterminated string") or exc.pos >= len(window) - 16
            )
            if whole or not cut_short:
                return None
        else:
            if whole or end < len(window):  # a number at the window's edge may go on
                return _JSON_BLANKS.match(text, begin + end).end()  # type: ignore[union-attr]
        size *= 2


@dataclass
class _RepairBudget:
    """Characters one reply may still hand to json_repair."""

    left: int


def _read_call(
    server: str, tool: str, raw: str, budget: _RepairBudget
) -> ParsedCall | MalformedCall:
    """Turn a call's parts into a ParsedCall, or explain why it is malformed."""
    if not server or not tool:
        return MalformedCall(server, tool, raw, "empty server or tool name")
    arguments = _load_arguments(raw, budget)
    if isinstance(arguments, str):
        return MalformedCall(server, tool, raw, arguments)
    kept = {key: value for key, value in arguments.items() if value is not None}
    return ParsedCall(server, tool, kept)


_INT_DIGITS = sys.get_int_max_str_digits()  # 0: no limit
_HUGE_INTEGER = f"arguments hold an integer of more than {_INT_DIGITS} digits"
#: A number that long where a value starts: json_repair turns it into a string.
_HUGE_INTEGER_RE = re.compile(rf"[:\[,]\s*-?\d{{{_INT_DIGITS + 1},}}") if _INT_DIGITS else None


def _load_arguments(raw: str, budget: _RepairBudget | None = None) -> dict[str, Any] | str:
    """Parse arguments as JSON, mended, then with json_repair; a str return is the error.

    Strict JSON first; then ``_mend``'s linear fixes of the common slips, read
    strictly again; then json_repair, for what is still broken and fits in
    ``budget`` (the reply's share of MAX_REPAIR_CHARS, which this spends).
    """
    if not raw:
        return {}
    try:
        value: Any = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        strict_error = one_line(f"invalid JSON ({exc})")
    except ValueError:  # valid JSON, but an integer longer than Python reads
        return _HUGE_INTEGER
    else:
        if isinstance(value, dict):
            return _usable(value, raw)
        return f"arguments are a JSON {type(value).__name__}, not an object"
    if _HUGE_INTEGER_RE is not None and _HUGE_INTEGER_RE.search(raw):
        return f"{strict_error}; {_HUGE_INTEGER}"  # json_repair would make it a string
    mended = _mend(raw)
    if mended is not None:
        try:
            value = json.loads(mended)
        except ValueError:  # still broken (or an integer Python refuses): json_repair's turn
            pass
        else:
            if isinstance(value, dict):
                return _usable(value, raw)
            return f"{strict_error}; repair gave a {type(value).__name__}, not an object"
    if _nests_too_deep(raw):
        # json_repair takes seconds on deep runs of [ and { (quadratic for some).
        return (
            f"{strict_error}; not repaired: brackets nest deeper than {MAX_ARGUMENT_DEPTH}"
            " levels; close every [ and { and nest less"
        )
    if budget is None:
        budget = _RepairBudget(MAX_REPAIR_CHARS)
    if len(raw) > budget.left:
        # json_repair is pure Python and quadratic on some inputs.
        if len(raw) > MAX_REPAIR_CHARS:
            why = f"too long to repair ({len(raw)} characters)"
        else:
            why = f"not repaired: other calls spent the reply's {MAX_REPAIR_CHARS} characters"
        return f"{strict_error}; {why}: write the arguments as valid JSON"
    budget.left -= len(raw)
    try:
        repaired: Any = json_repair.loads(raw)
    except Exception as exc:  # json_repair has no narrow error type of its own
        return one_line(f"{strict_error}; repair failed: {type(exc).__name__}: {exc}")
    if not isinstance(repaired, dict):
        return f"{strict_error}; repair gave a {type(repaired).__name__}, not an object"
    if not repaired and not _EMPTY_OBJECT_RE.fullmatch(raw):
        return f"{strict_error}; repair gave an empty object"
    return _usable(repaired, raw)


#: One piece of arguments for ``_mend``: a string in double or single quotes
#: (closed, or cut off by the end of the text, perhaps after a lone backslash),
#: an opening or closing bracket, or a run of anything else outside strings.
_MEND_PIECE_RE = re.compile(
    r'"(?P<body>[^"\\]*(?:\\[\s\S][^"\\]*)*)(?P<end>"|\\?\Z)'
    r"|'(?P<single>[^'\\]*(?:\\[\s\S][^'\\]*)*)(?P<single_end>'|\\?\Z)"
    r"|(?P<open>[\[{])|(?P<close>[\]}])|(?P<other>[^\"'\[\]{}]+)"
)
#: In a single-quoted body: an escape (``\\'`` loses its backslash) or a ``"``.
_SINGLE_QUOTED_RE = re.compile(r'\\[\s\S]|"')
#: What a string body needs mended: a valid escape (kept), a backslash that
#: starts none (doubled) or a raw control character (escaped).
_MEND_BODY_RE = re.compile(r'\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})|\\|[\x00-\x1f]')
_MEND_BODY_NEEDED_RE = re.compile(r"[\\\x00-\x1f]")
_CONTROL_ESCAPES = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_PYTHON_LITERAL_RE = re.compile(r"\b(?:True|False|None)\b")
_JSON_LITERALS = {"True": "true", "False": "false", "None": "null"}
_CLOSERS = {"[": "]", "{": "}"}


def _mend_escape(match: re.Match[str]) -> str:
    """The JSON for one piece ``_MEND_BODY_RE`` found in a string body."""
    piece = match.group()
    if len(piece) > 1:
        return piece  # a valid escape
    if piece == "\\":
        return "\\\\"
    return _CONTROL_ESCAPES.get(piece) or f"\\u{ord(piece):04x}"


def _double_quoted(match: re.Match[str]) -> str:
    """The double-quoted form of one piece ``_SINGLE_QUOTED_RE`` found."""
    piece = match.group()
    return {"\\'": "'", '"': '\\"'}.get(piece, piece)


def _mend_body(body: str) -> str:
    """A string body with raw control characters and stray backslashes escaped."""
    if _MEND_BODY_NEEDED_RE.search(body) is None:
        return body
    return _MEND_BODY_RE.sub(_mend_escape, body)


def _drop_trailing_comma(out: list[str]) -> None:
    """Remove a comma that ends the text written so far (blanks after it stay)."""
    if out and (stripped := out[-1].rstrip()).endswith(","):
        out[-1] = stripped[:-1] + out[-1][len(stripped) :]


def _mend(raw: str) -> str | None:
    """``raw`` with the slips models make in long arguments mended, in one linear pass.

    Raw control characters in strings are escaped and a backslash that starts
    no JSON escape is doubled (``\\d`` in a regex); Python's single quotes,
    True, False and None become JSON's; a comma before a closing bracket is dropped; a string
    and the brackets left open by a reply that stopped early are closed. The
    result is for a strict reader to judge: None where brackets do not match
    or nest deeper than MAX_ARGUMENT_DEPTH, and where nothing was mended.
    """
    out: list[str] = []
    stack: list[str] = []
    for piece in _MEND_PIECE_RE.finditer(raw):
        kind = piece.lastgroup
        if kind == "end":  # a string
            out.append(f'"{_mend_body(piece["body"])}"')
        elif kind == "single_end":  # a string in Python's single quotes
            body = _SINGLE_QUOTED_RE.sub(_double_quoted, piece["single"])
            out.append(f'"{_mend_body(body)}"')
        elif kind == "open":
            if len(stack) >= MAX_ARGUMENT_DEPTH:
                return None
            stack.append(_CLOSERS[piece.group()])
            out.append(piece.group())
        elif kind == "close":
            if not stack or stack.pop() != piece.group():
                return None
            _drop_trailing_comma(out)
            out.append(piece.group())
        else:
            out.append(_PYTHON_LITERAL_RE.sub(lambda m: _JSON_LITERALS[m.group()], piece.group()))
    if stack:
        _drop_trailing_comma(out)
        out.extend(reversed(stack))
    mended = "".join(out)
    return None if mended == raw else mended


#: A JSON string (closed or cut off by the end) or one bracket, for the depth scan.
_STRUCTURE_RE = re.compile(r'"[^"\\]*(?:\\[\s\S][^"\\]*)*"?|[\[\]{}]')


def _nests_too_deep(raw: str) -> bool:
    """Whether brackets outside strings in ``raw`` open more than MAX_ARGUMENT_DEPTH levels.

    One scan, linear in ``raw``; a closing bracket with nothing open is ignored.
    """
    depth = 0
    for token in _STRUCTURE_RE.finditer(raw):
        char = token.group()[0]
        if char in "[{":
            depth += 1
            if depth > MAX_ARGUMENT_DEPTH:
                return True
        elif char in "]}":
            depth = max(depth - 1, 0)
    return False


def _usable(arguments: dict[str, Any], raw: str) -> dict[str, Any] | str:
    """``arguments`` if the rest of the engine can store and send them, else the error.

    Deep nesting would overflow the recursion of serializers downstream; lone
    surrogates cannot be encoded as UTF-8; infinities are not JSON.
    """
    # Only text with that many brackets can nest that deep: skip the walk otherwise.
    brackets = raw.count("[") + raw.count("{")
    if brackets > MAX_ARGUMENT_DEPTH and _depth(arguments) > MAX_ARGUMENT_DEPTH:
        return f"arguments nest deeper than {MAX_ARGUMENT_DEPTH} levels"
    try:
        json.dumps(arguments, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:
        return "arguments hold invalid unicode (a lone surrogate); write the text itself"
    except (ValueError, TypeError, RecursionError) as exc:
        return one_line(f"arguments cannot be written as JSON: {exc}")
    return arguments


def _depth(value: Any) -> int:
    """How deep lists and objects nest in ``value``, counted without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, dict | list):
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_ARGUMENT_DEPTH:
            return deepest
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _has_stray_tags(text: str, spans: list[tuple[int, int]]) -> bool:
    """True when a tag fragment lies outside every successfully parsed call."""
    pos = 0
    for start, end in [*spans, (len(text), len(text))]:
        if _TAG_FRAGMENT_RE.search(text, pos, start):
            return True
        pos = end
    return False
