"""A run's resources: cleanups at the run's end, and resources kept per run by key."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mirograph.agents.tools.base import RunResources, ToolContext


class Resource:
    """Something a tool set keeps for a run; records its closing."""

    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True
        self.log.append(self.name)


def context(tmp_path: Path, run_id: str = "r1") -> ToolContext:
    return ToolContext(run_id, tmp_path)


async def test_cleanups_run_newest_first_and_each_even_if_one_fails() -> None:
    log: list[str] = []
    resources = RunResources()

    async def failing() -> None:
        log.append("failing")
        raise RuntimeError("cleanup failed")

    resources.close_later(Resource(log, "oldest"))
    resources.on_close(failing)
    resources.close_later(object())  # nothing to close: ignored
    resources.close_later(Resource(log, "newest"))

    await resources.aclose()
    assert log == ["newest", "failing", "oldest"]
    await resources.aclose()  # each cleanup runs once
    assert log == ["newest", "failing", "oldest"]


async def test_the_context_delegates_its_cleanups_to_the_run(tmp_path: Path) -> None:
    log: list[str] = []
    ctx = context(tmp_path)
    copy = replace(ctx, options={"a": 1})
    ctx.close_later(Resource(log, "first"))
    copy.close_later(Resource(log, "second"))

    assert copy.resources is ctx.resources
    await ctx.aclose()
    assert log == ["second", "first"]


async def test_a_keyed_resource_is_made_once_per_run_and_shared_by_copies(tmp_path: Path) -> None:
    log: list[str] = []
    made: list[Resource] = []

    def make() -> Resource:
        made.append(Resource(log, f"session {len(made) + 1}"))
        return made[-1]

    ctx = context(tmp_path)
    copy = replace(ctx, models={"m": object()})
    first = ctx.resources.get_or_create(("set", "server"), make)
    assert copy.resources.get_or_create(("set", "server"), make) is first
    other = ctx.resources.get_or_create(("set", "other"), make)
    assert other is not first and len(made) == 2

    await copy.aclose()
    assert first.closed and other.closed
    assert log == ["session 2", "session 1"]
    # After the run's end the key is free: a late use makes (and registers) a fresh one.
    late = ctx.resources.get_or_create(("set", "server"), make)
    assert late is not first and len(made) == 3
    await ctx.aclose()
    assert late.closed


async def test_two_runs_get_two_resources(tmp_path: Path) -> None:
    log: list[str] = []
    one, two = context(tmp_path, "r1"), context(tmp_path, "r2")
    mine = one.resources.get_or_create("key", lambda: Resource(log, "r1"))
    theirs = two.resources.get_or_create("key", lambda: Resource(log, "r2"))
    assert mine is not theirs

    await one.aclose()
    assert mine.closed and not theirs.closed
    await two.aclose()
    assert log == ["r1", "r2"]
