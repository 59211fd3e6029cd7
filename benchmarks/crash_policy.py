"""sim-model policy of the crash benchmark: one ``step`` call per turn, then answer.

The reply depends only on the request (the next index is the number of
assistant turns so far plus one), so a resumed run asks for exactly the step
an uninterrupted run would. The closing request gets ``\\boxed{done}``.
"""

from __future__ import annotations

from typing import Any

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import CLOSING_HEADER


def count(body: dict[str, Any]) -> str:
    messages = body["messages"]
    done = sum(1 for m in messages if m["role"] == "assistant")
    if CLOSING_HEADER in messages[-1]["content"]:
        return f"All {done} pages read.</think>\n\nThe count is complete. \\boxed{{done}}"
    n = done + 1
    call = render_call("crash_tools", "step", {"index": n})
    return f"Reading page {n} next.</think>\n\nFetching page {n}.\n\n{call}"
