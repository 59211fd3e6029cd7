"""What a benchmark is made of: tasks read from a dataset, and the dataset itself.

Every loader in ``datasets/`` returns a :class:`Dataset`; the harness, the judges
and the scoring read nothing else of the published format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BenchTask:
    """One question of a benchmark, as the agent is asked it and as it is judged."""

    #: The dataset's own id (GAIA's ``task_id``, a BrowseComp row number, ...): stable
    #: across reads of the same file, unique within the dataset.
    task_id: str
    #: The question as the agent is asked it (decrypted where the dataset is encrypted).
    question: str
    #: The expected answer (decrypted), as the judge compares it.
    ground_truth: str
    #: Files attached to the task (absolute paths that exist): copied into the run's
    #: workspace before it starts, and named in the question the agent sees.
    files: tuple[Path, ...] = ()
    #: The breakdown the benchmark reports by: GAIA's level ("1", "2", "3"), a topic or
    #: category (BrowseComp, HLE, xbench), a reasoning type (FRAMES); None: no breakdown.
    group: str | None = None
    #: Everything else the row held, JSON-serialisable (kept in results, never judged).
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Dataset:
    """A benchmark's tasks, read from ``source``."""

    #: The canonical benchmark name: ``gaia``, ``browsecomp``, ``browsecomp-zh``,
    #: ``hle``, ``frames``, ``xbench-deepsearch``, or the name a standardized JSONL
    #: file or ``--benchmark`` gives (it picks the judge's criteria).
    benchmark: str
    #: The file or folder the tasks were read from.
    source: Path
    tasks: tuple[BenchTask, ...]
