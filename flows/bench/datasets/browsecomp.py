"""BrowseComp and BrowseComp-ZH: canary-encrypted CSVs.

BrowseComp (OpenAI simple-evals ``browse_comp_test_set.csv``): columns
``problem``, ``answer``, ``problem_topic``, ``canary``; ``problem`` and
``answer`` are encrypted (see :mod:`.canary`), the topic is plain text.

BrowseComp-ZH (``PALIN2018/BrowseComp-ZH``) is published as
``browsecomp-zh-encrypted.xlsx`` with columns ``Topic``, ``Question``,
``Answer``, ``canary``, all three encrypted the same way; read it exported to
CSV (same columns). A file in BrowseComp's layout whose name holds ``zh`` or
whose decrypted questions are mostly CJK is also named ``browsecomp-zh``.

The task id is the 0-based data row number (stable for the same file) unless the
file has an ``id`` column; the group is the topic.
"""

from __future__ import annotations

import re
from pathlib import Path

from mirograph.flows.bench.datasets.canary import UndecryptableError, decrypt_browsecomp
from mirograph.flows.bench.datasets.rows import (
    Row,
    TaskCollector,
    header_of,
    optional_text,
    read_table,
    rest_of,
    row_error,
    task_id_of,
    text_field,
)
from mirograph.flows.bench.tasks import BenchTask, Dataset

EN_COLUMNS = ("problem", "answer", "canary")
ZH_COLUMNS = ("Question", "Answer", "canary")
_CJK = re.compile(r"[\u3400-\u9fff]")


def layout_of(header: list[str]) -> tuple[str, ...] | None:
    """The columns that make ``header`` a BrowseComp (EN or ZH) file, or None."""
    for columns in (EN_COLUMNS, ZH_COLUMNS):
        if all(c in header for c in columns):
            return columns
    return None


def decrypt_cell(path: Path, line: int, row: Row, column: str, canary: str, needs: str) -> str:
    ciphertext = text_field(path, line, row, column, needs=needs)
    try:
        return decrypt_browsecomp(ciphertext, canary)
    except UndecryptableError as exc:
        raise row_error(
            path,
            line,
            f"field {column!r} cannot be decrypted ({exc}); the file must be the "
            "published encrypted CSV, with each row's own canary",
        ) from None


def load(path: Path, benchmark: str | None = None, *, limit: int | None = None) -> Dataset:
    if path.suffix.lower() in (".xlsx", ".xls"):
        raise row_error(
            path,
            None,
            "Excel files are not read; export it to CSV with the same columns "
            "(Topic, Question, Answer, canary), e.g. from a spreadsheet app",
        )
    header = header_of(path)
    header_zh = "Question" in header and "problem" not in header
    question_col, answer_col, topic_col = (
        ("Question", "Answer", "Topic") if header_zh else ("problem", "answer", "problem_topic")
    )
    needs = f"every BrowseComp row needs {question_col}, {answer_col} and canary"
    tasks = TaskCollector(path)
    cjk_rows = 0
    for index, (line, row) in enumerate(
        read_table(path, ZH_COLUMNS if header_zh else EN_COLUMNS, what="a BrowseComp CSV")
    ):
        canary = text_field(path, line, row, "canary", needs=needs)
        question = decrypt_cell(path, line, row, question_col, canary, needs)
        truth = decrypt_cell(path, line, row, answer_col, canary, needs)
        cjk_rows += bool(_CJK.search(question))
        task_id = (
            task_id_of(path, line, row, "id", needs="the id column needs a value in every row")
            if "id" in row
            else str(index)
        )
        tasks.add(
            line,
            BenchTask(
                task_id=task_id,
                question=question,
                ground_truth=truth,
                group=_topic(row.get(topic_col), canary, encrypted=header_zh),
                metadata=rest_of(row, {"id", "canary", question_col, answer_col, topic_col}),
            ),
        )
    is_zh = header_zh or "zh" in path.stem.lower() or cjk_rows * 2 > len(tasks)
    name = benchmark or ("browsecomp-zh" if is_zh else "browsecomp")
    return tasks.dataset(name, limit, what=f"BrowseComp rows ({needs})")


def _topic(value: object, canary: str, *, encrypted: bool) -> str | None:
    """The topic; BrowseComp-ZH encrypts it, but a plain one (a re-export) is kept as is."""
    text = optional_text({"topic": value}, "topic")
    if text is None or not encrypted:
        return text
    try:
        return decrypt_browsecomp(text, canary).strip() or None
    except UndecryptableError:
        return text
