"""A small benchmark whose scores are known exactly, and the flow that runs it.

Six tasks in the standardized JSONL layout (levels 1 to 3), answered over HTTP
by ``support.bench_policy:solve``: tasks 3 and 6 are answered wrong, task 4 only
after a restart, task 5 from its attached file, task 2 boxed as ``1,234`` (GAIA's
number rules make it right). So avg@k = pass@k = 4/6, levels 1/0.5/0.5, and
4 - 1 = 3 of 6 without restarts.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

#: task id -> (question, ground truth, level, attached file text or None)
TASKS = {
    "t1": ("Task 1: add 2 and 3 after 1 lookups.", "5", 1, None),
    "t2": ("Task 2: add 1000 and 234 after 2 lookups.", "1234", 1, None),
    "t3": ("Task 3: add 4 and 4 after 1 lookups. (wrong)", "8", 2, None),
    "t4": ("Task 4: add 10 and 5 after 3 lookups. (restart)", "15", 2, None),
    "t5": ("Task 5: add 7 and 8 after 0 lookups. (file)", "99", 3, "The note says 99."),
    "t6": ("Task 6: add 1 and 1 after 1 lookups. (wrong)", "2", 3, None),
}
CORRECT = {"t1", "t2", "t4", "t5"}
#: Each attempt's tool calls, turns and model calls in an uninterrupted run. Task 4's
#: first attempt looks up 3 times, says it is ready and closes without a box (5 model
#: calls, a summary request on top); the second does the same and boxes the answer.
TOOL_CALLS = {"t1": 1, "t2": 2, "t3": 1, "t4": 6, "t5": 1, "t6": 1}


def write_dataset(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for task_id, (question, truth, level, note) in TASKS.items():
        name = f"note-{task_id[1:]}.txt" if note else ""
        if note:
            (folder / name).write_text(note + "\n", encoding="utf-8")
        row = {
            "task_id": task_id,
            "task_question": question,
            "ground_truth": truth,
            "file_name": name,
            "metadata": {"Level": level},
        }
        lines.append(json.dumps(row))
    path = folder / "standardized_data.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_flow(path: Path, base_url: str, tools: str = "support.team_tools") -> Path:
    """The flow the bench tests run; ``tools``: the module of its ``lookup`` tool
    (``support.pause_tools`` holds a call until the test lets it go)."""
    flow = {
        "name": "bench-sums",
        "models": {"m": {"base_url": base_url, "max_tokens": 512, "max_retries": 0}},
        "agents": {
            "main": {
                "model": "m",
                "max_turns": 6,
                "max_restarts": 1,
                "tools": ["files", {f"{tools}:lookup": None}],
            }
        },
        "entry": "main",
    }
    path.write_text(yaml.safe_dump(flow), encoding="utf-8")
    return path


def results(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
