"""MiroThinker/MiroFlow-compatible result files, so a score can be checked with their tools.

Matched against MiroThinker's ``common_benchmark.py`` (``BenchmarkResult`` and
its per-attempt dicts, ``save_results``, the accuracy file written beside
``benchmark_results.jsonl``), its ``calculate_average_score.py`` (reads
``run_*/benchmark_results_pass_at_{k}_accuracy.txt``, writes
``average_scores_pass_at_{k}.txt``) and its ``*_3runs.sh`` scripts (``cat`` an
accuracy file and strip ``%``)::

    benchmark_results.jsonl                        one line per task, all K attempts
    benchmark_results_pass_at_{K}_accuracy.txt     "40.00%": pass@K over those tasks
    run_{k}/benchmark_results.jsonl                the k-th attempts, as a pass@1 run
    run_{k}/benchmark_results_pass_at_1_accuracy.txt
    average_scores_pass_at_1.txt                   mean/stdev/min/max of the run_k accuracies

A task line holds ``task_id``, ``task_question``, ``ground_truth``, ``file_path``,
``status``, ``model_boxed_answer``, ``metadata``, ``error_message``,
``final_judge_result`` (``PASS_AT_K_SUCCESS`` / ``PASS_AT_K_FAILED``),
``judge_type`` (``pass_at_k``), ``log_file_path``, ``attempts``,
``pass_at_k_success`` and ``k_value``; an attempt holds ``attempt_number``,
``model_boxed_answer``, ``status``, ``log_file_path``, ``final_judge_result``
(``CORRECT`` / ``INCORRECT`` / ``ERROR`` for a judge error, None for no
answer: the reference judges only boxed answers), ``judge_type``, ``is_correct``
and ``error_message``, plus ``mirograph_run_id``.

Not confirmed or different: the reference stops a task's attempts at the first
correct one, ours lists all K (pass@K is the same); ``judge_type`` per attempt
is our judge's method (``exact``/``llm``), the reference's names are its own;
``file_path`` and ``log_file_path`` are None (attempts are runs in the store:
``mirograph show RUN_ID``; the results rows do not carry the task's files);
``metadata`` holds only the task's ``group``.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mirograph.flows.bench.records import AttemptResult
from mirograph.flows.bench.scoring import check_rows

RESULTS = "benchmark_results.jsonl"


def judge_result(row: AttemptResult) -> str | None:
    """The reference's per-attempt ``final_judge_result`` for a judged attempt."""
    if row["answer"] is None:
        return None
    verdict = row["judge"].get("verdict")
    if verdict == "judge_error":
        return "ERROR"
    return "CORRECT" if row["correct"] else "INCORRECT"


def attempt_entry(row: AttemptResult) -> dict[str, Any]:
    answered = row["answer"] is not None
    return {
        "attempt_number": row["attempt"],
        "model_boxed_answer": row["answer"] or "",
        "status": "failed" if row["stop_reason"] == "failed" else "success",
        "log_file_path": None,
        "final_judge_result": judge_result(row),
        "judge_type": "error" if judge_result(row) == "ERROR" else row["judge"].get("method"),
        "is_correct": bool(row["correct"]),
        "error_message": None if answered else f"no boxed answer ({row['stop_reason']})",
        "mirograph_run_id": row["run_id"],
    }


def task_line(attempts: Sequence[AttemptResult], k: int) -> dict[str, Any]:
    """One task as the reference's ``BenchmarkResult``: attempt 1 speaks for the task
    unless a later attempt has the boxed answer it lacks."""
    entries = [attempt_entry(row) for row in attempts]
    lead = next((e for e in entries if e["model_boxed_answer"]), entries[0])
    passed = any(e["is_correct"] for e in entries)
    first = attempts[0]
    return {
        "task_id": first["task_id"],
        "task_question": first["question"],
        "ground_truth": first["ground_truth"],
        "file_path": None,
        "status": lead["status"],
        "model_boxed_answer": lead["model_boxed_answer"],
        "metadata": {} if first["group"] is None else {"group": first["group"]},
        "error_message": lead["error_message"] or "",
        "final_judge_result": "PASS_AT_K_SUCCESS" if passed else "PASS_AT_K_FAILED",
        "judge_type": "pass_at_k",
        "log_file_path": None,
        "attempts": entries,
        "pass_at_k_success": passed,
        "k_value": k,
    }


def write_results(folder: Path, by_task: dict[str, list[AttemptResult]], k: int) -> list[Path]:
    """``benchmark_results.jsonl`` and its pass@k accuracy file in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [task_line(attempts, k) for attempts in by_task.values()]
    results = folder / RESULTS
    results.write_text(
        "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8"
    )
    passed = sum(line["pass_at_k_success"] for line in lines)
    accuracy = folder / f"benchmark_results_pass_at_{k}_accuracy.txt"
    accuracy.write_text(f"{passed / len(lines) if lines else 0.0:.2%}", encoding="utf-8")
    return [results, accuracy]


def run_accuracy(folder: Path) -> float:
    """A run's accuracy in percent, read back from the file just written."""
    return float((folder / "benchmark_results_pass_at_1_accuracy.txt").read_text().rstrip("%"))


def average_scores_text(scores: Sequence[float]) -> str:
    """``average_scores_pass_at_1.txt`` as the reference's ``calculate_average_score.py``
    writes it from the run accuracies (percent)."""
    rule = "=" * 50
    std = statistics.stdev(scores) if len(scores) > 1 else 0.0
    return (
        f"EVALUATION RESULTS\n{rule}\nPass@1 Results:\n"
        f"Number of runs: {len(scores)}\n"
        f"Individual scores: {[f'{s:.2f}%' for s in scores]}\n"
        f"Standard deviation: {std:.2f}%\n"
        f"Min score: {min(scores):.2f}%\n"
        f"Max score: {max(scores):.2f}%\n"
        f"Average score: {statistics.fmean(scores):.2f}%\n"
        f"{rule}\n"
    )


def write_compatible(
    out_dir: Path, rows: Sequence[AttemptResult], summary: dict[str, Any]
) -> list[Path]:
    """Write the reference's files for ``rows`` under ``out_dir``; the paths written.

    K is ``summary["runs"]``; a run folder is written only for a k that has attempts.
    """
    k = int(summary["runs"])
    counted = check_rows(rows, runs=k)
    by_task: dict[str, list[AttemptResult]] = {}
    for row in counted:
        by_task.setdefault(row["task_id"], []).append(row)
    written = write_results(out_dir, by_task, k)
    run_scores: list[float] = []
    for run in range(1, k + 1):
        of_run = {
            task: [row for row in attempts if row["attempt"] == run]
            for task, attempts in by_task.items()
        }
        of_run = {task: attempts for task, attempts in of_run.items() if attempts}
        if not of_run:
            continue
        folder = out_dir / f"run_{run}"
        written += write_results(folder, of_run, 1)
        run_scores.append(run_accuracy(folder))
    if run_scores:
        average = out_dir / "average_scores_pass_at_1.txt"
        average.write_text(average_scores_text(run_scores), encoding="utf-8")
        written.append(average)
    return written
