"""Dataset loaders: one module per published format, each returning a ``Dataset``.

:func:`load_dataset` tells the format from the path (a folder's layout, the file
name, a CSV header, a JSONL row's fields) unless ``benchmark`` names it, reads
the whole file and refuses a bad row with one ``file:line`` error before any
task runs. :data:`FORMATS` describes each format for ``--help``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from mirograph.errors import DatasetError
from mirograph.flows.bench.datasets import browsecomp, frames, gaia, hle, standard, xbench
from mirograph.flows.bench.datasets.rows import header_of
from mirograph.flows.bench.tasks import Dataset

Loader = Callable[..., Dataset]

#: Format name -> what it reads (``mirograph bench --help``).
FORMATS: dict[str, str] = {
    "gaia": "GAIA metadata.jsonl (or its folder) with attached files next to it",
    "browsecomp": "BrowseComp CSV (simple-evals: problem, answer, problem_topic, canary)",
    "browsecomp-zh": "BrowseComp-ZH exported to CSV (Topic, Question, Answer, canary)",
    "xbench-deepsearch": "xbench-DeepSearch CSV (id, prompt, answer, reference_steps, canary)",
    "hle": "Humanity's Last Exam JSONL/CSV/parquet (id, question, answer, image); text-only rows",
    "frames": "FRAMES TSV/CSV (google/frames-benchmark: Prompt, Answer, reasoning_types)",
    "standard": "MiroThinker standardized JSONL (task_id, task_question, ground_truth, file_name)",
}

_LOADERS: dict[str, Loader] = {
    "gaia": gaia.load,
    "browsecomp": browsecomp.load,
    "browsecomp-zh": browsecomp.load,
    "xbench-deepsearch": xbench.load,
    "hle": hle.load,
    "frames": frames.load,
    "standard": standard.load,
}


def load_dataset(path: Path, benchmark: str | None = None, *, limit: int | None = None) -> Dataset:
    """The tasks of the dataset at ``path``, its first ``limit`` ones when given.

    ``benchmark`` names the format when it is one of :data:`FORMATS`; a
    standardized JSONL (rows with ``task_question``) is always read as such and
    then ``benchmark``, whatever it is, names its benchmark (the judge's criteria).
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder; {_supported()}")
    if limit is not None and limit < 1:
        raise DatasetError(f"limit {limit}: must be 1 or more")
    try:
        return _load(path, benchmark, limit)
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{path}: not UTF-8 text (byte {exc.start}); give the dataset as UTF-8 JSONL/CSV/TSV"
        ) from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _load(path: Path, benchmark: str | None, limit: int | None) -> Dataset:
    detected = detect_format(path)
    if detected == "standard" or (detected is not None and benchmark is None):
        fmt = detected
    elif benchmark in _LOADERS:
        fmt = benchmark
    elif benchmark is not None:
        raise DatasetError(
            f"{path}: unknown benchmark {benchmark!r}; {_supported()} (or a standardized "
            "JSONL, which any benchmark name may label)"
        )
    else:
        raise DatasetError(f"{path}: cannot tell the dataset's format; {_supported()}")
    if path.is_dir():
        path = _file_in(path, fmt)
    return _LOADERS[fmt](path, benchmark, limit=limit)


def detect_format(path: Path) -> str | None:
    """The format ``path`` is in, from its layout, name and first row; None: unknown."""
    if path.is_dir():
        if (path / gaia.FILE_NAME).is_file():
            return "gaia"
        if (path / standard.FILE_NAME).is_file():
            return "standard"
        return None
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return _table_format(path)
    if suffix in (".xlsx", ".xls"):
        return "browsecomp-zh" if "zh" in path.stem.lower() else None
    if suffix == ".parquet":
        return "hle"
    if suffix in (".jsonl", ".json"):
        return _jsonl_format(path)
    return None


def _table_format(path: Path) -> str | None:
    header = header_of(path)
    layout = browsecomp.layout_of(header)
    if layout is not None:
        zh = layout == browsecomp.ZH_COLUMNS or "zh" in path.stem.lower()
        return "browsecomp-zh" if zh else "browsecomp"
    if all(c in header for c in xbench.COLUMNS):
        return "xbench-deepsearch"
    if all(c in header for c in frames.COLUMNS):
        return "frames"
    if all(c in header for c in ("question", "answer")):
        return "hle"
    return None


def _jsonl_format(path: Path) -> str | None:
    """The format of the first JSON object line (a bad first line: let the name decide)."""
    row = None
    with path.open(encoding="utf-8-sig") as lines:
        for text in lines:
            if text.strip():
                try:
                    row = json.loads(text)
                except (json.JSONDecodeError, RecursionError):
                    row = None
                break
    if isinstance(row, dict):
        if standard.is_standard_row(row):
            return "standard"
        if gaia.is_gaia_row(row):
            return "gaia"
        if hle.is_hle_row(row):
            return "hle"
    if path.name == gaia.FILE_NAME:
        return "gaia"
    if path.name == standard.FILE_NAME:
        return "standard"
    return None


def _file_in(folder: Path, fmt: str) -> Path:
    names = {"gaia": gaia.FILE_NAME, "standard": standard.FILE_NAME}
    if fmt not in names or not (folder / names[fmt]).is_file():
        raise DatasetError(
            f"{folder}: a folder is read only as GAIA (metadata.jsonl) or standardized "
            f"({standard.FILE_NAME}); give the {fmt} file itself"
        )
    return folder / names[fmt]


def _supported() -> str:
    return "supported formats: " + ", ".join(FORMATS)
