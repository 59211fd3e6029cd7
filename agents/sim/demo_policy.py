"""The scripted model of ``mirograph demo``: deep-research over the bundled corpus.

Named ``mirograph.agents.sim.demo_policy:demo``. Stateless like every policy:
the agent is told apart by the tool servers its system prompt lists, the turn
by the assistant messages so far. Every value it states is read from the tool
results in the request (search hits, documents, the sandbox's output), never
written in here, so the demo's answer follows from the corpus and the sandbox.

- planner: hands browsing the fact-finding, then hands coding the facts found
  to compute the share, then answers with the share the sandbox printed;
- browsing: searches and reads the flood account, then the census returns, and
  reports both figures with the sentences they come from;
- coding: runs the computation in the Python sandbox (which also writes
  ``flood_share.txt`` to the run workspace) and reports the sandbox's output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import is_closing_request
from mirograph.agents.sim.policies import content_text

__all__ = ["demo"]

CORPUS = "tool-local-corpus"
PYTHON = "tool-python"
#: What browsing looks for, one search (and one document) per fact.
SEARCHES = ("houses destroyed Great Flood 1868", "census inhabited houses 1861")
BROWSE_TASK = (
    "In the local document collection about Marrowford, find (1) how many houses the Great"
    " Flood of 1868 destroyed and (2) how many inhabited houses the 1861 census, the last"
    " before the flood, counted. Quote the sentence each figure comes from and name its"
    " document."
)
SHARE_FILE = "flood_share.txt"

_DESTROYED = re.compile(r"(\d[\d,]*) were destroyed")
_CENSUS = re.compile(r"Inhabited houses:[^.]*?(\d[\d,]*) in 1861")
_DOC = re.compile(r"\(doc://([^)\s]+)\)")
_REPORTED_DESTROYED = re.compile(r"Houses destroyed by the flood: (\d[\d,]*)")
_REPORTED_CENSUS = re.compile(r"Inhabited houses at the 1861 census: (\d[\d,]*)")
_INPUT = re.compile(r"\b(houses_destroyed|houses_1861) = (\d+)\b")
_SHARE = re.compile(r"share = (\d+(?:\.\d+)?)%")


def demo(body: Mapping[str, Any]) -> str:
    messages = [m for m in body.get("messages") or [] if isinstance(m, Mapping)]
    system = content_text(messages[0].get("content")) if messages else ""
    task = content_text(messages[1].get("content")) if len(messages) > 1 else ""
    done = sum(m.get("role") == "assistant" for m in messages)
    closing = bool(messages) and is_closing_request(content_text(messages[-1].get("content")))
    results = [content_text(m.get("content")) for m in messages[2:] if m.get("role") == "user"]
    if closing:
        results = results[:-1]  # the closing request is not a tool result
    if "## Server name: agent-browsing" in system:
        return _planner(done, closing, results)
    if f"## Server name: {CORPUS}" in system:
        return _browsing(done, closing, results)
    if f"## Server name: {PYTHON}" in system:
        return _coding(task, done, closing, results)
    return _reply("No tools are needed for this.", "Nothing to add: the sub-task is clear.")


# -- planner ----------------------------------------------------------------------------


def _planner(done: int, closing: bool, results: list[str]) -> str:
    if closing or done >= 2:
        return _planner_answer(results)
    if done == 0:
        return _reply(
            "The question needs two figures from the documents and one computation. The"
            " browsing agent finds the figures first.",
            "Asking the browsing agent for the figures.",
            render_call("agent-browsing", "search_and_browse", {"subtask": BROWSE_TASK}),
        )
    report = results[-1] if results else ""
    destroyed, houses = _REPORTED_DESTROYED.search(report), _REPORTED_CENSUS.search(report)
    if destroyed is None or houses is None:
        return _planner_answer(results)
    inputs = (
        f"houses_destroyed = {_number(destroyed.group(1))} (the flood account);"
        f" houses_1861 = {_number(houses.group(1))} (the 1861 census)"
    )
    subtask = (
        "Compute in Python the percentage of Marrowford's houses that the Great Flood of 1868"
        f" destroyed, rounded to one decimal place, and save it to {SHARE_FILE}."
        f" Inputs: {inputs}."
    )
    return _reply(
        f"Browsing found both figures: {inputs}. The coding agent computes the share in the"
        " sandbox, so the number comes from running code, not from my arithmetic.",
        "Asking the coding agent to compute the share.",
        render_call("agent-coding", "write_and_run_code", {"subtask": subtask}),
    )


def _planner_answer(results: list[str]) -> str:
    text = "\n".join(results)
    shares = _SHARE.findall(text)
    if not shares:
        return _reply(
            "The sub-agents did not produce the share.",
            "I could not compute the share. Final answer: \\boxed{unknown}",
        )
    share = shares[-1]
    summary = [f"The sandbox computed a share of {share}%."]
    destroyed, houses = _REPORTED_DESTROYED.search(text), _REPORTED_CENSUS.search(text)
    if destroyed and houses:
        summary.insert(
            0,
            f"The flood account gives {_number(destroyed.group(1))} houses destroyed and the"
            f" 1861 census {_number(houses.group(1))} houses.",
        )
    return _reply(
        "The browsing report gives the figures, and the sandbox computed the share from them.",
        " ".join(summary) + f"\n\nFinal answer: \\boxed{{{share}%}}",
    )


# -- browsing ---------------------------------------------------------------------------


def _browsing(done: int, closing: bool, results: list[str]) -> str:
    searches = len(SEARCHES)
    if closing or done >= 2 * searches:
        return _reply("Both figures are in the documents I read.", _findings(results))
    if done % 2 == 0:
        query = SEARCHES[done // 2]
        return _reply(
            f"I search the collection for: {query}.",
            "Searching the local documents.",
            render_call(CORPUS, "local_search", {"query": query}),
        )
    read = {m.group(1) for m in map(_DOC.search, results) if m}
    hits = _hits(results[-1] if results else "")
    unread = [doc_id for doc_id in hits if doc_id not in read]
    if not unread:
        return _reply("The search found nothing new to read.", _findings(results))
    return _reply(
        f"The best new hit is {unread[0]}; I read it in full.",
        f"Reading {unread[0]}.",
        render_call(CORPUS, "read_document", {"doc_id": unread[0]}),
    )


def _hits(result: str) -> list[str]:
    """The doc_ids of a ``local_search`` result, best first ([] if it is not one)."""
    try:
        rows = json.loads(result).get("organic") or []
    except (ValueError, AttributeError):
        return []
    return [row["doc_id"] for row in rows if isinstance(row, Mapping) and "doc_id" in row]


def _findings(results: list[str]) -> str:
    """The report: each figure with its document and the sentence it was read in."""
    lines = ["Findings from the local document collection:"]
    for label, pattern in (
        ("Houses destroyed by the flood", _DESTROYED),
        ("Inhabited houses at the 1861 census", _CENSUS),
    ):
        for text in results:
            found = pattern.search(text)
            doc = _DOC.search(text)
            if found and doc:
                lines.append(
                    f"- {label}: {_number(found.group(1))}. Source: doc://{doc.group(1)},"
                    f' "{_sentence(text, found.start(1))}"'
                )
                break
        else:
            lines.append(f"- {label}: not found in the documents read.")
    return "\n".join(lines)


def _sentence(text: str, at: int) -> str:
    """The sentence of ``text`` around position ``at``, on one line.

    It starts on the line of ``at``, or on the line before when that line
    continues a sentence (it starts with a digit or a lower-case letter).
    """
    start = text.rfind("\n", 0, at) + 1
    if text[start : start + 1].isdigit() or text[start : start + 1].islower():
        start = text.rfind("\n", 0, max(start - 1, 0)) + 1
    if (stop := text.rfind(". ", start, at)) >= 0:
        start = stop + 2
    end = text.find(".", at)
    return " ".join(text[start : len(text) if end < 0 else end + 1].split())


# -- coding -----------------------------------------------------------------------------


def _coding(task: str, done: int, closing: bool, results: list[str]) -> str:
    inputs = dict(_INPUT.findall(task))
    if len(inputs) < 2:
        return _reply("The sub-task lacks its inputs.", "I need houses_destroyed and houses_1861.")
    code = (
        f"houses_destroyed = {inputs['houses_destroyed']}\n"
        f"houses_1861 = {inputs['houses_1861']}\n"
        "share = round(100 * houses_destroyed / houses_1861, 1)\n"
        f"with open({SHARE_FILE!r}, 'w') as f:\n"
        "    f.write(f'{share}%\\n')\n"
        "print(f'share = {share}%')\n"
    )
    if done == 0 and not closing:
        return _reply(
            "A few lines of Python compute the share; the sandbox runs them.",
            "Running the computation in the sandbox.",
            render_call(PYTHON, "run_python_code", {"code_block": code}),
        )
    output = results[0].strip() if results else "(the code did not run)"
    return _reply(
        "The sandbox ran the code; I report its output as printed.",
        f"Ran in the Python sandbox:\n```python\n{code}```\nSandbox output:\n{output}\n"
        f"The code also wrote the share to {SHARE_FILE} in the run workspace.",
    )


# -- helpers ----------------------------------------------------------------------------


def _reply(thinking: str, visible: str, call: str = "") -> str:
    return f"{thinking}\n</think>\n\n{visible}" + (f"\n\n{call}" if call else "")


def _number(text: str) -> str:
    return text.replace(",", "")
