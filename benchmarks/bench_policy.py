"""sim-model policy of the long-run workload: one tool call per turn, then answer."""

from __future__ import annotations

from typing import Any

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import CLOSING_HEADER


def long_run(body: dict[str, Any], turns: int = 600) -> str:
    messages = body["messages"]
    done = sum(1 for m in messages if m["role"] == "assistant")
    if CLOSING_HEADER in messages[-1]["content"] or done + 1 >= int(turns):
        return f"All {done} pages read.</think>\n\nThe count is complete. \\boxed{{{done}}}"
    n = done + 1
    call = render_call("bench_tools", "distinct_text", {"index": n})
    return f"Reading page {n} next.</think>\n\nFetching page {n}.\n\n{call}"
