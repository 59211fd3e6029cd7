"""A sim-model policy for the bench tests: it solves some tasks and gets others wrong.

A task reads ``Task N: add A and B after C lookups.``, optionally followed by
markers: ``(wrong)`` boxes A + B + 1; ``(restart)`` lets the first attempt end
without a box, so the flow's restart rule starts a second one, which answers;
``(garble)`` boxes ``UNPARSEABLE`` (``judge_policy`` then gives no verdict);
``(file)`` boxes the number the attached file ``note-N.txt`` holds (read with
the ``files`` tools' ``read_file`` from the run's workspace: ``The note says K.``).
Each working turn calls ``lookup`` (topic ``taskNaK`` for attempt K, step =
turn) until C lookups are done; then the answer. The policy is stateless
(attempt from the task's ``[Attempt k]`` summaries, turn from the assistant
messages), so the expected accuracy is known exactly. With ``$BENCH_LOG`` set,
each request is logged as ``model taskN <attempt> <turn>``.
"""

from __future__ import annotations

import os
import re
from typing import Any

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import is_closing_request

TASK = re.compile(r"Task (\d+): add (-?\d+) and (-?\d+) after (\d+) lookups")


def solve(body: dict[str, Any]) -> str:
    messages = body["messages"]
    task = messages[1]["content"]
    match = TASK.search(task)
    if match is None:
        return "I cannot read this task.</think>\n\nNo task found."
    number, a, b, lookups = (int(g) for g in match.groups())
    attempt = task.count("[Attempt ") + 1
    turn = sum(1 for m in messages if m["role"] == "assistant") + 1
    _log(f"model task{number} {attempt} {turn}")
    value = a + b + (1 if "(wrong)" in task else 0)
    if body.get("continue_final_message"):
        return "Failure type: incomplete\nWhat happened: the attempt gave no answer."
    if is_closing_request(messages[-1]["content"]):
        if "(restart)" in task and attempt == 1:
            return "Closing.</think>\n\nI could not settle on a number."
        if "(file)" in task:
            value = int(_last_tool_result(messages).split()[-1])
        if "(garble)" in task:  # an answer the sim judge cannot grade (judge_policy)
            return "Closing.</think>\n\nThe sum is \\boxed{UNPARSEABLE}"
        return f"Closing.</think>\n\nThe sum is \\boxed{{{value:,}}}"
    if turn <= lookups:
        call = render_call("lab", "lookup", {"topic": f"task{number}a{attempt}", "step": turn})
        return f"Looking up.</think>\n\n{call}"
    if "(file)" in task and turn == lookups + 1:
        call = render_call("tool-files", "read_file", {"path": f"note-{number}.txt"})
        return f"Reading the note.</think>\n\n{call}"
    return "I have it.</think>\n\nThe answer is ready."


def _last_tool_result(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message["role"] == "user" and "note says" in str(message["content"]):
            text = str(message["content"])
            return text[text.index("note says") :].split("\n", 1)[0].rstrip(".")
    return "0"


def _log(line: str) -> None:
    path = os.environ.get("BENCH_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(line + "\n")
