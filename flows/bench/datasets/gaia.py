"""GAIA's ``metadata.jsonl`` (the ``gaia-benchmark/GAIA`` 2023 release).

Each line: ``task_id``, ``Question``, ``Level``, ``Final answer``, ``file_name``
(an attachment next to the metadata file; empty: none), sometimes ``file_path``,
and ``Annotator Metadata``. The group is the level as a string ("1".."3"). The
test split's answers are withheld (``Final answer`` is ``?``): such a row is
refused, since nothing could judge it.
"""

from __future__ import annotations

from pathlib import Path

from mirograph.flows.bench.datasets.rows import (
    TaskCollector,
    attached_file,
    optional_text,
    read_jsonl,
    rest_of,
    row_error,
    task_id_of,
    text_field,
)
from mirograph.flows.bench.tasks import BenchTask, Dataset

FILE_NAME = "metadata.jsonl"
NEEDS = "every GAIA row needs task_id, Question, Level and Final answer"
USED = {"task_id", "Question", "Final answer", "Level", "file_name", "file_path"}


def is_gaia_row(row: dict) -> bool:
    return "Question" in row and "Final answer" in row


def load(path: Path, benchmark: str | None = None, *, limit: int | None = None) -> Dataset:
    if path.is_dir():
        path = path / FILE_NAME
    folder = path.parent
    tasks = TaskCollector(path)
    for line, row in read_jsonl(path):
        task_id = task_id_of(path, line, row, "task_id", needs=NEEDS)
        question = text_field(path, line, row, "Question", needs=NEEDS)
        level = text_field(path, line, row, "Level", needs=NEEDS)
        truth = text_field(path, line, row, "Final answer", needs=NEEDS)
        if truth == "?":
            raise row_error(
                path,
                line,
                f"task {task_id!r} has no ground truth ('Final answer' is '?', as in "
                "GAIA's test split); use the validation split's metadata.jsonl",
            )
        file_name = optional_text(row, "file_name")
        files: tuple[Path, ...] = ()
        if file_name:
            names = [file_name]
            file_path = optional_text(row, "file_path")
            if file_path:
                names += [file_path, Path(file_path).name]
            files = (attached_file(path, line, folder, names),)
        tasks.add(
            line,
            BenchTask(
                task_id=task_id,
                question=question,
                ground_truth=truth,
                files=files,
                group=level,
                metadata=rest_of(row, USED),
            ),
        )
    return tasks.dataset(benchmark or "gaia", limit, what=f"GAIA rows ({NEEDS})")
