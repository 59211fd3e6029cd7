"""sim-model policy of the web view's benchmark run: a planner, and two sub-agents it
calls together, ``browsing`` and ``coding``, each reading distinct ~8 KB pages.

The planner's first reply hands one sub-task to each sub-agent (run in parallel);
its second answers. A sub-agent makes ``turns - 1`` tool calls, then answers: with
``browsing=300&coding=298`` the run has 2 + 300 + 298 = 600 turns.
"""

from __future__ import annotations

from typing import Any

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import is_closing_request

#: The sub-task each sub-agent is given; its first word tells the sub-agents apart.
SUBTASKS = {
    "browsing": "Browse every page of the archive and note its figures.",
    "coding": "Code a reader for every page of the archive and check its figures.",
}
#: The tool each sub-agent is called by (``graphs/sub_agents.ROLE_TOOLS``: named by role).
TOOLS = {"browsing": "search_and_browse", "coding": "write_and_run_code"}
#: Tool-index offset per sub-agent, so their pages never repeat each other's.
OFFSETS = {"browsing": 1_000_000, "coding": 2_000_000}


def team(body: dict[str, Any], browsing: int = 300, coding: int = 298) -> str:
    """The reply for the planner, ``browsing`` or ``coding`` (told apart by their prompts)."""
    messages = body["messages"]
    done = sum(1 for m in messages if m["role"] == "assistant")
    closing = is_closing_request(messages[-1]["content"])
    if "You are the main agent" in messages[0]["content"]:
        if closing or done >= 1:
            return "Both reports are in.</think>\n\nThe archive is read. \\boxed{600}"
        calls = [
            render_call(f"agent-{agent}", TOOLS[agent], {"subtask": task})
            for agent, task in SUBTASKS.items()
        ]
        return "Splitting the work.</think>\n\nDelegating to both.\n\n" + "\n".join(calls)
    agent = "browsing" if messages[1]["content"].startswith("Browse") else "coding"
    turns = int(browsing if agent == "browsing" else coding)
    if closing or done + 1 >= turns:
        return f"All {done} pages read.</think>\n\n{agent}: read {done} pages."
    call = render_call("bench_tools", "distinct_text", {"index": OFFSETS[agent] + done + 1})
    return f"Reading page {done + 1}.</think>\n\nFetching page {done + 1}.\n\n{call}"
