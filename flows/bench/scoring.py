"""Scores of a benchmark: avg@K, pass@K, their standard error and the per-group breakdown.

Pure functions over the judged attempts (``results.jsonl`` lines); what
``summary.json`` holds is :func:`summarize`'s dict and what ``bench`` prints is
:func:`summary_table`.

A task counts once it has at least one finished attempt: avg@K and pass@K are
computed over the finished attempts of those tasks (``tasks_scored``), so a
``bench`` stopped half-way still reports numbers; ``complete`` says whether every
task has all K attempts, and only then are the scores the benchmark's. A
``judge_error`` verdict counts as wrong (``correct`` is False for it).
"""

from __future__ import annotations

import importlib.metadata
import math
import re
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mirograph.errors import UserInputError
from mirograph.flows.bench.records import AttemptResult

if TYPE_CHECKING:
    from rich.table import Table

#: The key ``by_group`` files attempts under when some tasks have a group and others none.
NO_GROUP = "none"

_REQUIRED = tuple(AttemptResult.__annotations__)


@dataclass(frozen=True)
class TaskScore:
    """One task's finished attempts, reduced to what the scores need."""

    task_id: str
    group: str | None
    #: One flag per finished attempt, in attempt order: judged correct.
    correct: tuple[bool, ...]

    @property
    def share(self) -> float:
        return sum(self.correct) / len(self.correct)

    @property
    def passed(self) -> bool:
        return any(self.correct)


def check_rows(rows: Iterable[AttemptResult], *, runs: int) -> list[AttemptResult]:
    """The rows that count: one per (task, attempt), the last written winning, tasks in the
    order they first appear and each task's attempts in order.

    A rerun of ``bench`` may append an attempt again; attempts beyond ``runs`` (a
    results file reused with a smaller K) are left out so avg@K is over K runs.
    """
    if runs < 1:
        raise UserInputError(f"runs is {runs}: K must be at least 1 (give --runs 1 or more)")
    latest: dict[tuple[str, int], AttemptResult] = {}
    for n, row in enumerate(rows, start=1):
        missing = [key for key in _REQUIRED if key not in row]
        if missing:
            raise UserInputError(
                f"results row {n} (task {row.get('task_id', '?')}): missing field "
                f"{missing[0]!r}: the file was not written by this mirograph's bench; "
                "move it away and rerun"
            )
        attempt = row["attempt"]
        if not isinstance(attempt, int) or attempt < 1:
            raise UserInputError(
                f"results row {n} (task {row['task_id']}): field 'attempt' is {attempt!r}, "
                "expected a run number 1..K; fix or delete that line"
            )
        if attempt <= runs:
            latest[(row["task_id"], attempt)] = row
    order: dict[str, int] = {}
    for task, _ in latest:
        order.setdefault(task, len(order))
    return [latest[key] for key in sorted(latest, key=lambda key: (order[key[0]], key[1]))]


def task_scores(
    rows: Sequence[AttemptResult], correct: Callable[[AttemptResult], bool]
) -> list[TaskScore]:
    """Each task's attempts judged by ``correct``, in the order tasks first appear."""
    by_task: dict[str, list[AttemptResult]] = {}
    for row in rows:
        by_task.setdefault(row["task_id"], []).append(row)
    return [
        TaskScore(
            task_id=task_id,
            group=attempts[0]["group"],
            correct=tuple(correct(row) for row in sorted(attempts, key=lambda r: r["attempt"])),
        )
        for task_id, attempts in by_task.items()
    ]


def is_correct(row: AttemptResult) -> bool:
    return bool(row["correct"])


def is_correct_without_restarts(row: AttemptResult) -> bool:
    """Correct had restarts been off: only runs that ended without a boxed answer restart,
    so a run that restarted would have ended unanswered (wrong) without them."""
    return bool(row["correct"]) and row["restarts"] == 0


def avg_at_k(scores: Sequence[TaskScore]) -> float | None:
    """Mean over tasks of the share of their attempts judged correct (None: no tasks)."""
    return statistics.fmean(s.share for s in scores) if scores else None


def pass_at_k(scores: Sequence[TaskScore]) -> float | None:
    """Share of tasks with at least one correct attempt (None: no tasks)."""
    return sum(s.passed for s in scores) / len(scores) if scores else None


def run_accuracies(rows: Sequence[AttemptResult]) -> dict[int, float]:
    """Accuracy of each run k (the k-th attempts of every task that has one)."""
    by_run: dict[int, list[bool]] = {}
    for row in rows:
        by_run.setdefault(row["attempt"], []).append(bool(row["correct"]))
    return {k: sum(flags) / len(flags) for k, flags in sorted(by_run.items())}


def standard_error(
    rows: Sequence[AttemptResult], scores: Sequence[TaskScore]
) -> tuple[float | None, str]:
    """The score's standard error and what it is of.

    With two or more runs: the standard error of the mean of the per-run
    accuracies (sample stdev / sqrt(runs)), ``"runs"``. With one: the binomial
    sqrt(p(1-p)/n) over the n scored tasks, ``"tasks"``.
    """
    per_run = list(run_accuracies(rows).values())
    if len(per_run) >= 2:
        return statistics.stdev(per_run) / math.sqrt(len(per_run)), "runs"
    p = avg_at_k(scores)
    if p is None:
        return None, "tasks"
    return math.sqrt(p * (1 - p) / len(scores)), "tasks"


def group_key(group: str) -> tuple[int, float | str]:
    """GAIA's levels "1".."3" sort as numbers, topics by name, ``none`` last."""
    if group == NO_GROUP:
        return (2, "")
    if re.fullmatch(r"-?\d+(\.\d+)?", group):
        return (0, float(group))
    return (1, group)


def by_group(scores: Sequence[TaskScore]) -> dict[str, dict[str, Any]]:
    """Per group: tasks, avg@K and pass@K; empty where no task has a group."""
    if all(s.group is None for s in scores):
        return {}
    groups: dict[str, list[TaskScore]] = {}
    for s in scores:
        groups.setdefault(NO_GROUP if s.group is None else str(s.group), []).append(s)
    return {
        name: {
            "tasks": len(groups[name]),
            "avg_at_k": avg_at_k(groups[name]),
            "pass_at_k": pass_at_k(groups[name]),
        }
        for name in sorted(groups, key=group_key)
    }


def mirograph_version() -> str:
    try:
        return importlib.metadata.version("mirograph")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def mean_of(rows: Sequence[AttemptResult], field: str) -> float | None:
    return statistics.fmean(float(row[field]) for row in rows) if rows else None  # type: ignore[literal-required]


def summarize(
    rows: Sequence[AttemptResult],
    *,
    benchmark: str,
    tasks: int,
    runs: int,
    judge: str,
    flow: str,
    model: str | None,
) -> dict[str, Any]:
    """``summary.json``: the scores of ``rows`` (finished attempts) of ``tasks`` tasks x ``runs``.

    Scores are None where nothing is finished yet. ``without_restarts`` scores the
    same attempts as if the flow's restart rule were off.
    """
    if tasks < 0:
        raise UserInputError(f"tasks is {tasks}: the number of tasks cannot be negative")
    counted = check_rows(rows, runs=runs)
    scores = task_scores(counted, is_correct)
    plain = task_scores(counted, is_correct_without_restarts)
    stderr, stderr_of = standard_error(counted, scores)
    judge_errors = sum(1 for row in counted if row["judge"].get("verdict") == "judge_error")
    return {
        "benchmark": benchmark,
        "tasks": tasks,
        "runs": runs,
        "attempts_done": len(counted),
        "attempts_expected": tasks * runs,
        "tasks_scored": len(scores),
        # a judge_error or a failed attempt is owed: the same command again tries it
        "complete": len(counted) >= tasks * runs
        and len(scores) >= tasks
        and not judge_errors
        and not any(row["stop_reason"] == "failed" for row in counted),
        "avg_at_k": avg_at_k(scores),
        "pass_at_k": pass_at_k(scores),
        "stderr": stderr,
        "stderr_of": stderr_of,
        "run_accuracies": {str(k): acc for k, acc in run_accuracies(counted).items()},
        "without_restarts": {
            "avg_at_k": avg_at_k(plain),
            "pass_at_k": pass_at_k(plain),
            "restarted_attempts": sum(1 for row in counted if row["restarts"] > 0),
        },
        "by_group": by_group(scores),
        "judge": judge,
        "flow": flow,
        "model": model,
        "mirograph_version": mirograph_version(),
        "judge_errors": judge_errors,
        "no_answer": sum(1 for row in counted if row["answer"] is None),
        "stop_reasons": dict(Counter(str(row["stop_reason"]) for row in counted).most_common()),
        "mean_turns": mean_of(counted, "turns"),
        "mean_tool_calls": mean_of(counted, "tool_calls"),
        "mean_prompt_tokens": mean_of(counted, "prompt_tokens"),
        "mean_completion_tokens": mean_of(counted, "completion_tokens"),
        "mean_wall_s": mean_of(counted, "wall_s"),
    }


def percent(share: float | None) -> str:
    """A share as a percentage with one decimal; ``-`` where there is none yet."""
    return "-" if share is None else f"{share * 100:.1f}%"


def summary_rows(summary: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """The table's rows (label, tasks, avg@K, pass@K, ± stderr), overall first."""
    done = f"{summary['tasks_scored']}/{summary['tasks']}"
    stderr = summary["stderr"]
    rows = [
        (
            "all" if summary["complete"] else "all (incomplete)",
            done,
            percent(summary["avg_at_k"]),
            percent(summary["pass_at_k"]),
            "-" if stderr is None else f"±{stderr * 100:.1f} ({summary['stderr_of']})",
        )
    ]
    plain = summary["without_restarts"]
    if plain["restarted_attempts"]:
        rows.append(
            ("without restarts", done, percent(plain["avg_at_k"]), percent(plain["pass_at_k"]), "")
        )
    for name, group in summary["by_group"].items():
        rows.append(
            (
                f"group {name}",
                str(group["tasks"]),
                percent(group["avg_at_k"]),
                percent(group["pass_at_k"]),
                "",
            )
        )
    return rows


def summary_table(summary: dict[str, Any]) -> Table:
    """The scores as ``bench`` prints them: overall, without restarts, then per group."""
    from rich.table import Table

    k = summary["runs"]
    table = Table(title=f"{summary['benchmark']}: {summary['attempts_done']} attempts, K={k}")
    for header in ("", "tasks", f"avg@{k}", f"pass@{k}", "stderr"):
        table.add_column(header, justify="left" if not header else "right")
    for row in summary_rows(summary):
        table.add_row(*row)
    return table
