"""Reading a dataset file row by row, and turning bad rows into one-line errors.

Every loader reads the whole file through these helpers before any task runs, so
a malformed row stops ``bench`` with ``file:line: field 'x' ...`` and its fix,
never a traceback or a half-run benchmark.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from mirograph.errors import DatasetError
from mirograph.flows.bench.tasks import BenchTask, Dataset

Row = dict[str, Any]

# Published rows (HLE's rationales, long prompts) exceed csv's 128 KiB default.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def row_error(path: Path, line: int | None, problem: str) -> DatasetError:
    """``path:line: problem``: the one-line message every bad row is reported with."""
    where = f"{path}:{line}" if line is not None else str(path)
    return DatasetError(f"{where}: {problem}")


def read_jsonl(path: Path) -> Iterator[tuple[int, Row]]:
    """Each non-blank line's JSON object, with its 1-based line number."""
    with path.open(encoding="utf-8-sig") as lines:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise row_error(
                    path, number, f"not valid JSON ({exc.msg}); each line must be one JSON object"
                ) from None
            except RecursionError:
                raise row_error(
                    path,
                    number,
                    "not valid JSON (nested too deeply); each line must be one JSON object",
                ) from None
            if not isinstance(row, dict):
                kind = type(row).__name__
                raise row_error(path, number, f"a JSON {kind}; each line must be one JSON object")
            yield number, row


def read_table(path: Path, required: Sequence[str], *, what: str) -> Iterator[tuple[int, Row]]:
    """Each CSV/TSV record as a dict, with the line it starts on (the header is line 1).

    ``required`` columns are checked on the header: ``what`` names the format in
    the error (``a BrowseComp CSV``).
    """
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        header = reader.fieldnames or []
        missing = [name for name in required if name not in header]
        if missing:
            raise row_error(
                path,
                1,
                f"column(s) {', '.join(repr(m) for m in missing)} missing; {what} needs "
                f"columns {', '.join(required)} (found: {', '.join(header) or 'no header'})",
            )
        start = reader.line_num + 1
        try:
            for record in reader:
                if None in record:
                    raise row_error(
                        path, start, f"more cells than the {len(header)} header columns"
                    )
                if any(value is not None and value.strip() for value in record.values()):
                    yield start, {k: (v if v is not None else "") for k, v in record.items()}
                start = reader.line_num + 1
        except csv.Error as exc:
            raise row_error(path, start, f"not valid CSV ({exc})") from None


def header_of(path: Path) -> list[str]:
    """A CSV/TSV file's column names (empty for an empty file)."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return next(csv.reader(handle, delimiter=delimiter), [])


def text_field(path: Path, line: int, row: Mapping[str, Any], name: str, *, needs: str) -> str:
    """A required text field, non-empty; ``needs`` completes the error (what every row needs)."""
    if name not in row or row[name] is None:
        raise row_error(path, line, f"field {name!r} is missing; {needs}")
    value = row[name]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise row_error(
            path, line, f"field {name!r} is a {type(value).__name__}, not text; {needs}"
        )
    text = str(value).strip()
    if not text:
        raise row_error(path, line, f"field {name!r} is empty; {needs}")
    if "\x00" in text:  # no store keeps it (PostgreSQL refuses NUL in text)
        raise row_error(path, line, f"field {name!r} holds a NUL character; remove it")
    return text


def optional_text(row: Mapping[str, Any], name: str) -> str | None:
    """A field's text, or None where it is absent, null or blank."""
    value = row.get(name)
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def attached_file(path: Path, line: int, folder: Path, candidates: Sequence[str]) -> Path:
    """The first existing attachment among ``candidates`` (relative to ``folder``), resolved."""
    tried: list[str] = []
    outside: list[str] = []
    root = folder.resolve()
    for name in candidates:
        target = Path(name)
        target = target if target.is_absolute() else folder / target
        resolved = target.resolve()
        if not resolved.is_relative_to(root):
            # A dataset names files beside it: one that points elsewhere on this machine
            # (``../../etc/passwd``, an absolute path, a symlink out) would be handed to
            # the agent, and through it to the model endpoint.
            outside.append(name)
            continue
        if resolved.is_file():
            return resolved
        if resolved.exists():
            raise row_error(
                path, line, f"attached file {name!r} is not a file ({resolved}); name a file"
            )
        tried.append(str(resolved))
    if outside:
        raise row_error(
            path,
            line,
            f"attached file {outside[0]!r} is outside the dataset's folder {root}; copy it"
            " into that folder and name it relative to it",
        )
    raise row_error(
        path,
        line,
        f"attached file {candidates[0]!r} not found (looked for "
        f"{' and '.join(tried)}); put it there or fix the row's file name",
    )


class TaskCollector:
    """Gathers a file's tasks in order, refusing duplicate ids and an empty result."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tasks: list[BenchTask] = []
        self._lines: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def add(self, line: int, task: BenchTask) -> None:
        first = self._lines.get(task.task_id)
        if first is not None:
            raise row_error(
                self.path,
                line,
                f"task_id {task.task_id!r} repeats line {first}; task ids must be unique",
            )
        self._lines[task.task_id] = line
        self._tasks.append(task)

    def dataset(self, benchmark: str, limit: int | None, *, what: str) -> Dataset:
        """The :class:`Dataset` of the first ``limit`` tasks (all when None)."""
        if not self._tasks:
            raise row_error(self.path, None, f"no tasks in the file; expected {what}")
        tasks = self._tasks if limit is None else self._tasks[:limit]
        return Dataset(benchmark=benchmark, source=self.path.resolve(), tasks=tuple(tasks))


def task_id_of(path: Path, line: int, row: Mapping[str, Any], name: str, *, needs: str) -> str:
    """A task id: text, or a whole number (JSON's ``7`` or ``7.0``) turned into text."""
    value = row.get(name)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):  # NaN, inf, 1.5: not an id anyone meant
        raise row_error(path, line, f"field {name!r} is {value!r}; give the id as text")
    return text_field(path, line, row, name, needs=needs)


def rest_of(row: Mapping[str, Any], used: set[str]) -> dict[str, Any]:
    """The row's other fields with a value, for ``BenchTask.metadata``."""
    return {k: v for k, v in row.items() if k not in used and v not in (None, "")}
