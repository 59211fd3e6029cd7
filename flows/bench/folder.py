"""A bench's output folder: locked while a bench writes it, and ``bench.json``, which
fixes what the bench is so that the same command again continues it (and another
one is refused rather than mixed in).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mirograph.errors import UserInputError
from mirograph.flows.bench.tasks import Dataset

if TYPE_CHECKING:
    from mirograph.flows.bench.harness import BenchSettings
    from mirograph.flows.loader import FlowConfig

#: The settings that make a bench what it is: a rerun must give the same ones.
IDENTITY = ("dataset", "tasks_digest", "benchmark", "flow", "runs", "seed", "limit", "judge")


@contextmanager
def locked_out_dir(out: Path) -> Iterator[None]:
    """Hold ``out`` for this bench: two benches writing one folder would interleave."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = open(out / ".lock", "a+", encoding="utf-8")  # noqa: SIM115 (held open)
    except OSError as exc:
        raise UserInputError(
            f"cannot write the bench's output folder {out} ({exc.strerror or exc});"
            " pass a writable --out"
        ) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserInputError(
                f"another `mirograph bench` is writing {out}; wait for it to end or pass"
                " another --out"
            ) from None
        yield


def bench_identity(settings: BenchSettings) -> dict[str, Any]:
    return {
        "dataset": str(settings.dataset.source),
        "tasks_digest": tasks_digest(settings.dataset),
        "benchmark": settings.dataset.benchmark,
        "flow": settings.flow_name,
        "runs": settings.runs,
        "seed": settings.seed,
        "limit": settings.limit,
        "judge": settings.judge.name,
    }


def tasks_digest(dataset: Dataset) -> str:
    """A digest of what the tasks ask and expect: an edited dataset file is a new bench."""
    digest = hashlib.sha256()
    for task in dataset.tasks:
        digest.update(json.dumps([task.task_id, task.question, task.ground_truth]).encode())
        for path in task.files:  # an edited attachment is another task too
            digest.update(path.name.encode() + b"\0" + _file_digest(path))
    return digest.hexdigest()[:16]


def _file_digest(path: Path) -> bytes:
    file_hash = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                file_hash.update(block)
    except OSError as exc:
        raise UserInputError(
            f"cannot read the attached file {path} ({exc.strerror or exc}); put it back"
        ) from None
    return file_hash.digest()


def flow_digest(flow: FlowConfig | str) -> str:
    """A digest of the flow as it runs (a custom graph: its reference)."""
    spec = flow if isinstance(flow, str) else flow.model_dump(mode="json")
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def open_bench(settings: BenchSettings) -> str:
    """The bench's id: read from ``bench.json`` (whose settings must match), or made."""
    path = settings.out / "bench.json"
    identity = bench_identity(settings)
    if path.exists():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            bench_id = str(saved["bench_id"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserInputError(
                f"{path} cannot be read ({exc}); pass another --out for a new bench"
            ) from None
        changed = [key for key in IDENTITY if saved.get(key) != identity[key]]
        if changed:
            key = changed[0]
            if key == "tasks_digest":
                raise UserInputError(
                    f"the tasks of {settings.dataset.source} changed since the bench in"
                    f" {settings.out} started; pass another --out for a bench of the new tasks"
                )
            raise UserInputError(
                f"{settings.out} holds a bench with {key} {saved.get(key)!r}, not"
                f" {identity[key]!r}; rerun with the same options to continue it, or pass"
                " another --out"
            )
        digest = flow_digest(settings.flow)
        if saved.get("flow_digest") != digest:
            # A fixed flow file (a model name, a URL) is what the unfinished attempts
            # continue on; the judged ones keep what they ran with. Said, and recorded.
            settings.notes.append(
                f"the flow {settings.flow_name} changed since this bench started: its"
                " unfinished attempts continue with the changed flow"
            )
            write_atomically(
                path, json.dumps({**saved, "flow_digest": digest}, ensure_ascii=False, indent=2)
            )
        return bench_id
    bench_id = f"bench-{slug(settings.dataset.benchmark, 'bench')[:24]}-{secrets.token_hex(3)}"
    tasks = [t.task_id for t in settings.dataset.tasks]
    record = {
        "bench_id": bench_id,
        **identity,
        "flow_digest": flow_digest(settings.flow),
        "created_at": time.time(),
        "tasks": tasks,
    }
    write_atomically(path, json.dumps(record, ensure_ascii=False, indent=2) + "\n")
    return bench_id


def slug(name: str, default: str) -> str:
    """``name`` as a piece of a file name or run id: letters and digits, ``-`` between."""
    kept = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    return kept[:40] or default


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` whole: a kill mid-write leaves the old file, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
