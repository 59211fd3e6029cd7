"""A sim-model policy for the crash test: one ``step`` call per turn, counting up.

The reply depends only on the request: the next index is the number of
assistant turns already in the history plus one, so a resumed run asks for
exactly the step an uninterrupted run would. The closing request is answered
with ``\\boxed{done}``.
"""

from __future__ import annotations

from typing import Any

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import is_closing_request


def count(body: dict[str, Any]) -> str:
    messages = body["messages"]
    done = sum(1 for m in messages if m["role"] == "assistant")
    if is_closing_request(messages[-1]["content"]):
        return f"Every step ran.</think>\n\nAll {done} steps are recorded. \\boxed{{done}}"
    n = done + 1
    call = render_call("crash_tools", "step", {"index": n})
    return f"Next is step {n}.</think>\n\nRunning step {n}.\n\n{call}"
