"""The bench's memory, ``results.jsonl``: what a rerun keeps, cuts and refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mirograph.errors import UserInputError
from mirograph.flows.bench.judges.make import make_judge
from mirograph.flows.bench.results import ResultsFile, judged_rows, latest_rows, read_results


def _row(task_id: str, attempt: int = 1, verdict: str = "correct") -> dict:
    return {
        "task_id": task_id,
        "attempt": attempt,
        "correct": verdict == "correct",
        "judge": {"verdict": verdict},
        "turns": 2,
        "tool_calls": 1,
    }


def test_a_line_torn_by_a_kill_is_cut_and_its_attempt_owed_again(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    whole = json.dumps(_row("a")) + "\n"
    path.write_text(whole + json.dumps(_row("b"))[:20])  # killed mid-write
    assert [r["task_id"] for r in read_results(path)] == ["a"]
    assert path.read_text() == whole
    ResultsFile(path).append(_row("b"))  # type: ignore[arg-type]
    assert [r["task_id"] for r in read_results(path)] == ["a", "b"]


def test_a_last_line_without_its_newline_gets_one_before_the_next(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(_row("a")))  # whole, but its newline lost
    results = ResultsFile(path)
    results.append(_row("b"))  # type: ignore[arg-type]
    assert [r["task_id"] for r in read_results(path)] == ["a", "b"]


@pytest.mark.parametrize(
    "bad",
    [
        {**_row("a"), "attempt": "x"},
        {**_row("a"), "attempt": 0},
        {k: v for k, v in _row("a").items() if k != "correct"},
        {**_row("a"), "judge": "oops"},
        {**_row("a"), "turns": "many"},
        ["not", "a", "row"],
    ],
)
def test_a_line_that_is_not_a_result_is_one_error_naming_it(tmp_path: Path, bad: object) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(_row("a")) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(UserInputError) as caught:
        read_results(path)
    assert str(caught.value).startswith(f"{path}:2: not a result line; remove the line")


def test_the_last_line_of_an_attempt_counts_and_judge_errors_are_owed(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    lines = [_row("a", verdict="judge_error"), _row("b", verdict="judge_error"), _row("a")]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    latest = {r["task_id"]: r["judge"]["verdict"] for r in latest_rows(path)}
    assert latest == {"a": "correct", "b": "judge_error"}
    assert [r["task_id"] for r in judged_rows(path)] == ["a"]


def test_a_judge_url_password_is_never_recorded() -> None:
    judge = make_judge("m@http://admin:pa55w0rd@127.0.0.1:9/v1", {})
    assert judge.name == "m@http://admin:***@127.0.0.1:9/v1"
    with pytest.raises(UserInputError) as caught:
        make_judge("m@ftp://admin:pa55w0rd@host/v1", {})
    assert "pa55w0rd" not in str(caught.value)
