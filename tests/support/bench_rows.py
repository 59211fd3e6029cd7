"""Hand-built ``results.jsonl`` rows for the scoring, plots and compatible-file tests."""

from __future__ import annotations

from typing import Any

from mirograph.flows.bench.records import AttemptResult


def attempt_row(task: str, attempt: int, correct: bool, **fields: Any) -> AttemptResult:
    """A judged attempt: ``fields`` override any key (``verdict`` and ``method`` go
    into ``judge``); the rest is a plausible answered attempt."""
    verdict = fields.pop("verdict", None) or ("correct" if correct else "incorrect")
    judge = {"verdict": verdict, "method": fields.pop("method", "exact")}
    answer = fields.get("answer", "42")
    row: dict[str, Any] = {
        "task_id": task,
        "attempt": attempt,
        "run_id": f"run-{task}-{attempt}",
        "question": f"question {task}?",
        "answer": answer,
        "ground_truth": "42",
        "correct": correct,
        "judge": judge,
        "group": None,
        "turns": 4,
        "tool_calls": 3,
        "prompt_tokens": 1000,
        "completion_tokens": 100,
        "wall_s": 2.0,
        "stop_reason": "answered" if answer is not None else "no_answer",
        "restarts": 0,
        **fields,
    }
    return row  # type: ignore[return-value]
