"""Humanity's Last Exam (``cais/hle``), text-only.

Columns: ``id``, ``question``, ``image`` (empty for text-only questions),
``answer``, ``answer_type``, ``category``, ``raw_subject``, ``rationale``, ...
Read from a JSONL or CSV export, or the published parquet when ``pyarrow`` is
installed. Rows with an image are skipped (this harness's agents read text):
:func:`skipped_images` says how many a file had, for the harness to report, since
:class:`~mirograph.flows.bench.tasks.Dataset` carries only tasks. The group is
the ``category``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mirograph.flows.bench.datasets.rows import (
    Row,
    TaskCollector,
    optional_text,
    read_jsonl,
    read_table,
    rest_of,
    row_error,
    task_id_of,
    text_field,
)
from mirograph.flows.bench.tasks import BenchTask, Dataset

NEEDS = "every HLE row needs id, question and answer"
#: Left out of metadata: the image columns hold image data, the canary is noise.
USED = {"id", "question", "answer", "category", "image", "image_preview", "rationale_image"}
DROPPED = {"canary"}

_skipped: dict[Path, int] = {}


def is_hle_row(row: dict) -> bool:
    return "question" in row and "answer" in row


def skipped_images(path: Path) -> int:
    """How many rows of ``path`` were skipped for having an image (reads it if not loaded yet)."""
    key = path.resolve()
    if key not in _skipped:
        load(path)
    return _skipped[key]


def load(path: Path, benchmark: str | None = None, *, limit: int | None = None) -> Dataset:
    tasks = TaskCollector(path)
    skipped = 0
    for line, row in _rows(path):
        if optional_text(row, "image"):
            skipped += 1
            continue
        tasks.add(
            line,
            BenchTask(
                task_id=task_id_of(path, line, row, "id", needs=NEEDS),
                question=text_field(path, line, row, "question", needs=NEEDS),
                ground_truth=text_field(path, line, row, "answer", needs=NEEDS),
                group=optional_text(row, "category"),
                metadata=rest_of(row, USED | DROPPED),
            ),
        )
    _skipped[path.resolve()] = skipped
    if not len(tasks) and skipped:
        raise row_error(
            path, None, f"all {skipped} rows have an image; only text-only HLE questions are run"
        )
    return tasks.dataset(benchmark or "hle", limit, what=f"HLE rows ({NEEDS})")


def _rows(path: Path) -> Iterator[tuple[int, Row]]:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return read_table(path, ("id", "question", "answer"), what="an HLE CSV")
    if suffix == ".parquet":
        return _parquet_rows(path)
    return read_jsonl(path)


def _parquet_rows(path: Path) -> Iterator[tuple[int, Row]]:
    """Parquet rows numbered from 1 (``file:N`` then means the N-th row)."""
    try:
        import pyarrow.parquet as pq  # type: ignore[import-not-found]
    except ImportError:
        raise row_error(
            path,
            None,
            "reading parquet needs pyarrow, which is not installed; export the "
            "dataset to JSONL (datasets: ds.to_json('hle.jsonl')) or pip install pyarrow",
        ) from None
    yield from enumerate(pq.read_table(path).to_pylist(), start=1)
