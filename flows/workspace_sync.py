"""A run's workspace files follow it from machine to machine through a server store.

A run's tools write files in ``$MIROGRAPH_HOME/runs/<id>/workspace``, on the
machine that runs the session. With a PostgreSQL store the files are also kept
in the store (``state.postgres.files``): sent after each tool call (in the
background, only files whose size or modification time changed) and at every
session's end; and written back into the workspace when a session starts on a
machine whose workspace lacks them or holds other versions. A SQLite store is
local: nothing is copied. Symbolic links and anything else but regular files are
left out; so are files past ``FILE_MAX`` bytes, and files once a run's stored
ones would pass ``RUN_MAX`` (one warning each, naming the file).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import stat
from pathlib import Path, PurePosixPath
from typing import Any

from mirograph.state.postgres.files import PostgresFiles, StoredFile
from mirograph.state.store import Store

log = logging.getLogger(__name__)

#: Bytes of one workspace file that a store keeps at most.
FILE_MAX = 32 * 1024 * 1024
#: Bytes of one run's workspace files that a store keeps at most.
RUN_MAX = 256 * 1024 * 1024
#: Seconds between two background scans at most once a tool call has ended.
SCAN_EVERY_S = 0.2
#: Seconds a session's end waits to send its last changes.
CLOSE_WAIT_S = 30.0
#: The events after which files may have changed.
_CHANGING = frozenset({"tool_call", "agent_finished"})

#: (size, modification time in ns) of a file as scanned.
Stamp = tuple[int, int]


async def restore_workspace(store: Store, run_id: str, workspace: Path) -> int:
    """Write the run's stored files that ``workspace`` lacks or holds otherwise; how
    many were written. A SQLite store has none to restore."""
    if store.files is None:
        return 0
    stored = await store.files.manifest(run_id)
    wanted = await asyncio.to_thread(_differing, workspace, stored)
    if not wanted:
        return 0
    contents = await store.files.contents(run_id, wanted)
    await asyncio.to_thread(_write_all, workspace, [(stored[p], contents[p]) for p in contents])
    return len(contents)


async def syncing_workspace(store: Store, run_id: str, workspace: Path) -> WorkspaceSync | None:
    """An event sink that keeps the run's workspace files in the store (None: a local
    store, nothing to keep); ``aclose`` at the session's end sends the last changes."""
    if store.files is None:
        return None
    sync = WorkspaceSync(store.files, run_id, workspace)
    await sync.start()
    return sync


class WorkspaceSync:
    """Sends a session's changed workspace files to the store, in the background."""

    def __init__(self, files: PostgresFiles, run_id: str, workspace: Path) -> None:
        self.files = files
        self.run_id = run_id
        self.workspace = workspace
        #: What the store holds, as this machine last saw it: path -> (size, mtime_ns).
        self._sent: dict[str, Stamp] = {}
        self._sizes: dict[str, int] = {}
        self._warned: set[tuple[str, int]] = set()
        self._changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        stored = await self.files.manifest(self.run_id)
        local = await asyncio.to_thread(scan, self.workspace)
        for path, file in stored.items():
            self._sizes[path] = file.size
            if local.get(path) == (file.size, file.mtime_ns):
                self._sent[path] = local[path]
        self._task = asyncio.create_task(self._keep_sending(), name=f"workspace {self.run_id}")

    def __call__(self, event: dict[str, Any]) -> None:
        """Event sink: a tool call ended, so files may have changed."""
        if event.get("event") in _CHANGING:
            self._loop.call_soon_threadsafe(self._changed.set)

    async def _keep_sending(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            try:
                await self.send_changes()
            except Exception as exc:  # the store away: the session's end tries again
                log.debug("workspace of run %s not sent: %s", self.run_id, exc)
            await asyncio.sleep(SCAN_EVERY_S)

    async def send_changes(self) -> int:
        """Send what changed since the last scan, forget what was removed; how many sent."""
        local = await asyncio.to_thread(scan, self.workspace)
        changed = sorted(path for path, stamp in local.items() if self._sent.get(path) != stamp)
        removed = [path for path in self._sent if path not in local]
        batch: list[tuple[StoredFile, bytes]] = []
        stamps: dict[str, Stamp] = {}
        total = sum(size for path, size in self._sizes.items() if path not in changed)
        for path in changed:
            size = local[path][0]
            if size > FILE_MAX:
                self._warn(path, size, f"is over the {_mib(FILE_MAX)} a store keeps per file")
                continue
            if total + size > RUN_MAX:
                self._warn(path, size, f"would take the run's stored files past {_mib(RUN_MAX)}")
                continue
            read = await asyncio.to_thread(_read, self.workspace, path)
            if read is None:
                continue  # gone or replaced meanwhile: the next scan sees it
            content, stamp = read
            digest = hashlib.sha256(content).hexdigest()
            batch.append((StoredFile(path, len(content), stamp[1], digest), content))
            stamps[path] = stamp
            total += len(content)
        await self.files.put(self.run_id, batch)
        await self.files.delete(self.run_id, removed)
        for path in removed:
            self._sent.pop(path, None)
            self._sizes.pop(path, None)
        for file, _ in batch:
            self._sent[file.path] = stamps[file.path]
            self._sizes[file.path] = file.size
        return len(batch)

    def _warn(self, path: str, size: int, why: str) -> None:
        if (path, size) not in self._warned:
            self._warned.add((path, size))
            log.warning(
                "workspace file %s of run %s (%s) %s: it stays on this machine only",
                path,
                self.run_id,
                _mib(size),
                why,
            )

    async def aclose(self) -> None:
        """Stop the background sending, then send the last changes (the session ends);
        a store that is away gets one warning: the files stay on this machine."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            async with asyncio.timeout(CLOSE_WAIT_S):
                await self.send_changes()
        except Exception as exc:
            log.warning(
                "workspace files of run %s not stored (%s); a resume elsewhere lacks the"
                " latest ones, a resume here has them",
                self.run_id,
                " ".join(str(exc).split())[:200] or type(exc).__name__,
            )


def scan(workspace: Path) -> dict[str, Stamp]:
    """Every regular file under ``workspace`` (links not followed), by ``/`` path."""
    found: dict[str, Stamp] = {}
    for folder, dirs, files in os.walk(workspace, followlinks=False):
        base = Path(folder)
        dirs[:] = [d for d in dirs if not (base / d).is_symlink()]
        for name in files:
            try:
                info = (base / name).lstat()
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                path = (base / name).relative_to(workspace).as_posix()
                found[path] = (info.st_size, info.st_mtime_ns)
    return found


def _read(workspace: Path, path: str) -> tuple[bytes, Stamp] | None:
    """The file's content and stamp, read without following a link; None if it went."""
    try:
        fd = os.open(workspace / path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None
        return file.read(), (info.st_size, info.st_mtime_ns)


def _inside(workspace: Path, path: str) -> Path | None:
    """Where a stored path lands in ``workspace``; None for one that would leave it."""
    relative = PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        return None
    target = workspace.joinpath(*relative.parts)
    root = workspace.resolve()
    if not target.parent.resolve().is_relative_to(root) or target.is_symlink():
        return None
    return target


def _differing(workspace: Path, stored: dict[str, StoredFile]) -> list[str]:
    """Stored files that ``workspace`` lacks or holds with other contents."""
    wanted = []
    for path, file in stored.items():
        target = _inside(workspace, path)
        if target is None:
            continue
        try:
            info = target.lstat()
        except OSError:
            wanted.append(path)
            continue
        if (info.st_size, info.st_mtime_ns) == (file.size, file.mtime_ns):
            continue
        read = _read(workspace, path)
        if read is None or hashlib.sha256(read[0]).hexdigest() != file.sha256:
            wanted.append(path)
    return wanted


def _write_all(workspace: Path, files: list[tuple[StoredFile, bytes]]) -> None:
    """Write each file in place (through a temporary file), with its stored mtime."""
    for file, content in files:
        target = _inside(workspace, file.path)
        if target is None:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.mirograph-restore")
        temporary.write_bytes(content)
        os.utime(temporary, ns=(file.mtime_ns, file.mtime_ns))
        os.replace(temporary, target)


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"
