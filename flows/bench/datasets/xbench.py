"""xbench-DeepSearch: a canary-encrypted CSV (``xbench/DeepSearch``, e.g. ``DeepSearch.csv``).

Published layout (checked against its README's decryption snippet and MiroFlow's
``gen_xbench_ds``): columns ``id``, ``prompt``, ``answer``, ``reference_steps``
and ``canary``; ``prompt``, ``answer`` and ``reference_steps`` are base64 of the
text XOR-ed with the canary's own UTF-8 bytes repeated (not BrowseComp's SHA-256
key; see :mod:`.canary`). Assumed, not seen in the sources: other columns are
plain text; a ``type``/``topic``/``category`` column, where present, is the
group (the published file has none, so the group is usually None). A file
without ``id`` numbers its rows from 0.
"""

from __future__ import annotations

from pathlib import Path

from mirograph.flows.bench.datasets.canary import UndecryptableError, decrypt_xbench
from mirograph.flows.bench.datasets.rows import (
    Row,
    TaskCollector,
    optional_text,
    read_table,
    rest_of,
    row_error,
    task_id_of,
    text_field,
)
from mirograph.flows.bench.tasks import BenchTask, Dataset

COLUMNS = ("prompt", "answer", "canary")
NEEDS = "every xbench row needs prompt, answer and canary"
GROUP_COLUMNS = ("type", "topic", "category")
ENCRYPTED = ("prompt", "answer", "reference_steps")


def decrypt_cell(path: Path, line: int, column: str, ciphertext: str, canary: str) -> str:
    try:
        return decrypt_xbench(ciphertext, canary)
    except UndecryptableError as exc:
        raise row_error(
            path,
            line,
            f"field {column!r} cannot be decrypted ({exc}); the file must be the "
            "published encrypted xbench CSV, with each row's own canary",
        ) from None


def load(path: Path, benchmark: str | None = None, *, limit: int | None = None) -> Dataset:
    tasks = TaskCollector(path)
    for index, (line, row) in enumerate(read_table(path, COLUMNS, what="an xbench CSV")):
        canary = text_field(path, line, row, "canary", needs=NEEDS)
        plain: Row = {
            column: decrypt_cell(
                path, line, column, text_field(path, line, row, column, needs=NEEDS), canary
            )
            for column in ("prompt", "answer")
        }
        steps = optional_text(row, "reference_steps")
        if steps:
            plain["reference_steps"] = decrypt_cell(path, line, "reference_steps", steps, canary)
        task_id = (
            task_id_of(path, line, row, "id", needs="the id column needs a value in every row")
            if "id" in row
            else str(index)
        )
        group = next((optional_text(row, c) for c in GROUP_COLUMNS if optional_text(row, c)), None)
        metadata = rest_of(row, {"id", "canary", *ENCRYPTED})
        if "reference_steps" in plain:
            metadata["reference_steps"] = plain["reference_steps"]
        tasks.add(
            line,
            BenchTask(
                task_id=task_id,
                question=plain["prompt"].strip(),
                ground_truth=plain["answer"].strip(),
                group=group,
                metadata=metadata,
            ),
        )
    return tasks.dataset(benchmark or "xbench-deepsearch", limit, what=f"xbench rows ({NEEDS})")
