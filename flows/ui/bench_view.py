"""``mirograph bench`` output folders as the web view lists them.

A folder holds a bench when it has ``bench.json`` (what it measures) and
``summary.json`` (its scores so far); the page shows the summary and the two
plots. Folders are looked for in each root the server was given (``--bench``,
default ``./bench``, where ``mirograph bench`` writes) and one level below it.
Only those two plots are served, by the folder's number in the list, and only
when they are in that folder (not links to files elsewhere): no path from a
request reaches the file system.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mirograph.state.redact import scrub

#: The plots a bench folder holds, as the page may ask for them.
PLOTS = ("scaling.png", "turns.png")


def bench_folders(roots: list[Path]) -> list[Path]:
    """The bench folders under ``roots``, each once, by path."""
    found: set[Path] = set()
    for root in roots:
        candidates = [root, *(sorted(root.iterdir()) if root.is_dir() else [])]
        for folder in candidates:
            if folder.is_dir() and (folder / "bench.json").is_file():
                found.add(folder.resolve())
    return sorted(found)


def bench_rows(roots: list[Path]) -> list[dict[str, Any]]:
    """Each bench folder: its settings, summary (None before the first judged attempt)
    and the plots it has."""
    rows = []
    for index, folder in enumerate(bench_folders(roots)):
        settings = _json(folder / "bench.json") or {}
        rows.append(
            {
                "index": index,
                "folder": str(folder),
                "settings": settings,
                "summary": _json(folder / "summary.json"),
                "plots": [name for name in PLOTS if _own_plot(folder, name)],
            }
        )
    return scrub(rows)


def plot_path(roots: list[Path], index: int, name: str) -> Path | None:
    """The plot ``name`` of the ``index``-th folder, or None."""
    folders = bench_folders(roots)
    if name not in PLOTS or not 0 <= index < len(folders):
        return None
    return folders[index] / name if _own_plot(folders[index], name) else None


def _own_plot(folder: Path, name: str) -> bool:
    """Whether ``folder`` (resolved) holds the plot ``name`` itself: a link to a file
    elsewhere is not the folder's plot, and is neither listed nor served."""
    path = folder / name
    return path.is_file() and path.resolve().parent == folder


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
