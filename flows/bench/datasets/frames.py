"""FRAMES (``google/frames-benchmark``, ``test.tsv``).

Tab-separated with a header; columns: an unnamed index column (first, header
empty, or ``Unnamed: 0``/``index``), ``Prompt``, ``Answer``,
``wikipedia_link_1`` .. ``wikipedia_link_11+``, ``reasoning_types`` and
``wiki_links``. A ``.csv`` export is read the same way. The task id is the index
column's value (else the 0-based row number); the group is the
``reasoning_types`` string (e.g. ``Numerical reasoning | Multiple constraints``).
"""

from __future__ import annotations

from pathlib import Path

from mirograph.flows.bench.datasets.rows import (
    TaskCollector,
    header_of,
    optional_text,
    read_table,
    rest_of,
    task_id_of,
    text_field,
)
from mirograph.flows.bench.tasks import BenchTask, Dataset

COLUMNS = ("Prompt", "Answer")
NEEDS = "every FRAMES row needs Prompt and Answer"
INDEX_NAMES = ("", "Unnamed: 0", "index", "id")


def load(path: Path, benchmark: str | None = None, *, limit: int | None = None) -> Dataset:
    index_column = next((c for c in header_of(path) if c.strip() in INDEX_NAMES), None)
    tasks = TaskCollector(path)
    for number, (line, row) in enumerate(read_table(path, COLUMNS, what="a FRAMES file")):
        task_id = (
            task_id_of(path, line, row, index_column, needs="the index column needs a value")
            if index_column is not None
            else str(number)
        )
        tasks.add(
            line,
            BenchTask(
                task_id=task_id,
                question=text_field(path, line, row, "Prompt", needs=NEEDS),
                ground_truth=text_field(path, line, row, "Answer", needs=NEEDS),
                group=optional_text(row, "reasoning_types"),
                metadata=rest_of(row, {"Prompt", "Answer", "reasoning_types", index_column or ""}),
            ),
        )
    return tasks.dataset(benchmark or "frames", limit, what=f"FRAMES rows ({NEEDS})")
