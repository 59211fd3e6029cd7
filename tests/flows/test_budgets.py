"""Flow budgets end a run gracefully: every agent makes its closing request, and
the run ends saying which budget closed it."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from support.team_policy import team

from mirograph.agents.sim.server import SimServer
from mirograph.flows.events import events_path, read_events
from mirograph.flows.loader import FlowError, validate_flow
from mirograph.flows.runner import run_report, start_run
from mirograph.graphs.run_control import Budgets, RunControl

QUESTION = "How do alpha and beta compare?"


def team_flow(base_url: str, **top: Any) -> Any:
    return validate_flow(
        {
            "name": "team",
            "models": {"m": {"base_url": base_url, "max_tokens": 512}},
            "agents": {
                "planner": {"model": "m", "role": "main", "sub_agents": ["browsing"]},
                "browsing": {"model": "m", "max_turns": 30, "tools": ["support.team_tools:lookup"]},
            },
            "entry": "planner",
            **top,
        }
    )


def policy(body: dict[str, Any]) -> str:
    return team(body, browsing=25)


async def run_team(
    tmp_path: Path, run_id: str, control: RunControl | None = None, **budgets: Any
) -> tuple[Any, dict[str, Any]]:
    """Run the planner + browsing flow with ``budgets``; its outcome and report."""
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with SimServer(policy) as srv:
        flow = team_flow(srv.base_url, **budgets)
        outcome = await start_run(QUESTION, flow, run_id=run_id, store_url=store, control=control)
        return outcome, await run_report(run_id, store_url=store)


def assert_closed_by(budget: str, outcome: Any, report: dict[str, Any]) -> None:
    browsing = report["invocations"][0]
    # Browsing was cut short of its 25 turns and closed with a report.
    assert browsing["stop_reason"] == budget
    assert 0 < browsing["turns"] < 25
    assert_planner_closed(budget, outcome)
    assert report["stop_reason"] == budget


def assert_planner_closed(budget: str, outcome: Any) -> None:
    """The planner closed after its delegating call, without that turn's result (the
    reference agent's closing shape): the scripted planner saw no report to box."""
    assert outcome.status == "no_answer", outcome.reason
    assert outcome.reason == (
        f"the planner agent ended without a boxed answer (stop reason: {budget})"
    )


async def test_token_budget_closes_every_agent_and_the_run_ends(home: Path, tmp_path: Path) -> None:
    outcome, report = await run_team(tmp_path, "tokens", max_tokens_total=6000)
    assert_closed_by("max_tokens_total", outcome, report)
    spent = report["usage"]["prompt_tokens"] + report["usage"]["completion_tokens"]
    calls = [e for e in read_events(events_path("tokens")) if e["event"] == "model_call"]
    last_call = max(e["prompt_tokens"] + e["completion_tokens"] for e in calls)
    # Soft limit: past it, only the step in flight and the closing requests (2 agents).
    assert 6000 <= spent <= 6000 + 3 * last_call
    reached = [e for e in read_events(events_path("tokens")) if e["event"] == "budget_reached"]
    assert [(e["agent"], e["budget"]) for e in reached] == [
        ("browsing", "max_tokens_total"),
        ("planner", "max_tokens_total"),
    ]


async def test_wall_budget_counts_running_time_and_closes_the_run(
    home: Path, tmp_path: Path
) -> None:
    ticks = itertools.count()
    # A clock that advances one second per reading: the budget is spent after a few steps.
    control = RunControl(clock=lambda: float(next(ticks)))
    outcome, report = await run_team(tmp_path, "wall", control, max_wall_seconds=12)
    assert_closed_by("max_wall_seconds", outcome, report)


async def test_explicit_budgets_win_over_the_flow(home: Path, tmp_path: Path) -> None:
    control = RunControl(budgets=Budgets(max_tokens_total=1))
    outcome, report = await run_team(tmp_path, "one", control, max_tokens_total=10**9)
    # The planner's first turn already spends the budget: it closes without delegating.
    assert_planner_closed("max_tokens_total", outcome)
    assert report["agents"]["planner"]["turns"] == 1
    assert report["invocations"][0]["stop_reason"] == "max_tokens_total"
    assert report["invocations"][0]["turns"] == 0


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("max_tokens_total", 0, "max_tokens_total"),
        ("max_wall_seconds", -5, "max_wall_seconds"),
        ("max_tokens_total", "lots", "max_tokens_total"),
    ],
)
def test_bad_budgets_are_rejected_naming_the_key(key: str, value: Any, expected: str) -> None:
    with pytest.raises(FlowError, match=expected):
        team_flow("http://127.0.0.1:9/v1", **{key: value})
