"""sim-model policy of the long-run workload: one tool call per turn, then answer."""

from __future__ import annotations

from typing import Any

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import is_closing_request


def long_run(body: dict[str, Any], turns: int = 600) -> str:
    messages = body["messages"]
    done = sum(1 for m in messages if m["role"] == "assistant")
    if is_closing_request(messages[-1]["content"]) or done + 1 >= int(turns):
        return f"All {done} pages read.</think>\n\nThe count is complete. \\boxed{{{done}}}"
    n = done + 1
    call = render_call("bench_tools", "distinct_text", {"index": n})
    return f"Reading page {n} next.</think>\n\nFetching page {n}.\n\n{call}"


def delegating(body: dict[str, Any], parts: int = 6, parallel: int = 1, turns: int = 100) -> str:
    """A planner that hands ``parts`` sub-tasks to a worker, ``parallel`` per reply;
    each worker makes ``turns`` tool calls with texts distinct across workers."""
    messages = body["messages"]
    done = sum(1 for m in messages if m["role"] == "assistant")
    closing = is_closing_request(messages[-1]["content"])
    if "You are the main agent" in messages[0]["content"]:
        sent = done * int(parallel)
        if closing or sent >= int(parts):
            return f"All {sent} parts are in.</think>\n\nDone. \\boxed{{{sent}}}"
        calls = [
            render_call("agent-worker", "run_subtask", {"subtask": f"Read part {k}."})
            for k in range(sent, min(sent + int(parallel), int(parts)))
        ]
        return "Splitting the reading.</think>\n\nDelegating.\n\n" + "\n".join(calls)
    part = int(messages[1]["content"].split("part ", 1)[1].split(".", 1)[0])
    if closing or done + 1 >= int(turns):
        return f"Part {part} read.</think>\n\nRead {done} pages of part {part}."
    call = render_call("bench_tools", "distinct_text", {"index": part * 100_000 + done + 1})
    return f"Reading page {done + 1}.</think>\n\nFetching.\n\n{call}"
