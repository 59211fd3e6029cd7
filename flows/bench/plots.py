"""Plots of a benchmark's attempts: the interactive-scaling curve and the turns per attempt.

matplotlib is imported inside the drawing functions (``Agg``, no display) so that
importing this module, and ``mirograph --help``, stay fast. No rows draws an
empty, labelled plot rather than failing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mirograph.errors import UserInputError
from mirograph.flows.bench.records import AttemptResult
from mirograph.flows.bench.scoring import is_correct, is_correct_without_restarts

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def scaling_curve(
    rows: Sequence[AttemptResult],
    correct: Callable[[AttemptResult], bool] = is_correct,
) -> list[tuple[int, float]]:
    """Accuracy at each tool-call budget t = 0 .. the most tool calls any attempt made.

    An attempt judged correct after c tool calls counts as solved for every
    budget t >= c. Accuracy is avg@K's: the mean over tasks of the share of
    their attempts solved within t, so the last point equals ``avg_at_k``.
    """
    # One row per (task, attempt), the last written winning, as in ``summarize``.
    rows = list({(row["task_id"], row["attempt"]): row for row in rows}.values())
    if not rows:
        return []
    by_task: dict[str, list[AttemptResult]] = {}
    for row in rows:
        by_task.setdefault(row["task_id"], []).append(row)
    top = max(0, *(row["tool_calls"] for row in rows))
    # solved_at[t]: the weight (1 / the task's attempts) of attempts solved at exactly t calls.
    solved_at = [0.0] * (top + 1)
    for attempts in by_task.values():
        for row in attempts:
            if correct(row):
                solved_at[max(row["tool_calls"], 0)] += 1 / len(attempts)
    curve: list[tuple[int, float]] = []
    total = 0.0
    for t, weight in enumerate(solved_at):
        total += weight
        curve.append((t, total / len(by_task)))
    return curve


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise UserInputError(
            "plots need matplotlib, which is not installed: pip install matplotlib"
        ) from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=110)
    return path


def plot_scaling(rows: Sequence[AttemptResult], path: Path, *, title: str) -> Path:
    """The paper's interactive-scaling plot: accuracy against the tool-call budget.

    A dashed line shows the same attempts scored without restarts when any
    attempt restarted.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    try:
        curve = scaling_curve(rows)
        if curve:
            ax.step(
                [t for t, _ in curve],
                [acc * 100 for _, acc in curve],
                where="post",
                label="with restarts" if _any_restart(rows) else "accuracy",
            )
            if _any_restart(rows):
                plain = scaling_curve(rows, is_correct_without_restarts)
                ax.step(
                    [t for t, _ in plain],
                    [acc * 100 for _, acc in plain],
                    where="post",
                    linestyle="--",
                    label="without restarts",
                )
            ax.legend(loc="lower right")
            ax.set_xlim(0, max(curve[-1][0], 1))
            ax.xaxis.get_major_locator().set_params(integer=True)
        else:
            _say_empty(ax)
        ax.set_ylim(0, 100)
        ax.set_xlabel("tool-call budget (calls)")
        ax.set_ylabel("accuracy (% of attempts)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        return _save(fig, path)
    finally:
        plt.close(fig)


def plot_turns(rows: Sequence[AttemptResult], path: Path, *, title: str) -> Path:
    """How many turns each attempt took, correct and wrong attempts stacked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    try:
        if rows:
            top = max(row["turns"] for row in rows)
            width = max(1, -(-(top + 1) // 40))  # at most ~40 bins, whole turns each
            bins = [b - 0.5 for b in range(0, top + width + 1, width)]  # bars centred on turns
            right = [row["turns"] for row in rows if row["correct"]]
            wrong = [row["turns"] for row in rows if not row["correct"]]
            ax.hist(
                [right, wrong],
                bins=bins,
                stacked=True,
                label=["correct", "wrong"],
                color=["tab:green", "tab:gray"],
                edgecolor="white",
            )
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.yaxis.get_major_locator().set_params(integer=True)
            ax.legend(loc="upper right")
        else:
            _say_empty(ax)
        ax.set_xlabel("turns per attempt")
        ax.set_ylabel("attempts")
        ax.set_title(title)
        return _save(fig, path)
    finally:
        plt.close(fig)


def _any_restart(rows: Sequence[AttemptResult]) -> bool:
    return any(row["restarts"] > 0 for row in rows)


def _say_empty(ax: Any) -> None:
    ax.text(0.5, 0.5, "no finished attempts yet", ha="center", va="center", transform=ax.transAxes)
