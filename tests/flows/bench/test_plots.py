"""The interactive-scaling curve's numbers, and the PNGs drawn from them."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.image import imread
from support.bench_rows import attempt_row

from mirograph.flows.bench.plots import plot_scaling, plot_turns, scaling_curve
from mirograph.flows.bench.records import AttemptResult
from mirograph.flows.bench.scoring import is_correct_without_restarts, summarize

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def row(
    task: str, attempt: int, correct: bool, tool_calls: int, restarts: int = 0
) -> AttemptResult:
    return attempt_row(
        task, attempt, correct, tool_calls=tool_calls, turns=tool_calls + 1, restarts=restarts,
        answer="a", ground_truth="a", question="q?",
    )  # fmt: skip


def rows() -> list[AttemptResult]:
    """X: right after 2 calls, wrong after 5; Y: right after 0 and after 3 (restarted)."""
    return [
        row("X", 1, True, 2),
        row("X", 2, False, 5),
        row("Y", 1, True, 0),
        row("Y", 2, True, 3, restarts=1),
    ]


def test_an_attempt_counts_as_solved_for_every_budget_from_its_tool_calls_on() -> None:
    assert scaling_curve(rows()) == [
        (0, 0.25),
        (1, 0.25),
        (2, 0.5),
        (3, 0.75),
        (4, 0.75),
        (5, 0.75),
    ]


def test_the_curve_ends_at_avg_at_k_with_and_without_restarts() -> None:
    summary = summarize(rows(), benchmark="b", tasks=2, runs=2, judge="exact", flow="f", model=None)
    assert scaling_curve(rows())[-1][1] == pytest.approx(summary["avg_at_k"])
    plain = scaling_curve(rows(), is_correct_without_restarts)
    assert [acc for _, acc in plain] == [0.25, 0.25, 0.5, 0.5, 0.5, 0.5]
    assert plain[-1][1] == pytest.approx(summary["without_restarts"]["avg_at_k"])


def test_no_attempts_is_an_empty_curve() -> None:
    assert scaling_curve([]) == []


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    height, width, channels = imread(path).shape
    assert (width, height) == (770, 495)  # 7 x 4.5 inches at 110 dpi
    assert channels in (3, 4)


def test_the_plots_are_png_files(tmp_path: Path) -> None:
    scaling = plot_scaling(rows(), tmp_path / "plots" / "scaling.png", title="gaia: scaling")
    turns = plot_turns(rows(), tmp_path / "plots" / "turns.png", title="gaia: turns")
    assert scaling == tmp_path / "plots" / "scaling.png"
    assert turns == tmp_path / "plots" / "turns.png"
    assert_png(scaling)
    assert_png(turns)


def test_no_attempts_draws_empty_plots(tmp_path: Path) -> None:
    assert_png(plot_scaling([], tmp_path / "scaling.png", title="empty"))
    assert_png(plot_turns([], tmp_path / "turns.png", title="empty"))
