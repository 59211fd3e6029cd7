"""A sim-model policy that drives the shipped ``deep-research`` flow end to end.

Stateless: the agent is read from its system prompt's objective, the turn
from the assistant messages so far.
- planner: hands one sub-task to each of browsing, coding and reasoning in its
  first reply, then answers with the facts their reports carry;
- browsing: ``google_search``, then ``scrape_and_extract_info`` on the first
  link found, then reports the sentence about the population it read;
- coding: computes 6*7 in the Python sandbox, which writes ``calc.txt`` to the
  workspace; reads it back with the files tools, then reports its content;
- reasoning: no tools; reports a conclusion.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import is_closing_request

FACT = re.compile(r"Alpha has \d+ residents")


def deep(body: dict[str, Any]) -> str:
    messages = body["messages"]
    system = messages[0]["content"]
    done = sum(m["role"] == "assistant" for m in messages)
    closing = is_closing_request(messages[-1]["content"])
    results = [m["content"] for m in messages[2:] if m["role"] == "user"]
    if "You are the main agent" in system:
        return _planner(done, closing, results)
    if "You are a browsing agent" in system:
        if closing:
            found = FACT.search("\n".join(results))
            return f"Report.</think>\n\nREPORT[browsing] {found.group(0) if found else 'nothing'}"
        if done == 0:
            return _call("search_and_scrape_webpage", "google_search", {"q": "alpha population"})
        if done == 1:
            link = json.loads(results[-1])["organic"][0]["link"]
            args = {"url": link, "info_to_extract": "population"}
            return _call("jina_scrape_llm_summary", "scrape_and_extract_info", args)
        return "I found it.</think>\n\nThe page states the population."
    if "You are a coding agent" in system:
        if closing:
            calc = re.search(r"6\*7=\d+", "\n".join(results))
            return f"Report.</think>\n\nREPORT[coding] {calc.group(0) if calc else 'nothing'}"
        if done == 0:
            code = "result = 6 * 7\nopen('calc.txt', 'w').write(f'6*7={result}')\nresult"
            return _call("tool-python", "run_python_code", {"code_block": code})
        if done == 1:
            return _call("tool-files", "read_file", {"path": "calc.txt"})
        return "Computed.</think>\n\nThe file holds the result."
    if closing:
        return "Report.</think>\n\nREPORT[reasoning] both facts are consistent"
    return "Thinking it through.</think>\n\nThe facts do not contradict each other."


def _planner(done: int, closing: bool, results: list[str]) -> str:
    if closing:
        text = "\n".join(results)
        fact = FACT.search(text)
        calc = re.search(r"6\*7=(\d+)", text)
        answer = f"{fact.group(0) if fact else '?'}; {calc.group(1) if calc else '?'}"
        return f"All reports are in.</think>\n\nFinal answer: \\boxed{{{answer}}}"
    if done == 0:
        calls = [
            render_call(
                "agent-browsing", "search_and_browse", {"subtask": "Find alpha's population."}
            ),
            render_call(
                "agent-coding", "write_and_run_code", {"subtask": "Compute 6*7 in a file."}
            ),
            render_call(
                "agent-reasoning", "reason_step_by_step", {"subtask": "Are the facts consistent?"}
            ),
        ]
        return "I will split the work three ways.</think>\n\nDelegating.\n\n" + "\n".join(calls)
    return "The reports are back.</think>\n\nI can answer."


def _call(server: str, tool: str, args: dict[str, Any]) -> str:
    return f"Using {tool}.</think>\n\nCalling {tool}.\n\n{render_call(server, tool, args)}"
