"""MiroThinker-compatible files: their names, fields and values, as the reference reads them."""

from __future__ import annotations

import json
import re
from pathlib import Path

from support.bench_rows import attempt_row

from mirograph.flows.bench.compat import write_compatible
from mirograph.flows.bench.records import AttemptResult
from mirograph.flows.bench.scoring import summarize

TASK_FIELDS = {
    "task_id", "task_question", "ground_truth", "file_path", "status", "model_boxed_answer",
    "metadata", "error_message", "final_judge_result", "judge_type", "log_file_path",
    "attempts", "pass_at_k_success", "k_value",
}  # fmt: skip
ATTEMPT_FIELDS = {
    "attempt_number", "model_boxed_answer", "status", "log_file_path", "final_judge_result",
    "judge_type", "is_correct", "error_message", "mirograph_run_id",
}  # fmt: skip


def row(
    task: str, attempt: int, correct: bool, answer: str | None = "Paris", verdict: str = ""
) -> AttemptResult:
    return attempt_row(
        task, attempt, correct, answer=answer, verdict=verdict, method="llm",
        question=f"Where is {task}?", ground_truth="Paris", group="1", turns=3, tool_calls=2,
        prompt_tokens=10, completion_tokens=5, wall_s=1.0,
        stop_reason="answered" if answer is not None else "max_turns",
    )  # fmt: skip


def rows() -> list[AttemptResult]:
    """K=2. A: no answer, then right. B: right, then a judge error. C: wrong twice. D: right,
    then wrong. Run 1: 2/4 right, run 2: 1/4; pass@2: 3/4."""
    return [
        row("A", 1, False, answer=None),
        row("A", 2, True),
        row("B", 1, True),
        row("B", 2, False, verdict="judge_error"),
        row("C", 1, False, answer="Lyon"),
        row("C", 2, False, answer="Nice"),
        row("D", 1, True),
        row("D", 2, False, answer="Lyon"),
    ]


def write(tmp_path: Path) -> list[Path]:
    summary = summarize(rows(), benchmark="gaia", tasks=4, runs=2, judge="j", flow="f", model=None)
    return write_compatible(tmp_path, rows(), summary)


def lines(path: Path) -> dict[str, dict]:
    return {
        line["task_id"]: line
        for line in map(json.loads, path.read_text(encoding="utf-8").splitlines())
    }


def test_the_reference_file_layout(tmp_path: Path) -> None:
    written = write(tmp_path)
    assert sorted(str(p.relative_to(tmp_path)) for p in written) == [
        "average_scores_pass_at_1.txt",
        "benchmark_results.jsonl",
        "benchmark_results_pass_at_2_accuracy.txt",
        "run_1/benchmark_results.jsonl",
        "run_1/benchmark_results_pass_at_1_accuracy.txt",
        "run_2/benchmark_results.jsonl",
        "run_2/benchmark_results_pass_at_1_accuracy.txt",
    ]
    assert all(p.is_file() for p in written)


def test_the_pass_at_k_lines_hold_every_attempt(tmp_path: Path) -> None:
    write(tmp_path)
    tasks = lines(tmp_path / "benchmark_results.jsonl")
    assert list(tasks) == ["A", "B", "C", "D"]
    a = tasks["A"]
    assert set(a) == TASK_FIELDS
    assert all(set(attempt) == ATTEMPT_FIELDS for t in tasks.values() for attempt in t["attempts"])
    assert (a["task_question"], a["ground_truth"], a["k_value"]) == ("Where is A?", "Paris", 2)
    # Attempt 1 had no boxed answer, so attempt 2 speaks for the task, as in the reference.
    assert (a["model_boxed_answer"], a["status"]) == ("Paris", "success")
    assert (a["final_judge_result"], a["judge_type"], a["pass_at_k_success"]) == (
        "PASS_AT_K_SUCCESS",
        "pass_at_k",
        True,
    )
    assert [x["final_judge_result"] for x in a["attempts"]] == [None, "CORRECT"]
    assert a["attempts"][0]["error_message"] == "no boxed answer (max_turns)"
    assert a["attempts"][1]["mirograph_run_id"] == "run-A-2"
    assert a["metadata"] == {"group": "1"}
    b_attempts = tasks["B"]["attempts"]
    assert [(x["final_judge_result"], x["judge_type"]) for x in b_attempts] == [
        ("CORRECT", "llm"),
        ("ERROR", "error"),
    ]
    c = tasks["C"]
    assert (c["final_judge_result"], c["model_boxed_answer"]) == ("PASS_AT_K_FAILED", "Lyon")
    assert [x["final_judge_result"] for x in c["attempts"]] == ["INCORRECT", "INCORRECT"]


def test_each_run_is_a_pass_at_1_run(tmp_path: Path) -> None:
    write(tmp_path)
    run_1 = lines(tmp_path / "run_1" / "benchmark_results.jsonl")
    assert [len(t["attempts"]) for t in run_1.values()] == [1, 1, 1, 1]
    assert [t["pass_at_k_success"] for t in run_1.values()] == [False, True, False, True]
    assert {t["k_value"] for t in run_1.values()} == {1}


def test_accuracy_files_read_as_the_reference_reads_them(tmp_path: Path) -> None:
    write(tmp_path)
    # The *_3runs.sh scripts `cat` the file and strip %; calculate_average_score.py
    # accepts a bare percentage.
    texts = {
        name: (tmp_path / name).read_text()
        for name in (
            "benchmark_results_pass_at_2_accuracy.txt",
            "run_1/benchmark_results_pass_at_1_accuracy.txt",
            "run_2/benchmark_results_pass_at_1_accuracy.txt",
        )
    }
    assert texts == {
        "benchmark_results_pass_at_2_accuracy.txt": "75.00%",
        "run_1/benchmark_results_pass_at_1_accuracy.txt": "50.00%",
        "run_2/benchmark_results_pass_at_1_accuracy.txt": "25.00%",
    }
    assert all(re.fullmatch(r"\s*([\d.]+)\s*%?\s*", text) for text in texts.values())
    average = (tmp_path / "average_scores_pass_at_1.txt").read_text()
    assert "Number of runs: 2\n" in average
    assert "Individual scores: ['50.00%', '25.00%']\n" in average
    assert "Standard deviation: 17.68%\n" in average  # sample stdev, as the reference's
    assert "Min score: 25.00%\nMax score: 50.00%\n" in average
    assert "Average score: 37.50%\n" in average


def test_no_attempts_writes_empty_results_and_no_average(tmp_path: Path) -> None:
    summary = summarize([], benchmark="gaia", tasks=3, runs=2, judge="j", flow="f", model=None)
    written = write_compatible(tmp_path, [], summary)
    assert [p.name for p in written] == [
        "benchmark_results.jsonl",
        "benchmark_results_pass_at_2_accuracy.txt",
    ]
    assert (tmp_path / "benchmark_results.jsonl").read_text() == ""
    assert (tmp_path / "benchmark_results_pass_at_2_accuracy.txt").read_text() == "0.00%"
