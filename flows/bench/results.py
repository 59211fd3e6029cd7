"""``results.jsonl``, the bench's memory: one durable line per judged attempt.

A rerun reads it to know what is done: each attempt's last line counts, a
``judge_error`` is owed a verdict, a last line torn by a kill is cut off, and
any other line that is not a result is one error naming it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mirograph.errors import UserInputError
from mirograph.flows.bench.records import AttemptResult


def read_results(path: Path) -> list[AttemptResult]:
    """The judged attempts in ``results.jsonl``. A last line torn by a kill mid-write
    (no newline, not JSON) is cut off the file: its attempt is judged again. Any other
    line that is not a result is one error naming it."""
    if not path.exists():
        return []
    rows: list[AttemptResult] = []
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():  # a blank line (an editor's) holds no attempt
            kept += len(line.encode("utf-8"))
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            row = None
            if number == len(lines) and not line.endswith("\n"):  # torn by a kill
                with open(path, "r+b") as handle:
                    handle.truncate(kept)
                break
        if not _is_result(row):
            raise UserInputError(
                f"{path}:{number}: not a result line; remove the line (its attempt is then"
                " run or judged again) or pass another --out"
            )
        kept += len(line.encode("utf-8"))
        rows.append(row)  # type: ignore[arg-type]
    return rows


def _is_result(row: object) -> bool:
    """Whether ``row`` has what a rerun and the scoring read, of the right kinds."""
    if not isinstance(row, dict):
        return False
    attempt, task_id = row.get("attempt"), row.get("task_id")
    return (
        isinstance(task_id, str | int)
        and not isinstance(task_id, bool)
        and isinstance(attempt, int)
        and not isinstance(attempt, bool)
        and attempt >= 1
        and isinstance(row.get("correct"), bool)
        and isinstance(row.get("judge"), dict)
        and all(isinstance(row.get(k, 0), int | float) for k in _NUMBERS)
    )


_NUMBERS = ("turns", "tool_calls", "prompt_tokens", "completion_tokens", "wall_s", "restarts")


def latest_rows(path: Path) -> list[AttemptResult]:
    """Each attempt's last line in ``results.jsonl`` (an attempt judged again has two)."""
    return list({(str(r["task_id"]), int(r["attempt"])): r for r in read_results(path)}.values())


def judged_rows(path: Path) -> list[AttemptResult]:
    """The attempts a rerun keeps: not those it owes again (``owed_again``)."""
    return [r for r in latest_rows(path) if not owed_again(r)]


def owed_again(row: AttemptResult) -> bool:
    """A ``judge_error`` is judged again (its run ended: only the judge is asked, and a
    judge that was away may be back); an attempt that failed is tried again (its run
    resumed: a model key fixed, a server back), so neither counts as done yet."""
    return (row.get("judge") or {}).get("verdict") == "judge_error" or (
        row.get("stop_reason") == "failed"
    )


class ResultsFile:
    """``results.jsonl``, appended one durable line per judged attempt."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()  # there from the start: an empty file says nothing is judged yet
        with open(path, "rb") as handle:  # a last line left without its newline gets one
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(size - 1, 0))
            unended = size > 0 and handle.read(1) != b"\n"
        if unended:
            with open(path, "ab") as out:
                out.write(b"\n")

    def append(self, row: AttemptResult) -> None:
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())
