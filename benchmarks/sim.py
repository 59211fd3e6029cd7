"""Start ``mirograph sim-model`` as its own process for a benchmark: its CPU is not the
engine's. The benchmarks package is importable by the server (``PYTHONPATH``), so a
policy may be ``benchmarks.<module>:<function>``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_sim_model(policy: str, *options: str) -> tuple[subprocess.Popen[str], str]:
    """The server process and its base URL; ``options``: more ``sim-model`` flags."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "mirograph", "sim-model", "--port", "0", "--policy", policy]
    proc = subprocess.Popen([*command, *options], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"(http://\S+/v1)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"sim-model did not start: {line!r}")
    return proc, match.group(1)
