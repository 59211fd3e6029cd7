"""Sandboxed Python interpreters and shell commands, for the ``python`` tool set.

A sandbox is a folder plus, while it is in use, one long-lived Python
interpreter (bubblewrap-isolated, or a plain process with resource limits
only) whose variables and imports persist across calls, and which stops every
process a call leaves behind. Three parts: ``child`` is the server that runs
inside the sandbox (its whole source is sent there, so it is stdlib only and
imports nothing of mirograph; the host imports the helpers it shares with it);
``isolation`` and ``processes`` are the host side (bubblewrap arguments, the
environment, the uid drop and file hand-over as root; the process tree, its
kill, and the host's end of the frame protocol), with ``limits``; ``manager``
is the per-run ``SandboxManager``, which the ``python`` tool set
(``agents/tools/python.py``) imports from this package, with ``Limits``,
``SandboxError`` and ``bubblewrap_problem``.
"""

from mirograph.agents.tools.sandbox.isolation import Isolation, bubblewrap_problem
from mirograph.agents.tools.sandbox.limits import Limits
from mirograph.agents.tools.sandbox.manager import (
    NOTE_FALLBACK,
    NOTE_RESET,
    SandboxError,
    SandboxManager,
)
from mirograph.agents.tools.sandbox.processes import alive, process_tree

__all__ = [
    "NOTE_FALLBACK",
    "NOTE_RESET",
    "Isolation",
    "Limits",
    "SandboxError",
    "SandboxManager",
    "alive",
    "bubblewrap_problem",
    "process_tree",
]
