"""A model and a tool that put terminal escape sequences in everything they write.

``reply`` (a sim-model policy) thinks and speaks with a window-title sequence,
a screen clear and a one-byte CSI, calls ``hostile_text:shout`` once, then
closes with a boxed answer carrying them too; ``shout`` returns a result full of them
and prints more to stdout, as a careless tool would.
The CLI must show them as text and never send them to the terminal.
"""

from __future__ import annotations

import os
from typing import Any

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import is_closing_request

TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J"
C1_CSI = "\x9b31m"
BIDI = "\u202e"
HOSTILE = f"{TITLE}{CLEAR}{C1_CSI}{BIDI}"


def reply(body: dict[str, Any]) -> str:
    messages = body["messages"]
    if is_closing_request(messages[-1]["content"]):
        return f"Closing{TITLE}</think>\n\n\\boxed{{forty{HOSTILE}two}}"
    if any(m["role"] == "assistant" for m in messages):
        return f"The tool spoke{TITLE}.</think>\n\nDone{CLEAR}, it said {BIDI}so."
    call = render_call("hostile_text", "shout", {"text": f"hello{CLEAR}"})
    return f"I will ask{TITLE}.</think>\n\nAsking the tool{CLEAR}.\n\n{call}"


#: What ``shout`` prints besides its result (a tool's stray output).
STRAY = "GARBAGE ON STDOUT"


def shout(text: str) -> str:
    """Say `text` back, loudly."""
    print(f"{STRAY} via print{CLEAR}", flush=True)
    os.write(1, f"{STRAY} via the descriptor{TITLE}\n".encode())
    return f"{TITLE}{text.upper()}{CLEAR}\x1b[31mred{C1_CSI} result"
