"""Scores of hand-built attempts whose avg@K, pass@K, stderr and breakdowns are known exactly."""

from __future__ import annotations

import math

import pytest
from rich.console import Console
from support.bench_rows import attempt_row

from mirograph.errors import UserInputError
from mirograph.flows.bench.records import AttemptResult
from mirograph.flows.bench.scoring import check_rows, group_key, summarize, summary_table


def row(task: str, attempt: int, correct: bool, **fields: object) -> AttemptResult:
    return attempt_row(task, attempt, correct, **fields)


def gaia_rows() -> list[AttemptResult]:
    """4 tasks x K=3 (a 5th task not started).

    A (level 1): T F T(restarted)  -> 2/3, without restarts 1/3
    B (level 1): F F judge_error   -> 0
    C (level 2): T T F             -> 2/3
    D (level 2): no answer, T(restarted twice), F -> 1/3, without restarts 0
    runs: 1 = 2/4, 2 = 2/4, 3 = 1/4
    """
    return [
        row("A", 1, True, group="1", turns=2),
        row("A", 2, False, group="1", turns=4),
        row("A", 3, True, group="1", restarts=1, turns=6),
        row("B", 1, False, group="1", turns=8),
        row("B", 2, False, group="1", turns=2),
        row("B", 3, False, group="1", verdict="judge_error", turns=4),
        row("C", 1, True, group="2", turns=6),
        row("C", 2, True, group="2", turns=8),
        row("C", 3, False, group="2", turns=2),
        row("D", 1, False, group="2", answer=None, turns=4),
        row("D", 2, True, group="2", restarts=2, turns=6),
        row("D", 3, False, group="2", turns=8),
    ]


def summary_of(rows: list[AttemptResult], *, tasks: int = 5, runs: int = 3) -> dict:
    return summarize(
        rows, benchmark="gaia", tasks=tasks, runs=runs, judge="exact", flow="f.yaml", model="m"
    )


def test_avg_pass_and_counts_of_a_partial_benchmark() -> None:
    summary = summary_of(gaia_rows())
    assert summary["avg_at_k"] == pytest.approx(5 / 12, abs=1e-12)
    assert summary["pass_at_k"] == 0.75
    assert summary["attempts_done"] == 12
    assert summary["attempts_expected"] == 15
    assert summary["tasks_scored"] == 4
    assert summary["complete"] is False
    assert summary["judge_errors"] == 1
    assert summary["no_answer"] == 1
    assert summary["mean_turns"] == pytest.approx(5.0)
    assert summary["mean_tool_calls"] == 3.0
    assert summary["mean_prompt_tokens"] == 1000.0
    assert summary["mean_wall_s"] == 2.0
    assert summary["stop_reasons"] == {"answered": 11, "no_answer": 1}
    assert (summary["judge"], summary["flow"], summary["model"]) == ("exact", "f.yaml", "m")
    assert summary["mirograph_version"] != ""


def test_stderr_across_runs_when_k_is_two_or_more() -> None:
    summary = summary_of(gaia_rows())
    assert summary["run_accuracies"] == {"1": 0.5, "2": 0.5, "3": 0.25}
    # stdev(0.5, 0.5, 0.25) = sqrt(3)/12, over sqrt(3) runs.
    assert summary["stderr"] == pytest.approx(1 / 12, abs=1e-12)
    assert summary["stderr_of"] == "runs"


def test_stderr_is_binomial_over_tasks_with_one_run() -> None:
    rows = [row("A", 1, True), row("B", 1, False), row("C", 1, False), row("D", 1, False)]
    summary = summary_of(rows, tasks=4, runs=1)
    assert summary["avg_at_k"] == 0.25
    assert summary["stderr"] == pytest.approx(math.sqrt(0.25 * 0.75 / 4), abs=1e-12)
    assert summary["stderr_of"] == "tasks"
    assert summary["complete"] is True


def test_without_restarts_counts_only_attempts_that_never_restarted() -> None:
    plain = summary_of(gaia_rows())["without_restarts"]
    assert plain["avg_at_k"] == 0.25  # (1/3 + 0 + 2/3 + 0) / 4
    assert plain["pass_at_k"] == 0.5
    assert plain["restarted_attempts"] == 2


def test_by_group_gives_each_level_its_scores() -> None:
    groups = summary_of(gaia_rows())["by_group"]
    assert list(groups) == ["1", "2"]
    assert groups["1"]["tasks"] == 2
    assert groups["1"]["avg_at_k"] == pytest.approx(1 / 3, abs=1e-12)
    assert groups["1"]["pass_at_k"] == 0.5
    assert groups["2"]["avg_at_k"] == pytest.approx(1 / 2, abs=1e-12)
    assert groups["2"]["pass_at_k"] == 1.0


def test_groups_sort_numerically_and_tasks_without_one_are_listed_last() -> None:
    rows = [row("A", 1, True, group="10"), row("B", 1, False, group="2"), row("C", 1, True)]
    assert list(summary_of(rows, tasks=3, runs=1)["by_group"]) == ["2", "10", "none"]
    assert sorted(["b", "3", "a", "1"], key=group_key) == ["1", "3", "a", "b"]
    assert summary_of([row("A", 1, True)], tasks=1, runs=1)["by_group"] == {}


def test_a_judge_error_counts_as_wrong() -> None:
    rows = [row("A", 1, False, verdict="judge_error"), row("B", 1, True)]
    summary = summary_of(rows, tasks=2, runs=1)
    assert summary["avg_at_k"] == 0.5
    assert summary["judge_errors"] == 1


def test_a_rewritten_attempt_counts_once_and_attempts_beyond_k_not_at_all() -> None:
    rows = [row("A", 1, True), row("A", 1, False), row("A", 2, True), row("B", 1, True)]
    summary = summary_of(rows, tasks=2, runs=1)
    assert summary["attempts_done"] == 2
    assert summary["avg_at_k"] == 0.5  # A's attempt 1 as last written (wrong), B right


def test_no_attempts_gives_no_scores_rather_than_zero() -> None:
    summary = summary_of([], tasks=3, runs=2)
    assert summary["avg_at_k"] is None
    assert summary["pass_at_k"] is None
    assert summary["stderr"] is None
    assert summary["mean_turns"] is None
    assert summary["complete"] is False


def test_bad_rows_and_arguments_are_one_line_errors() -> None:
    broken = dict(row("A", 1, True))
    del broken["turns"]
    with pytest.raises(UserInputError, match="results row 1 \\(task A\\): missing field 'turns'"):
        summary_of([broken], tasks=1, runs=1)  # type: ignore[list-item]
    with pytest.raises(UserInputError, match="field 'attempt' is 0"):
        summary_of([row("A", 0, True)], tasks=1, runs=1)
    with pytest.raises(UserInputError, match="runs is 0"):
        summary_of([], tasks=1, runs=0)


def test_the_table_shows_overall_without_restarts_and_groups_in_percent() -> None:
    console = Console(record=True, width=120)
    console.print(summary_table(summary_of(gaia_rows())))
    text = console.export_text()
    assert "avg@3" in text and "pass@3" in text
    overall = next(line for line in text.splitlines() if "all (incomplete)" in line)
    assert "41.7%" in overall and "75.0%" in overall and "±8.3 (runs)" in overall
    plain = next(line for line in text.splitlines() if "without restarts" in line)
    assert "25.0%" in plain and "50.0%" in plain
    level2 = next(line for line in text.splitlines() if "group 2" in line)
    assert "50.0%" in level2 and "100.0%" in level2


def test_rows_keep_the_order_tasks_first_appear_in_with_attempts_in_order() -> None:
    rows = [row("B", 2, True), row("A", 1, True), row("B", 1, False), row("A", 2, False)]
    kept = check_rows(rows, runs=2)
    assert [(r["task_id"], r["attempt"]) for r in kept] == [("B", 1), ("B", 2), ("A", 1), ("A", 2)]
