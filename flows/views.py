"""What ``mirograph show RUN_ID`` prints: header, timeline, answer, usage, trace.

The timeline walks every agent call in call order: each turn's tool calls as
``name(short args)`` with a one-line result, and each sub-agent call nested
under the turn that made it, with its own turns. A long agent is shown by its
first and last turns, so a 600-turn run stays readable. An agent that restarted
(``max_restarts``) has an ``attempts`` row in the header and a separator where
each attempt begins; its turns are numbered within their attempt, each attempt
elided on its own. Everything is plain
text with styles only as emphasis: piped output reads the same. Every value
from the run passes through ``printable``: an escape sequence in a question,
reply or tool result is shown, never sent to the terminal.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from rich import box
from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from mirograph.agents.mirothinker.parsing import parse_reply
from mirograph.agents.mirothinker.thinking import split_thinking
from mirograph.flows.terminal import printable
from mirograph.flows.transcript import AgentCall, RunTranscript, Turn, load_transcripts, turns_of
from mirograph.state.redact import scrub
from mirograph.state.store import open_store
from mirograph.text import clip, one_line

#: An agent with more turns than this shows its first and last ``EDGE_TURNS``.
MAX_TURNS = 40
EDGE_TURNS = 15
#: Characters of a one-line result, and of a call's arguments.
RESULT_CHARS = 80
ARGS_CHARS = 60
INDENT = 4


async def render_show(run_id: str, *, store_url: str | None = None) -> RenderableType:
    """The run as ``mirograph show`` prints it."""
    transcript = await load_transcripts(run_id, store_url=store_url)
    return show_view(transcript, recorded=await events_recorded(run_id, store_url=store_url))


async def events_recorded(run_id: str, *, store_url: str | None = None) -> bool:
    """Whether the run's store holds any event of it (a file or a table alike)."""
    async with open_store(store_url) as store:
        return bool(await store.events.read(run_id, 0, limit=1))


def show_view(transcript: RunTranscript, *, recorded: bool = True) -> RenderableType:
    """``recorded``: whether the store holds the run's events (``events_recorded``)."""
    report = transcript.report
    return Group(
        _header(report),
        Text(""),
        Text("TIMELINE", style="bold"),
        *_timeline(transcript),
        Text(""),
        Text("ANSWER", style="bold"),
        Padding(_answer(report), (0, 0, 0, 2), expand=False),
        Text(""),
        Text("USAGE", style="bold"),
        _usage(transcript),
        Text(""),
        _trace(report, recorded),
    )


# -- header, answer, usage, trace ------------------------------------------------


def _header(report: dict[str, Any]) -> RenderableType:
    title = Text.assemble(("Run ", "bold"), (_safe_label(report["id"]), "bold"), " — ")
    title.append(_safe_label(report["status"]), style=_STATUS_STYLE.get(report["status"], ""))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column()
    grid.add_row("flow", _plain(report["flow"]))
    grid.add_row("question", _plain(report["question"]))
    if report.get("reason"):
        grid.add_row("reason", _plain(report["reason"]))
    for warning in report.get("warnings") or ():
        grid.add_row("warning", _plain(warning))
    attempts = report.get("attempts") or []
    if len(attempts) > 1:
        grid.add_row("attempts", _attempts_text(attempts, report["status"]))
    grid.add_row("wall time", f"{_seconds(report.get('wall_seconds'))}")
    usage = report.get("usage") or {}
    grid.add_row(
        "tokens",
        f"{_n(usage.get('prompt_tokens'))} prompt ({_n(usage.get('cached_tokens'))} cached)"
        f" + {_n(usage.get('completion_tokens'))} completion,"
        f" {_n(usage.get('model_calls'))} model calls",
    )
    return Group(title, Padding(grid, (0, 0, 0, 2), expand=False))


def _attempts_text(attempts: list[dict[str, Any]], status: str) -> Text:
    """``3 — 1: max_turns after 2 turns; 2: ...; 3: answered``."""
    parts = []
    for row in attempts:
        reason = row.get("stop_reason")
        if reason is None:
            said = "failed" if status == "failed" else "running"
        elif reason == "answered":
            said = "answered"
        else:
            said = f"{_safe_label(reason)} after {_count(row.get('turns'), 'turn')}"
        parts.append(f"{_n(row.get('attempt'))}: {said}")
    return Text(f"{len(attempts)} — " + "; ".join(parts))


def _answer(report: dict[str, Any]) -> Text:
    answer = report.get("answer")
    if answer is not None:
        return _plain(answer)
    if report["status"] == "completed":
        return Text("(no boxed answer found)")
    return Text(f"(none yet: the run is {_safe_label(report['status'])})")


def _usage(transcript: RunTranscript) -> Table:
    """Per agent, summed over its calls; the last row is the run's total."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, padding=(0, 0, 0, 1))
    table.add_column("agent", no_wrap=True)
    for header in _USAGE_HEADERS:
        table.add_column(header, justify="right", no_wrap=True)
    calls: dict[str, int] = {}
    for call in transcript.calls:
        calls[call.agent] = calls.get(call.agent, 0) + 1
    report = transcript.report
    for agent, stats in report["agents"].items():
        table.add_row(_safe_label(agent), _n(calls.get(agent, 0)), *_usage_cells(stats))
    total = report.get("usage") or {}
    table.add_row("total", _n(len(transcript.calls)), *_usage_cells(total), style="bold")
    return table


_USAGE_HEADERS = (
    "calls",
    "turns",
    "model\ncalls",
    "tool\ncalls",
    "roll-\nbacks",
    "prompt\ntokens",
    "cached\ntokens",
    "compl.\ntokens",
    "wall\nsecs",
)


def _usage_cells(stats: dict[str, Any]) -> list[str]:
    keys = ("turns", "model_calls", "tool_calls", "rollbacks", "prompt_tokens", "cached_tokens")
    cells = [_n(stats.get(key)) for key in keys]
    return [*cells, _n(stats.get("completion_tokens")), _seconds(stats.get("wall_seconds"), "")]


def _trace(report: dict[str, Any], recorded: bool) -> RenderableType:
    """Where the run's event log is (a file, or a table): alone on its line, to copy."""
    path = report.get("events")
    if not path:
        return Text("TRACE: (none)")
    note = "" if recorded else " (no events recorded)"
    line = Text(f"{_safe_label(path)}{note}", overflow="fold")
    return Group(Text("TRACE", style="bold"), Padding(line, (0, 0, 0, 2), expand=False))


# -- timeline ------------------------------------------------------------------------


def _timeline(transcript: RunTranscript) -> Iterator[RenderableType]:
    roots = [c for c in transcript.calls if c.parent is None]
    if not roots:
        yield _line(Text("(no agent has started yet)"), 2)
    for call in roots:
        yield from _call_block(transcript, call, 2)


def _call_block(transcript: RunTranscript, call: AgentCall, indent: int) -> Iterator[Padding]:
    yield _line(_call_title(call), indent, clip=False)
    if call.depth == 1 and call.parent is None and call.subtask:  # a custom graph's agent
        yield _line(Text(f"asked: {_short(call.subtask, RESULT_CHARS)}", style="dim"), indent + 2)
    children = transcript.children(call.label)
    turns = turns_of(call.messages)
    if not turns:
        yield _line(Text("(no reply yet)", style="dim"), indent + 2)
    rows = (transcript.report.get("attempts") or []) if call.depth == 0 else []
    count = max([t.attempt for t in turns] + [len(rows)]) if turns else 1
    for attempt in range(1, count + 1):
        if attempt > 1:
            yield _line(_separator(attempt, rows), indent + 2)
        own = [t for t in turns if t.attempt == attempt]
        if not own and turns:
            yield _line(Text("(no reply yet)", style="dim"), indent + 2)
        shown, hidden = _visible_turns(own)
        for turn in shown:
            if turn is None:
                nested = sum(1 for c in children if c.parent_turn in hidden)
                extra = f", {_count(nested, 'sub-agent call')}" if nested else ""
                yield _line(
                    Text(f"… {_count(len(hidden), 'turn')}{extra} …", style="dim"), indent + 2
                )
                continue
            last = turn.number == len(turns)
            yield from _turn_lines(transcript, call, turn, children, indent + 2, last)
    for child in children:
        if child.parent_turn is None:  # a call its parent's history does not show
            yield from _call_block(transcript, child, indent + 2)
    if call.status == "running":
        yield _line(Text("… in flight when the run stopped", style="yellow"), indent + 2)


def _separator(attempt: int, rows: list[dict[str, Any]]) -> Text:
    """``— attempt 2 (after max_turns) —``: where a restarted attempt begins."""
    before = rows[attempt - 2].get("stop_reason") if len(rows) >= attempt - 1 else None
    after = f" (after {_safe_label(before)})" if before else ""
    return Text(f"— attempt {attempt}{after} —", style="dim")


def _visible_turns(turns: list[Turn]) -> tuple[list[Turn | None], set[int]]:
    """The turns to show (None marks the elided run of turns) and the elided numbers."""
    if len(turns) <= MAX_TURNS:
        return list(turns), set()
    hidden = turns[EDGE_TURNS:-EDGE_TURNS]
    return [*turns[:EDGE_TURNS], None, *turns[-EDGE_TURNS:]], {t.number for t in hidden}


def _turn_lines(
    transcript: RunTranscript,
    call: AgentCall,
    turn: Turn,
    children: list[AgentCall],
    indent: int,
    last: bool,
) -> Iterator[Padding]:
    tag = (
        "[closing] " if turn.closing else "[summary] " if turn.summary else f"[{turn.in_attempt}] "
    )
    reply = turn.reply
    calls: list[tuple[str, str, Any]] = [
        (c.get("id") or "", c["name"], c.get("args")) for c in reply.tool_calls
    ]
    calls += [
        (c.get("id") or "", c.get("name") or "?", c.get("args")) for c in reply.invalid_tool_calls
    ]
    if not calls:
        text = _summary_text(reply) if turn.summary else _reply_text(reply, turn.closing)
        yield _line(Text(tag) + text, indent)
        return
    results = {r.tool_call_id: r for r in turn.results}
    pad = " " * len(tag)
    for index, (call_id, name, args) in enumerate(calls):
        head = tag if index == 0 else pad
        yield _line(Text(head) + Text(f"{_safe_label(name)}({_args(args)})"), indent)
        for child in children:
            if child.parent_turn == turn.number and child.parent_call_index == index:
                yield from _call_block(transcript, child, indent + len(tag) + 2)
        result = results.get(call_id)
        yield _line(
            _result_text(result, in_flight=last and call.status == "running"), indent + len(tag) + 2
        )


def _call_title(call: AgentCall) -> Text:
    stats = call.stats
    title = Text(_safe_label(call.label), style="bold")
    if call.depth == 0:
        title.append(" (entry)")
    title.append(" — ")
    title.append(_safe_label(call.status), style=_STATUS_STYLE.get(call.status, ""))
    parts = [_safe_label(call.stop_reason)] if call.stop_reason else []
    parts.append(_count(stats.get("turns"), "turn"))
    if stats.get("rollbacks"):
        parts.append(_count(stats["rollbacks"], "rollback"))
    parts.append(f"{_n(stats.get('prompt_tokens'))}+{_n(stats.get('completion_tokens'))} tokens")
    if stats.get("wall_seconds"):
        parts.append(_seconds(stats["wall_seconds"], "s"))
    title.append(", " + ", ".join(parts), style="dim")
    return title


def _reply_text(reply: AIMessage, closing: bool) -> Text:
    """A reply without calls: its visible text (a closing or summary reply's as it
    is, a work reply's less its call blocks)."""
    visible = split_thinking(reply.text)[1]
    if not closing:
        visible = parse_reply(visible).content or visible
    label = "" if closing else "reply: "
    return Text(label + (_short(visible, RESULT_CHARS) or "(empty)"))


def _summary_text(reply: AIMessage) -> Text:
    """A failure-summary reply: what it says after its thinking; failing that (the
    thinking never closed, or nothing follows it), the thinking."""
    text = reply.text.strip()
    thinking, visible = split_thinking(text)
    if not thinking and text.startswith("<think>"):
        thinking, visible = text.removeprefix("<think>"), ""
    return Text(_short(visible or thinking, RESULT_CHARS) or "(empty)")


def _result_text(result: ToolMessage | None, *, in_flight: bool) -> Text:
    if result is None:
        note = "(running: no result yet)" if in_flight else "(no result recorded)"
        return Text(f"→ {note}", style="yellow" if in_flight else "dim")
    line = _short(result.text, RESULT_CHARS) or "(empty)"
    if result.status == "error":
        return Text(f"✗ error: {line}", style="red")
    return Text(f"→ {line}")


# -- text helpers ------------------------------------------------------------------


def _line(text: Text, indent: int, *, clip: bool = True) -> Padding:
    """One line at ``indent``: cut to the console's width (one line per call, result or
    reply, however deep the nesting), or, with ``clip`` off, wrapped under its indent."""
    if clip:
        text.no_wrap, text.overflow = True, "ellipsis"
    return Padding(text, (0, 0, 0, indent), expand=False)


def _plain(value: Any) -> Text:
    """A value from the run as it may span lines: secrets masked, control characters shown."""
    return Text(printable(scrub(str(value))))


def _safe_label(value: Any) -> str:
    """A name, id or status from the run, on one line and safe for a terminal."""
    return printable(value, multiline=False)


def _short(text: str, width: int) -> str:
    """One line of at most ``width`` characters, secrets masked before it is cut,
    control characters shown as escapes."""
    return clip(printable(one_line(scrub(text)), multiline=False), width)


def _args(args: Any) -> str:
    if isinstance(args, dict):
        parts = [f"{k}={json.dumps(v, ensure_ascii=False, default=str)}" for k, v in args.items()]
        return _short(", ".join(parts), ARGS_CHARS)
    return _short(str(args or ""), ARGS_CHARS)


def _n(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{int(value or 0):,}"


def _count(value: Any, noun: str) -> str:
    return f"{_n(value)} {noun}{'' if value == 1 else 's'}"


def _seconds(value: Any, unit: str = " s") -> str:
    return f"{float(value or 0):,.2f}{unit}"


_STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "paused": "yellow",
    "running": "yellow",
}
