"""A sim-model policy for transcript, show and export tests.

Stateless, like every policy: the agent is read from its system prompt (the
entry agent's says "You are the main agent") or its sub-task ("Sub-task for
<agent>: ..."), its turn from the assistant messages so far.
- The entry agent, reply 1: hands a sub-task to every ``agent-*`` tool it
  lists. Reply 2: quotes ``$TAVILY_API_KEY`` in its own text (a model may
  repeat a secret it saw) and calls ``reveal``. Reply 3: no tool. Closing:
  the reports it received, boxed.
- A sub-agent calls ``fetch(topic=<agent>, step=n)`` ``<agent>=N`` times (the
  policy's keyword arguments, default 2), replies without a tool, and its
  closing report is ``REPORT[<agent>:<calls>]``.
"""

from __future__ import annotations

import os
import re
from typing import Any

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import is_closing_request

TOOL = re.compile(r"## Server name: (?P<server>\S+)\n+### Tool name: (?P<tool>\S+)")
REPORT = re.compile(r"REPORT\[[^\]]+\]")
SUBTASK = re.compile(r"^Sub-task for (?P<agent>[\w-]+):")


def story(body: dict[str, Any], **steps: Any) -> str:
    messages = body["messages"]
    system = messages[0]["content"]
    done = sum(1 for m in messages if m["role"] == "assistant")
    closing = is_closing_request(messages[-1]["content"])
    tools = dict((t, s) for s, t in TOOL.findall(system))
    if "You are the main agent" in system:
        return _planner(messages, done, closing, tools)
    match = SUBTASK.match(messages[1]["content"])
    agent = match.group("agent") if match else "unknown"
    calls = int(steps.get(agent, 2))
    if closing:
        return f"Summing up.</think>\n\nREPORT[{agent}:{calls}]"
    if done < calls:
        call = render_call(tools["fetch"], "fetch", {"topic": agent, "step": done + 1})
        return f"Page {done + 1} next.</think>\n\nReading.\n\n{call}"
    return f"Enough pages.</think>\n\n{agent} read {calls} pages."


def _planner(
    messages: list[dict[str, Any]], done: int, closing: bool, tools: dict[str, str]
) -> str:
    if closing:
        reports = REPORT.findall("\n".join(m["content"] for m in messages[2:]))
        return f"The reports are in.</think>\n\nFinal answer: \\boxed{{{', '.join(reports)}}}"
    if done == 0:
        question = messages[1]["content"].rsplit("\n", 1)[0]  # less the answer request
        calls = [
            render_call(server, tool, {"subtask": f"Sub-task for {server[6:]}: {question}"})
            for tool, server in tools.items()
            if server.startswith("agent-")  # server[6:]: the agent's name
        ]
        return "I will split the work.</think>\n\nDelegating.\n\n" + "\n".join(calls)
    if done == 1:
        key = os.environ.get("TAVILY_API_KEY", "")
        call = render_call(tools["reveal"], "reveal", {})
        return f"The key should be {key}; checking.</think>\n\nChecking the key.\n\n{call}"
    return "All set.</think>\n\nI can answer now."
