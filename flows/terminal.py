"""Text from a run made safe for a terminal: the one place that neutralises control characters.

Questions, model replies, tool results, run ids, flow names and error messages
are data a model or a web page chose. Printed raw, an escape sequence in them
retitles the window (``ESC ] 0 ; … BEL``), clears the screen (``ESC [ 2 J``),
moves the cursor to forge lines, or (with a bidi override) shows text in
another order than it reads. Everything the CLI prints for a person goes
through :func:`printable`, which writes each such character as a visible
escape (``\\x1b``, ``\\u202e``) so the text is still there to read. JSON
output is not passed through here: JSON escapes control characters itself.
"""

from __future__ import annotations

import re

#: C0 controls but tab and newline, DEL, C1 controls (ESC starts most sequences,
#: 0x9b is a one-byte CSI), and the bidi embeddings, overrides and isolates.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
#: The same, with newline and tab unsafe too: for values shown on one line.
_UNSAFE_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object, *, multiline: bool = True) -> str:
    """``text`` with every control character shown as a visible escape.

    ``multiline`` keeps newlines and tabs (an answer, a question); without it
    they are escaped too (an id, a table cell, a one-line message).
    """
    pattern = _UNSAFE if multiline else _UNSAFE_ONE_LINE
    return pattern.sub(_visible, str(text))
