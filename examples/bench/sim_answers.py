"""A simulated model that "answers" the bundled sample datasets, for trying ``mirograph bench``
offline: it looks each question up in a table of its own (a few answers wrong on purpose,
so the scores are not all 100 %), reads an attached file first where a task has one, and
lists the workspace a few times so the runs' tool-call counts differ (the scaling plot).

    PYTHONPATH=examples/bench mirograph sim-model --policy sim_answers:answer --port 8011

It knows nothing: a question it has no entry for is answered ``unknown``.
"""

from __future__ import annotations

import re
from typing import Any

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import is_closing_request

#: question fragment -> the boxed answer (wrong ones marked)
ANSWERS = {
    "17 multiplied by 23": "391",
    "how many crates": "46",
    "which team has the most members": "Sharks",  # wrong: the roster says Otters
    "capital of France": "Paris",
    "12 squared": "144",
    "days are in a leap year": "365",  # wrong
    "chemical symbol for gold": "Au",
    "一周有几天": "7",
    "十二加八": "20",
    "水的化学式": "H₂O",
    "一小时有多少分钟": "60",
    "9 times 8": "72",
    "离太阳最近的行星": "金星",  # wrong: Mercury is 水星
    "smallest prime number greater than 20": "23",
    "most moons as of 2023": "(B) Saturn",
    "edges does a cube have": "12",
    "sum of 250 and 175": "425",
    "train leaves at 09:40": "11:15",
    "3/4 or 5/8": "5/8",  # wrong
    "100 divided by 4": "25",
    "budget in credits": "4,800",
    "boiling point of water": "100",
}
ATTACHED = re.compile(r"Attached to this task[^:]*: `([^`]+)`")
#: question fragment -> text its attached file holds: no answer unless the file was read
READ_FIRST = {
    "how many crates": "crates:",
    "which team": "name,team",
    "budget in credits": "Budget:",
}


def answer(body: dict[str, Any]) -> str:
    messages = body["messages"]
    task = str(messages[1]["content"])
    turn = sum(1 for m in messages if m["role"] == "assistant") + 1
    if is_closing_request(str(messages[-1]["content"])):
        found = next((a for q, a in ANSWERS.items() if q in task), "unknown")
        seen = " ".join(str(m["content"]) for m in messages[2:])
        if any(q in task and mark not in seen for q, mark in READ_FIRST.items()):
            found = "unknown"  # the attached file never reached the workspace
        return f"I checked what I needed.</think>\n\n\\boxed{{{found}}}"
    attached = ATTACHED.search(task)
    looks = len(task) % 3  # 0-2 workspace listings, then the file, then the answer
    if turn <= looks:
        call = render_call("tool-files", "list_files", {"path": "."})
        return f"Let me see the workspace.</think>\n\n{call}"
    if attached and turn == looks + 1:
        call = render_call("tool-files", "read_file", {"path": attached.group(1)})
        return f"Reading the attachment.</think>\n\n{call}"
    return "I have what I need.</think>\n\nThe answer is ready."
