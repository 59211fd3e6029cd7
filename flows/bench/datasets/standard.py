"""The standardized JSONL of the MiroThinker / MiroFlow harness.

One JSON object per line: ``task_id``, ``task_question``, ``ground_truth``,
optionally ``file_name`` (or MiroFlow's ``file_path``: relative to the JSONL's
folder; empty or null means no file) and ``metadata`` (an object; its
``Level``/``level``/``topic``/``category`` becomes the task's group).

The benchmark name (it picks the judge's criteria) is ``--benchmark`` when
given, else the file's folder name when the file is ``standardized_data.jsonl``
(``gaia-2023-validation/standardized_data.jsonl``), else its stem; a name that
starts with a known family (``gaia``, ``browsecomp-zh``/``browsecomp_zh``,
``browsecomp``, ``hle``, ``frames``, ``xbench``) is reduced to that family.
"""

from __future__ import annotations

from pathlib import Path

from mirograph.flows.bench.datasets.rows import (
    TaskCollector,
    attached_file,
    optional_text,
    read_jsonl,
    row_error,
    task_id_of,
    text_field,
)
from mirograph.flows.bench.tasks import BenchTask, Dataset

FILE_NAME = "standardized_data.jsonl"
NEEDS = "every row needs task_id, task_question and ground_truth"
GROUP_KEYS = ("Level", "level", "topic", "Topic", "category", "Category")
#: Name prefixes reduced to a canonical benchmark (checked in order: ``-zh`` first).
FAMILIES = (
    ("browsecomp-zh", "browsecomp-zh"),
    ("browsecomp_zh", "browsecomp-zh"),
    ("browsecomp", "browsecomp"),
    ("gaia", "gaia"),
    ("hle", "hle"),
    ("frames", "frames"),
    ("xbench", "xbench-deepsearch"),
)


def benchmark_name(path: Path) -> str:
    """The benchmark a standardized file stands for, from its folder or file name."""
    name = (path.parent.name if path.name == FILE_NAME else path.stem).lower()
    for prefix, family in FAMILIES:
        if name.startswith(prefix):
            return family
    return name or "standard"


def is_standard_row(row: dict) -> bool:
    return "task_question" in row


def load(path: Path, benchmark: str | None = None, *, limit: int | None = None) -> Dataset:
    tasks = TaskCollector(path)
    for line, row in read_jsonl(path):
        task_id = task_id_of(path, line, row, "task_id", needs=NEEDS)
        question = text_field(path, line, row, "task_question", needs=NEEDS)
        truth = text_field(path, line, row, "ground_truth", needs=NEEDS)
        metadata = row.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise row_error(
                path, line, f"field 'metadata' is a {type(metadata).__name__}, not an object"
            )
        files = _attachments(path, line, row)
        group = next(
            (str(metadata[k]) for k in GROUP_KEYS if metadata.get(k) not in (None, "")), None
        )
        tasks.add(
            line,
            BenchTask(
                task_id=task_id,
                question=question,
                ground_truth=truth,
                files=files,
                group=group,
                metadata=metadata,
            ),
        )
    return tasks.dataset(benchmark or benchmark_name(path), limit, what=f"JSON lines ({NEEDS})")


def _attachments(path: Path, line: int, row: dict) -> tuple[Path, ...]:
    """The row's file: ``file_name``, or ``file_path`` as written or by its name alone."""
    names = [n for n in (optional_text(row, "file_name"), optional_text(row, "file_path")) if n]
    if not names:
        return ()
    names.append(Path(names[-1]).name)
    return (attached_file(path, line, path.parent, names),)
