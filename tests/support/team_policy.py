"""A sim-model policy for multi-agent tests: a planner that delegates, sub-agents that work.

Stateless, like every policy: the agent is read from its system prompt, its
turn from the number of assistant messages, its sub-task from its first user
message.
- The entry agent ("You are the main agent") calls every ``agent-*`` tool it
  lists, all in its first reply; then it stops calling tools, and its closing
  reply boxes the report tags it received, in the order they arrived.
- A sub-agent calls its first ordinary tool ``turns`` times (``<agent>=N`` in
  the policy's query string, default 3) with ``topic`` = its agent name and
  ``step`` = the turn; a sub-agent that has ``agent-*`` tools also calls them
  in its first reply. Its closing report starts with ``REPORT[<agent>:<turns>]``.

With ``$TEAM_LOG`` set, each request is logged as ``model <agent> <n>`` (n:
assistant messages so far) so a test can see that no request was repeated.
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


def team(body: dict[str, Any], **turns: Any) -> str:
    messages = body["messages"]
    system = messages[0]["content"]
    done = sum(1 for m in messages if m["role"] == "assistant")
    servers = TOOL.findall(system)
    if body.get("tools"):  # a native-protocol agent: tools come in the request, not the prompt
        servers = [("native", t["function"]["name"]) for t in body["tools"]]
    delegates = [(s, t) for s, t in servers if s.startswith("agent-")]
    own = [(s, t) for s, t in servers if not s.startswith("agent-")]
    planner = "You are the main agent" in system
    match = SUBTASK.match(messages[1]["content"])
    agent = "planner" if planner else match.group("agent") if match else "unknown"
    _log(f"model {agent} {done}")
    if planner:
        return _planner(messages, done, delegates)
    budget = int(turns.get(agent, 3))
    if is_closing_request(messages[-1]["content"]):
        heard = " ".join(REPORT.findall(_tool_text(messages)))
        return f"Summing up.</think>\n\nREPORT[{agent}:{done - 1}] {heard}".rstrip()
    if done < budget:
        calls = [render_call(own[0][0], own[0][1], {"topic": agent, "step": done + 1})]
        if done == 0:
            calls += [_delegate(s, t, body) for s, t in delegates]
        return f"Step {done + 1} for {agent}.</think>\n\nWorking.\n\n" + "\n".join(calls)
    return f"I have what I need.</think>\n\n{agent} is done after {done} steps."


def _planner(messages: list[dict[str, Any]], done: int, delegates: list[tuple[str, str]]) -> str:
    question = messages[1]["content"].rsplit("\n", 1)[0]  # less the answer request
    if is_closing_request(messages[-1]["content"]):
        tags = ", ".join(REPORT.findall(_tool_text(messages)))
        return f"The reports are in.</think>\n\nFinal answer: \\boxed{{{tags}}}"
    if done == 0:
        calls = [
            render_call(s, t, {"subtask": f"Sub-task for {s.removeprefix('agent-')}: {question}"})
            for s, t in delegates
        ]
        return "I will split the work.</think>\n\nDelegating.\n\n" + "\n".join(calls)
    return "Both reports are back.</think>\n\nI can answer now."


def _delegate(server: str, tool: str, body: dict[str, Any]) -> str:
    name = server.removeprefix("agent-")
    return render_call(server, tool, {"subtask": f"Sub-task for {name}: help"})


def _tool_text(messages: list[dict[str, Any]]) -> str:
    """Tool results: user messages (MiroThinker) and tool messages (native)."""
    return "\n".join(m["content"] or "" for m in messages[2:] if m["role"] in ("user", "tool"))


def _log(line: str) -> None:
    if path := os.environ.get("TEAM_LOG"):
        with open(path, "a", encoding="utf-8") as out:
            out.write(line + "\n")
