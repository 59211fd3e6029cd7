"""What ``mirograph ls`` prints: one row per run, newest first.

On a terminal the runs are a table whose id and status are never cut; piped,
they are plain aligned columns with every value whole, so that ``ls | grep``
and ``awk`` see what the store holds. ``ls --json`` prints the rows as they
are. Kept apart from ``views`` (``show``): ``ls`` answers at once, without
LangChain. Every cell passes through ``printable``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console

from mirograph.flows.terminal import printable
from mirograph.state.registry import RunRecord
from mirograph.text import clip

COLUMNS = ("id", "status", "question", "flow", "turns", "tokens", "age")
#: Characters of a question shown in the table (the JSON rows hold it whole).
QUESTION_CHARS = 50


def list_row(record: RunRecord) -> dict[str, Any]:
    """What ``ls`` shows of a run; counts as of the end of its last session."""
    usage = record.usage or {}
    turns = sum(a.get("turns", 0) for a in usage.values()) if usage else None
    tokens = (
        sum(a.get("prompt_tokens", 0) + a.get("completion_tokens", 0) for a in usage.values())
        if usage
        else None
    )
    return {
        "id": record.id,
        "status": record.effective_status,
        "question": record.question,
        "flow": record.flow,
        "turns": turns,
        "tokens": tokens,
        "age_seconds": round(time.time() - record.created_at, 1),
        "created_at": record.created_at,
    }


def print_list(rows: Sequence[dict[str, Any]], out: Console) -> None:
    """The rows as a table on a terminal, as plain columns otherwise."""
    cells = [_cells(row) for row in rows]
    if not out.is_terminal:
        _print_columns(cells)
        return
    from rich.table import Table

    table = Table(*COLUMNS)
    for index in (0, 1):  # id and status are never cut, however narrow the terminal
        table.columns[index].no_wrap = True
        table.columns[index].min_width = max((len(c[index]) for c in cells), default=0)
    for row_cells in cells:
        table.add_row(*row_cells)
    out.print(table)


def _cells(row: dict[str, Any]) -> list[str]:
    """A row as text cells, each one line and safe for a terminal."""
    cells = [
        row["id"],
        row["status"],
        clip(row["question"], QUESTION_CHARS),
        row["flow"],
        "-" if row["turns"] is None else str(row["turns"]),
        "-" if row["tokens"] is None else f"{row['tokens']:,}",
        _age(row["age_seconds"]),
    ]
    return [printable(cell, multiline=False) for cell in cells]


def _print_columns(cells: list[list[str]]) -> None:
    """Plain aligned columns, every value whole."""
    lines = [list(COLUMNS), *cells]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    for line in lines:
        padded = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        print("  ".join(padded).rstrip())


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
