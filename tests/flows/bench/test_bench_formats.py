"""Every bundled format through the bench, answered over HTTP, scored to the digit.

``examples/bench/sim_answers.py`` answers the sample datasets from a table of its
own with a known set of wrong answers, so each format's avg@2, pass@2 and groups
are known exactly: encrypted rows must decrypt, attached files must reach the
agent's workspace (the policy reads them with the ``files`` tools first), and
GAIA's rules must decide (``4,800`` is ``4800``; ``H₂O`` is not ``H2O``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mirograph.agents.sim.server import SimServer
from mirograph.flows.bench.datasets import load_dataset
from mirograph.flows.bench.harness import BenchSettings
from mirograph.flows.bench.judges.exact import ExactJudge
from mirograph.flows.bench.session import run_bench
from mirograph.flows.loader import load_flow

SAMPLES = Path(__file__).resolve().parents[3] / "examples" / "bench"

#: dataset -> (avg@2 = pass@2, {group: avg@2}); xbench's sample has no groups
EXPECTED = {
    "gaia": (3 / 4, {"1": 1.0, "2": 1.0, "3": 0.0}),
    "browsecomp.csv": (2 / 3, {"Calendar": 0.0, "Math": 1.0, "Science": 1.0}),
    "browsecomp-zh.csv": (2 / 3, {"常识": 1.0, "数学": 1.0, "科学": 0.0}),
    "xbench-deepsearch.csv": (2 / 3, {}),
    "hle.jsonl": (2 / 3, {"Math": 1.0, "Physics": 0.0}),
    "frames.tsv": (
        2 / 3,
        {
            "Numerical reasoning": 1.0,
            "Numerical reasoning | Temporal reasoning": 1.0,
            "Multiple constraints": 0.0,
        },
    ),
    "standard": (1.0, {"1": 1.0, "2": 1.0}),
}


def _answers() -> Callable[..., str]:
    spec = importlib.util.spec_from_file_location("sim_answers", SAMPLES / "sim_answers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.answer


@pytest.fixture(scope="module")
def model() -> Iterator[SimServer]:
    with SimServer(_answers()) as server:
        yield server


@pytest.mark.parametrize("name", list(EXPECTED))
async def test_each_sample_format_scores_as_expected(
    name: str, model: SimServer, home: Path, tmp_path: Path
) -> None:
    flow = load_flow(str(SAMPLES / "sim-flow.yaml"), [f"models.thinker.base_url={model.base_url}"])
    settings = BenchSettings(
        dataset=load_dataset(SAMPLES / name),
        flow_name="sim-flow",
        flow=flow,
        runs=2,
        concurrency=8,
        judge=ExactJudge(),
        out=tmp_path / "out",
    )
    lines: list[str] = []
    report = await run_bench(settings, say=lines.append)
    assert not report.outcome.unfinished, report.outcome.unfinished
    summary = report.summary
    expected, groups = EXPECTED[name]
    assert summary["complete"] and summary["runs"] == 2
    assert round(summary["avg_at_k"], 4) == round(summary["pass_at_k"], 4) == round(expected, 4)
    assert {g: v["avg_at_k"] for g, v in summary["by_group"].items()} == groups
    assert any("· accuracy" in line and "ETA" in line for line in lines)
