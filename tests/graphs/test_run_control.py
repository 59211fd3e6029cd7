"""RunControl: pause requests (here or through a check), budgets, events."""

from __future__ import annotations

import itertools

import pytest

from mirograph.graphs.run_control import (
    Budgets,
    PauseRequested,
    RunControl,
    agent_namespace,
    controlling,
    current_control,
)


def test_a_pause_asked_here_or_through_the_check_raises_at_the_next_boundary() -> None:
    asked: list[str | None] = [None]
    control = RunControl()
    control.begin("r", pause_check=lambda: asked[0])
    control.check_pause()  # nothing asked: goes on
    asked[0] = "paused by `mirograph pause`"
    with pytest.raises(PauseRequested, match="mirograph pause"):
        control.check_pause()
    control.request_pause("paused by Ctrl-C")  # the first reason stays
    assert control.pause_reason == "paused by `mirograph pause`"
    asked[0] = None
    control.end_session()  # a pause is spent with the session it stopped
    control.begin("r")
    control.check_pause()
    assert control.pause_reason is None


def test_a_pause_asked_while_the_run_starts_is_kept() -> None:
    control = RunControl()
    control.request_pause("paused by Ctrl-C")  # Ctrl-C while the graph is being built
    control.begin("r")
    with pytest.raises(PauseRequested):
        control.check_pause()


def test_budgets_count_tokens_and_running_time_over_sessions() -> None:
    ticks = itertools.count()
    control = RunControl(clock=lambda: float(next(ticks)))
    control.begin("r", budgets=Budgets(max_tokens_total=100), tokens_before=60)
    assert control.over_budget() is None
    control.emit("tool_call", prompt_tokens=500)  # only model calls count
    assert control.over_budget() is None
    control.emit("model_call", prompt_tokens=30, completion_tokens=10)
    assert (control.tokens, control.over_budget()) == (100, "max_tokens_total")

    control.begin("r", budgets=Budgets(max_wall_seconds=10), wall_before=7.0)
    assert control.wall_seconds == 8.0  # 7 before, one tick since begin
    assert control.over_budget() is None
    assert control.over_budget() == "max_wall_seconds"  # a tick later: 10 s
    explicit = RunControl(budgets=Budgets(max_tokens_total=5))
    explicit.begin("r", budgets=Budgets(max_tokens_total=10**6, max_wall_seconds=60))
    assert explicit.budgets == Budgets(max_tokens_total=5, max_wall_seconds=60)  # key by key


def test_events_go_to_every_sink_with_time_and_run() -> None:
    seen: list[dict] = []
    control = RunControl(on_event=seen.append)
    control.begin("run-1")
    extra: list[dict] = []
    control.add_sink(extra.append)
    control.emit("tool_call", tool="lookup")
    control.remove_sink(extra.append)
    control.emit("tool_call", tool="other")
    assert [e["tool"] for e in seen] == ["lookup", "other"]
    assert [e["tool"] for e in extra] == ["lookup"]
    assert seen[0]["run_id"] == "run-1" and seen[0]["event"] == "tool_call" and seen[0]["ts"] > 0


def test_the_control_is_seen_only_inside_its_block() -> None:
    control = RunControl()
    assert current_control() is None
    with controlling(control):
        assert current_control() is control
    assert current_control() is None


@pytest.mark.parametrize(
    ("ns", "agent"),
    [
        ("model:abc", ""),
        ("agent_browsing:t1|model:t2", "agent_browsing:t1"),
        ("agent_browsing:t1|agent_helper:t3|tools:t4", "agent_browsing:t1|agent_helper:t3"),
    ],
)
def test_an_agents_namespace_is_its_nodes_without_the_node(ns: str, agent: str) -> None:
    assert agent_namespace({"configurable": {"checkpoint_ns": ns}}) == agent


def test_a_failing_sink_is_dropped_and_the_run_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[dict] = []

    def broken(_event: dict) -> None:
        raise BrokenPipeError("stderr closed")

    control = RunControl(on_event=broken)
    control.add_sink(seen.append)
    control.emit("tool_call", tool="a")
    control.emit("tool_call", tool="b")
    assert [e["tool"] for e in seen] == ["a", "b"]
    assert "dropped after it failed: stderr closed" in caplog.text


def test_events_are_scrubbed_once_for_every_sink(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAVILY_API_KEY", "tvly-planted-0123456789")
    seen: list[dict] = []
    control = RunControl(on_event=seen.append)
    control.emit(
        "model_call",
        detail="401: key tvly-planted-0123456789 rejected; also sk-live-abc123456789xyz",
        args={"q": "tallest skyscrapers"},
    )
    assert seen[0]["detail"] == "401: key *** rejected; also ***"
    assert seen[0]["args"] == {"q": "tallest skyscrapers"}
