"""Crash reports: an internal error is one line for the user and a file for the bug report.

A traceback on the terminal reads as if the user's input were wrong, and is
lost once the terminal scrolls. The CLI writes it here instead, with the
command line and versions, secrets masked, and names the file in its one line.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

from mirograph.state.store import mirograph_home


def write_crash_report(exc: BaseException) -> Path:
    """Write ``exc``'s traceback to ``$MIROGRAPH_HOME/crash-<time>-<pid>.txt`` (the
    system's temporary folder where the home cannot be written); return the path."""
    text = _report_text(exc)
    name = f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    for folder in (mirograph_home(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            path.write_text(text, encoding="utf-8", errors="backslashreplace")
            return path
        except OSError:
            continue
    raise OSError("no writable folder for a crash report")  # pragma: no cover


def _report_text(exc: BaseException) -> str:
    from mirograph.state.redact import redact

    lines = [
        f"command: {' '.join(sys.argv)}",
        f"python: {sys.version.split()[0]} on {platform.platform()}",
        f"mirograph: {_version()}",
        "",
        *traceback.format_exception(exc),
    ]
    return redact("\n".join(line.rstrip("\n") for line in lines) + "\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mirograph")
    except PackageNotFoundError:
        return "unknown"
