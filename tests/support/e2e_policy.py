"""A sim-model policy for the end-to-end tests: count upwards, one tool call per turn.

The reply depends only on the request: the next index is the number of
assistant turns already in the history plus one; the closing request is
answered with a boxed answer.
"""

from __future__ import annotations

from typing import Any

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import is_closing_request


def count(body: dict[str, Any]) -> str:
    messages = body["messages"]
    if is_closing_request(messages[-1]["content"]):
        done = sum(1 for m in messages if m["role"] == "assistant")
        return (
            f"I recorded every index.</think>\n\nAll {done} steps are recorded. \\boxed{{counted}}"
        )
    n = sum(1 for m in messages if m["role"] == "assistant") + 1
    call = render_call("e2e_tools", "record_index", {"index": n})
    return f"Next I record index {n}.</think>\n\nRecording step {n}.\n\n{call}"
