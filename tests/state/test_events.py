"""A SQLite store's event files: each line's number is its event's sequence number,
across sessions and crashes, so a follower reading "after S" neither skips nor
repeats an event."""

from __future__ import annotations

from pathlib import Path

from mirograph.state.events import FileEvents, read_all


async def test_sessions_number_on_and_a_line_cut_by_a_crash_keeps_its_number(
    tmp_path: Path,
) -> None:
    events = FileEvents(lambda run_id: tmp_path / run_id)
    first = await events.writer("r")
    assert [first.append({"event": "a", "ts": 1.0})[0] for _ in range(2)] == [1, 2]
    await first.aclose()
    with events.path("r").open("a", encoding="utf-8") as file:
        file.write('{"event": "cut by a cra')  # a crash mid-line: no newline
    second = await events.writer("r")
    seq, text = second.append({"event": "b", "ts": 2.0, "run_id": "r"})
    assert seq == 4 and text.startswith('{"event": "b", "ts": 2.0, "run_id": "r"')
    await second.aclose()
    assert [(s, e["event"]) for s, e in await events.read("r")] == [(1, "a"), (2, "a"), (4, "b")]
    assert [s for s, _ in await events.read("r", after=2)] == [4]
    assert [e["event"] for e in await read_all(events, "r")] == ["a", "a", "b"]


async def test_a_reader_sees_only_complete_lines_and_picks_up_where_it_stopped(
    tmp_path: Path,
) -> None:
    events = FileEvents(lambda run_id: tmp_path / run_id)
    writer = await events.writer("r")
    writer.append({"event": "a"})
    assert [s for s, _ in await events.read("r")] == [1]
    with events.path("r").open("a", encoding="utf-8") as file:
        file.write('{"event": "half')  # being written: not yet an event
    assert await events.read("r", after=1) == []
    with events.path("r").open("a", encoding="utf-8") as file:
        file.write('way"}\n')
    assert await events.read("r", after=1) == [(2, {"event": "halfway"})]
    assert await events.read("missing") == []
    await writer.aclose()
