"""``mirograph bench`` end to end: the CLI as a subprocess, the model over HTTP.

The dataset and the sim-model policy (``bench_kit``, ``support.bench_policy``)
make the expected scores known exactly, so they are asserted to the digit.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest
from support.bench_kit import CORRECT, TASKS, TOOL_CALLS, results, write_dataset, write_flow
from support.testkit import Cli, wait_for_fifo


def _bench(
    cli: Cli, data: Path, flow: Path, out: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return cli(
        "bench", str(data), "--flow", str(flow), "--out", str(out), "--store", cli.store,
        *extra, env=env, timeout=180,
    )  # fmt: skip


@pytest.mark.timeout(240)
def test_bench_scores_known_answers_to_the_digit(cli: Cli, sim_model, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data")
    flow = write_flow(tmp_path / "flow.yaml", sim_model("support.bench_policy:solve"))
    out = tmp_path / "out"
    done = _bench(cli, data, flow, out, "--runs", "2", "--concurrency", "3")
    assert done.returncode == 0, done.stderr
    rows = results(out)
    assert sorted((r["task_id"], r["attempt"]) for r in rows) == [
        (t, k) for t in TASKS for k in (1, 2)
    ]
    for row in rows:
        assert row["correct"] == (row["task_id"] in CORRECT), row
        assert row["tool_calls"] == TOOL_CALLS[row["task_id"]], row
        assert row["restarts"] == (1 if row["task_id"] == "t4" else 0), row
        assert row["judge"]["method"] == "exact" and row["group"] == str(TASKS[row["task_id"]][2])
    assert {r["answer"] for r in rows if r["task_id"] == "t2"} == {"1,234"}
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["tasks"], summary["runs"]) == (6, 2)
    assert round(summary["avg_at_k"], 4) == round(4 / 6, 4)
    assert round(summary["pass_at_k"], 4) == round(4 / 6, 4)
    assert round(summary["without_restarts"]["avg_at_k"], 4) == 0.5
    by_group = {g: round(v["avg_at_k"], 4) for g, v in summary["by_group"].items()}
    assert by_group == {"1": 1.0, "2": 0.5, "3": 0.5}
    for name in ("scaling.png", "turns.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "benchmark_results.jsonl").exists()
    assert "66.7" in done.stdout  # the table
    # Every attempt is an ordinary run: `show` reads it.
    shown = cli("show", rows[0]["run_id"], "--json", "--store", cli.store)
    assert json.loads(shown.stdout)["answer"] == rows[0]["answer"]
    # The same command again: nothing runs, nothing changes.
    again = _bench(cli, data, flow, out, "--runs", "2", "--concurrency", "3")
    assert again.returncode == 0, again.stderr
    assert results(out) == rows
    assert "12 judged before" in again.stderr


@pytest.mark.timeout(240)
def test_a_killed_bench_continues_with_no_finished_attempt_rerun(
    cli: Cli, sim_model, tmp_path: Path
) -> None:
    data = write_dataset(tmp_path / "data")
    flow = write_flow(tmp_path / "flow.yaml", sim_model("support.bench_policy:solve"))
    out, fifo, log = tmp_path / "out", tmp_path / "blocked.fifo", tmp_path / "calls.log"
    os.mkfifo(fifo)
    env = {"TEAM_LOG": str(log), "BENCH_LOG": str(log)}
    args = ["bench", str(data), "--flow", str(flow), "--out", str(out), "--store", cli.store]
    bench = cli.popen(
        *args, "--concurrency", "2", "--seed", "7",
        env={**env, "TEAM_BLOCK_AT": "task4a1:2", "TEAM_FIFO": str(fifo)},
    )  # fmt: skip
    try:
        assert wait_for_fifo(fifo, bench) == "blocked at task4a1:2\n"
    finally:
        bench.kill()
        bench.wait(timeout=30)
    before = results(out) if (out / "results.jsonl").exists() else []
    assert len(before) < len(TASKS)  # killed mid-bench
    # As if the killed session had run three hours ago: the time the run lay dead is
    # no run time, so the resumed attempt's wall time stays that of its sessions.
    held = json.loads((out / "bench.json").read_text())["bench_id"] + "-00004-1"
    _shift_session(cli, held, -10_800)
    again = cli(*args, "--concurrency", "2", "--seed", "7", env=env, timeout=180)
    assert again.returncode == 0, again.stderr
    rows = results(out)
    assert rows[: len(before)] == before  # judged attempts kept as they were
    assert sorted(r["task_id"] for r in rows) == sorted(TASKS)
    for row in rows:  # each run did exactly what an uninterrupted one does
        assert row["tool_calls"] == TOOL_CALLS[row["task_id"]], row
        assert row["correct"] == (row["task_id"] in CORRECT), row
    lines = log.read_text().splitlines()
    repeated = {line: n for line, n in Counter(lines).items() if n > 1}
    # No model call was made twice; the one tool call in flight at the kill ran again.
    assert repeated == {"lookup task4a1 2": 2}, repeated
    assert next(r["wall_s"] for r in rows if r["task_id"] == "t4") < 600


def _shift_session(cli: Cli, run_id: str, seconds: float) -> None:
    """Move a killed session's start and events ``seconds`` in time."""
    with closing(sqlite3.connect(cli.home / "runs.db")) as db, db:
        db.execute(
            "UPDATE mirograph_runs SET session_started_at = session_started_at + ? WHERE id = ?",
            (seconds, run_id),
        )
    events = cli.home / "runs" / run_id / "events.jsonl"
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    events.write_text("".join(json.dumps({**e, "ts": e["ts"] + seconds}) + "\n" for e in lines))


def test_bad_input_is_one_line_and_runs_nothing(cli: Cli, tmp_path: Path) -> None:
    from support.testkit import free_port

    data = write_dataset(tmp_path / "data")
    flow = write_flow(tmp_path / "flow.yaml", "http://127.0.0.1:9/v1")
    broken = tmp_path / "broken" / "standardized_data.jsonl"
    broken.parent.mkdir()
    lines = data.read_text().splitlines()
    lines[3] = lines[3].replace('"ground_truth"', '"ground_truht"')
    broken.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    cases = {
        "malformed row": ([str(broken)], "standardized_data.jsonl:4", "ground_truth"),
        "no dataset": ([str(tmp_path / "nope.jsonl")], "nope.jsonl", "nope"),
        "unknown judge": ([str(data), "--judge", "oracle"], "oracle", "exact"),
    }
    for name, (args, names, says) in cases.items():
        done = cli("bench", *args, "--flow", str(flow), "--out", str(out), "--store", cli.store)
        err = done.stderr.splitlines()
        assert (done.returncode, len(err)) == (2, 1), (name, done.stderr)
        assert names in err[0] and says in err[0] and "Traceback" not in done.stderr, (name, err)
    pg = f"postgresql://me:hunter2@127.0.0.1:{free_port()}/runs"
    cases = {  # the store or the broker cannot be used: said before anything runs
        "no store": (["--store", pg], 3, "cannot"),
        "broker, sqlite store": (["--store", cli.store, "--broker", "redis://x/0"], 2, "--store"),
    }
    for name, (args, code, says) in cases.items():
        done = cli("bench", str(data), "--flow", str(flow), "--out", str(out), *args)
        err = done.stderr.splitlines()
        assert (done.returncode, len(err)) == (code, 1), (name, done.stderr)
        assert says in err[0] and "hunter2" not in done.stderr, (name, err)
    assert not (out / "results.jsonl").exists()
    listed = cli("ls", "--json", "--store", cli.store)
    assert json.loads(listed.stdout or "[]") == []


@pytest.mark.timeout(240)
def test_a_model_outage_stops_the_bench_and_the_fixed_flow_finishes_it(
    cli: Cli, sim_model, tmp_path: Path
) -> None:
    from support.testkit import free_port

    data = write_dataset(tmp_path / "data")
    flow = write_flow(tmp_path / "flow.yaml", f"http://127.0.0.1:{free_port()}/v1")
    out = tmp_path / "out"
    down = _bench(cli, data, flow, out, "--concurrency", "2")
    assert down.returncode == 3, down.stderr
    assert "run the same command again" in down.stderr.splitlines()[-1]
    assert results(out) == []
    # The flow file fixed (the right URL): the paused attempts continue on it.
    write_flow(flow, sim_model("support.bench_policy:solve"))
    up = _bench(cli, data, flow, out, "--concurrency", "2")
    assert up.returncode == 0, up.stderr
    assert "unfinished attempts continue with the changed flow" in up.stderr
    assert sorted(r["task_id"] for r in results(out)) == sorted(TASKS)
    assert {r["task_id"] for r in results(out) if r["correct"]} == CORRECT
    # A changed option on the same folder is refused, naming it.
    other = _bench(cli, data, flow, out, "--runs", "3")
    assert other.returncode == 2 and "runs 1" in other.stderr, other.stderr
    assert len(other.stderr.splitlines()) == 1


@pytest.mark.timeout(240)
def test_an_llm_judge_grades_over_http_and_an_unreadable_verdict_is_a_judge_error(
    cli: Cli, sim_model, tmp_path: Path
) -> None:
    data = tmp_path / "data" / "standardized_data.jsonl"
    data.parent.mkdir()
    rows = [
        ("t1", "Task 1: add 2 and 3 after 1 lookups.", "5"),
        ("t3", "Task 3: add 4 and 4 after 1 lookups. (wrong)", "8"),
        ("t7", "Task 7: add 1 and 2 after 0 lookups. (garble)", "3"),
        # longer than the model's context: this task cannot run, the others go on
        ("t8", "Task 8: add 1 and 1 after 0 lookups. " + "padding " * 150_000, "2"),
    ]
    data.write_text(
        "".join(
            json.dumps({"task_id": i, "task_question": q, "ground_truth": t}) + "\n"
            for i, q, t in rows
        )
    )
    flow = write_flow(tmp_path / "flow.yaml", sim_model("support.bench_policy:solve"))
    log = tmp_path / "judge.log"
    judge_url = sim_model(f"support.judge_policy:grade?log={log}")
    cli.env["MIROGRAPH_JUDGE_RETRY_DELAY_S"] = "0.05"  # asked again at once, not after 1 + 2 s
    out = tmp_path / "out"
    # A judge that cannot grade (a model the endpoint does not serve) is refused first.
    wrong = _bench(cli, data, flow, out, "--judge", f"grader@{judge_url}", "--benchmark", "gaia")
    assert wrong.returncode == 2 and len(wrong.stderr.splitlines()) == 1, wrong.stderr
    assert "judge grader@" in wrong.stderr and "check --judge" in wrong.stderr
    assert json.loads(cli("ls", "--json", "--store", cli.store).stdout or "[]") == []
    judge = f"mirothinker@{judge_url}"
    done = _bench(cli, data, flow, out, "--judge", judge, "--benchmark", "gaia")
    # t7 could not be judged, t8 could not run: said in the last line, exit 3 (both are
    # owed: tried again by the same command)
    assert done.returncode == 3, done.stderr
    last = done.stderr.splitlines()[-1]
    assert "2 of 4 attempts are not done (1 failed, 1 could not be judged; t7 #1" in last
    verdicts = {r["task_id"]: r["judge"] for r in results(out)}
    assert {t: v["verdict"] for t, v in verdicts.items()} == {
        "t1": "correct",
        "t3": "incorrect",
        "t7": "judge_error",
        "t8": "incorrect",
    }
    assert [verdicts[t]["method"] for t in ("t1", "t3", "t7", "t8")] == ["llm"] * 3 + ["none"]
    assert "longer than" in verdicts["t8"]["detail"] or "context" in verdicts["t8"]["detail"]
    assert {verdicts[t]["prompt_version"] for t in ("t1", "t3", "t7")} == {"equivalence-v1"}
    assert not [r for r in results(out) if r["task_id"] == "t7" and r["correct"]]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["judge_errors"], summary["complete"]) == (1, False)
    assert round(summary["avg_at_k"], 4) == 0.25
    # the check, one request each for t1 and t3, three (asked twice more) for t7
    assert len(log.read_text().splitlines()) == 6
    # The same command again judges the judge_error again (its run is not run again).
    again = _bench(cli, data, flow, out, "--judge", judge, "--benchmark", "gaia")
    assert again.returncode == 3 and "(2 judged before)" in again.stderr, again.stderr
    assert len(log.read_text().splitlines()) == 6 + 1 + 3
    assert [r["task_id"] for r in results(out)].count("t7") == 2
    assert [r["task_id"] for r in results(out)].count("t8") == 2  # tried again, failed again
