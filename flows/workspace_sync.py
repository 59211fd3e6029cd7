"""A run's workspace files follow it from machine to machine through a server store.

A run's tools write files in ``$MIROGRAPH_HOME/runs/<id>/workspace``, on the
machine that runs the session. With a PostgreSQL store the files are also kept
in the store (``state.postgres.files``): sent after each tool call (in the
background, only files whose size or modification time changed), before each
checkpoint write of the run (the checkpoint saver's ``before_write`` hook: a
checkpoint never refers to a tool call whose files a crash could lose), and at
every session's end. Sends are fenced by the session's lease: a session that lost
its run sends nothing more. A session that starts writes back into the workspace
the stored files it lacks, and those it holds unchanged since they were last
synced here (``synced.json`` beside the workspace records each file's size,
modification time and SHA-256 as last sent or restored): a file changed here
since is newer than the store's, so it is kept and sent. A SQLite store is local:
nothing is copied. Symbolic links and anything else but regular files are left
out; so are files past ``FILE_MAX`` bytes, and files once a run's stored ones
would pass ``RUN_MAX`` (one warning each, naming the file). A stored file that
cannot be written here (a folder in its way, say) is left out with a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import secrets
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import Any

from mirograph.state.leases import Lease
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
#: What a file was when last synced with the store here: (size, mtime_ns, sha256).
Synced = tuple[int, int, str]
#: The checkpoint saver's hooks, by run id (``PostgresSaver.before_write``).
Hooks = dict[str, Callable[[], Awaitable[None]]]


async def restore_workspace(store: Store, run_id: str, workspace: Path) -> int:
    """Write the run's stored files that ``workspace`` lacks, or holds unchanged since
    they were last synced here while the store's differ; how many were written. A
    SQLite store has none to restore."""
    if store.files is None:
        return 0
    stored = await store.files.manifest(run_id)
    if not stored:
        return 0
    kept = await asyncio.to_thread(load_record, workspace)
    wanted, agreeing = await asyncio.to_thread(_differing, workspace, stored, kept, run_id)
    contents = await store.files.contents(run_id, wanted) if wanted else {}
    written = await asyncio.to_thread(
        _write_all, workspace, [(stored[p], contents[p]) for p in contents], run_id
    )
    if written or agreeing or kept is None:
        record = kept or {}
        record.update(agreeing)
        record.update({file.path: (file.size, file.mtime_ns, file.sha256) for file in written})
        await asyncio.to_thread(save_record, workspace, record)
    return len(written)


async def syncing_workspace(
    store: Store, run_id: str, workspace: Path, lease: Lease | None = None
) -> WorkspaceSync | None:
    """An event sink that keeps the run's workspace files in the store, its sends fenced
    by ``lease`` (None: a local store, nothing to keep); each checkpoint write of the
    run first sends what changed; ``aclose`` at the session's end sends the last."""
    if store.files is None:
        return None
    sync = WorkspaceSync(store.files, run_id, workspace, lease)
    await sync.start(getattr(store.checkpointer, "before_write", None))
    return sync


class WorkspaceSync:
    """Sends a session's changed workspace files to the store, in the background and
    whenever the run's next checkpoint is written (``flush``)."""

    def __init__(
        self, files: PostgresFiles, run_id: str, workspace: Path, lease: Lease | None = None
    ) -> None:
        self.files = files
        self.run_id = run_id
        self.workspace = workspace
        self.lease = lease
        #: What the store holds, as this machine last saw it: path -> (size, mtime_ns).
        self._sent: dict[str, Stamp] = {}
        self._sizes: dict[str, int] = {}
        self._record: dict[str, Synced] = {}
        self._warned: set[tuple[str, int]] = set()
        #: A tool call ended since the last send began (set from any thread).
        self._dirty = False
        #: The session lost its lease: nothing more is sent.
        self._lost = False
        self._sending = asyncio.Lock()
        self._changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[None] | None = None
        self._hooks: Hooks | None = None

    async def start(self, hooks: Hooks | None = None) -> None:
        """Note what the store already holds, start the background sending, and make
        each checkpoint write of the run (through ``hooks``) wait for ``flush``."""
        stored = await self.files.manifest(self.run_id)
        local = await asyncio.to_thread(scan, self.workspace)
        self._record = await asyncio.to_thread(load_record, self.workspace) or {}
        for path, file in stored.items():
            self._sizes[path] = file.size
            if local.get(path) == (file.size, file.mtime_ns):
                self._sent[path] = local[path]
        self._task = asyncio.create_task(self._keep_sending(), name=f"workspace {self.run_id}")
        if hooks is not None:
            self._hooks = hooks
            hooks[self.run_id] = self.flush

    def __call__(self, event: dict[str, Any]) -> None:
        """Event sink: a tool call ended, so files may have changed."""
        if event.get("event") in _CHANGING:
            self._dirty = True
            self._loop.call_soon_threadsafe(self._changed.set)

    async def flush(self) -> None:
        """Wait until what changed by the last tool call is in the store (the checkpoint
        after it refers to it); a failed send raises, so that checkpoint is not written."""
        if not self._dirty and not self._sending.locked():
            return
        async with self._sending:
            if self._dirty:
                await self._send_locked()

    async def _keep_sending(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            try:
                async with self._sending:
                    if self._dirty:
                        await self._send_locked()
            except Exception as exc:  # the store away: the next checkpoint or the end retries
                log.debug("workspace of run %s not sent: %s", self.run_id, exc)
            await asyncio.sleep(SCAN_EVERY_S)

    async def send_changes(self) -> int:
        """Send what changed since the last scan, forget what was removed; how many sent."""
        async with self._sending:
            return await self._send_locked()

    async def _send_locked(self) -> int:
        self._dirty = False
        try:
            return await self._send()
        except BaseException:
            self._dirty = True  # still to send
            raise

    async def _send(self) -> int:
        if self._lost:
            return 0
        batch, stamps, removed = await asyncio.to_thread(self._gather)
        fence = self.lease
        if not await self.files.put(self.run_id, batch, fence) or not await self.files.delete(
            self.run_id, removed, fence
        ):
            self._lost = True
            log.info("run %s was taken over: this session sends no more files", self.run_id)
            return 0
        for path in removed:
            self._sent.pop(path, None)
            self._sizes.pop(path, None)
            self._record.pop(path, None)
        for file, _ in batch:
            self._sent[file.path] = stamps[file.path]
            self._sizes[file.path] = file.size
            self._record[file.path] = (file.size, file.mtime_ns, file.sha256)
        if batch or removed:
            await asyncio.to_thread(save_record, self.workspace, dict(self._record))
        return len(batch)

    def _gather(self) -> tuple[list[tuple[StoredFile, bytes]], dict[str, Stamp], list[str]]:
        """(In a thread.) Scan, then read and hash each file changed since it was sent:
        the files to put, their stamps, and the paths removed."""
        local = scan(self.workspace)
        changed = sorted(path for path, stamp in local.items() if self._sent.get(path) != stamp)
        changing = set(changed)
        removed = [path for path in self._sent if path not in local]
        total = sum(
            size for path, size in self._sizes.items() if path in local and path not in changing
        )
        batch: list[tuple[StoredFile, bytes]] = []
        stamps: dict[str, Stamp] = {}
        for path in changed:
            size = local[path][0]
            if size > FILE_MAX:
                self._warn(path, size, f"is over the {_mib(FILE_MAX)} a store keeps per file")
                continue
            if total + size > RUN_MAX:
                self._warn(path, size, f"would take the run's stored files past {_mib(RUN_MAX)}")
                continue
            read = _read(self.workspace, path)
            if read is None:
                continue  # gone or replaced meanwhile: the next scan sees it
            content, stamp = read
            digest = hashlib.sha256(content).hexdigest()
            batch.append((StoredFile(path, len(content), stamp[1], digest), content))
            stamps[path] = stamp
            total += len(content)
        return batch, stamps, removed

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
        if self._hooks is not None and self._hooks.get(self.run_id) == self.flush:
            del self._hooks[self.run_id]
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
    """Every regular file under ``workspace`` (links not followed), by ``/`` path; with
    ``os.scandir`` and plain strings: it runs before each checkpoint after a tool call."""
    found: dict[str, Stamp] = {}
    folders = [(str(workspace), "")]
    while folders:
        folder, prefix = folders.pop()
        try:
            entries = os.scandir(folder)
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        folders.append((entry.path, f"{prefix}{entry.name}/"))
                        continue
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    found[prefix + entry.name] = (info.st_size, info.st_mtime_ns)
    return found


def record_path(workspace: Path) -> Path:
    """Where the record of the files last synced here lies: beside the workspace (in
    it, a tool could change or remove it)."""
    return workspace.with_name(f"{workspace.name}.synced.json")


def load_record(workspace: Path) -> dict[str, Synced] | None:
    """What each file was when last synced here; None if no record was kept (a workspace
    synced by an earlier version, or the record unreadable: the store's files win)."""
    try:
        kept = json.loads(record_path(workspace).read_text(encoding="utf-8"))
        return {path: (int(s), int(m), str(h)) for path, (s, m, h) in kept.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def save_record(workspace: Path, record: dict[str, Synced]) -> None:
    """Replace the record at once (through a temporary file); a failure is only logged:
    without it a resume here keeps the local files it cannot place."""
    target = record_path(workspace)
    temporary = target.with_name(f".mg-{secrets.token_hex(4)}.tmp")
    try:
        temporary.write_text(json.dumps(record, separators=(",", ":")), encoding="utf-8")
        os.replace(temporary, target)
    except OSError as exc:
        log.debug("record of synced files %s not written: %s", target, exc)
        with contextlib.suppress(OSError):
            temporary.unlink()


def _read(workspace: Path, path: str) -> tuple[bytes, Stamp] | None:
    """The file's content and stamp, read without following a link; None if it went
    or is no regular file."""
    try:
        fd = os.open(workspace / path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as file:
            return file.read(), (info.st_size, info.st_mtime_ns)
    except OSError:
        return None
    finally:
        os.close(fd)


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


def _differing(
    workspace: Path, stored: dict[str, StoredFile], record: dict[str, Synced] | None, run_id: str
) -> tuple[list[str], dict[str, Synced]]:
    """Stored files to write here: those ``workspace`` lacks, and those it holds
    unchanged since last synced while the store's differ (one changed here since is the
    newer: kept; with no record, every differing one). Also the files that agree with
    the store, as they are here."""
    wanted: list[str] = []
    agreeing: dict[str, Synced] = {}
    for path, file in stored.items():
        target = _inside(workspace, path)
        if target is None:
            continue
        try:
            info = target.lstat()
        except FileNotFoundError:
            wanted.append(path)
            continue
        except OSError as exc:  # a file in the way of its folder, say
            _not_restored(path, run_id, exc.strerror or type(exc).__name__)
            continue
        if not stat.S_ISREG(info.st_mode):
            _not_restored(path, run_id, "something else than a file is there")
            continue
        here = (info.st_size, info.st_mtime_ns)
        if here == (file.size, file.mtime_ns):
            agreeing[path] = (*here, file.sha256)
            continue
        read = _read(workspace, path)
        if read is not None and hashlib.sha256(read[0]).hexdigest() == file.sha256:
            agreeing[path] = (*read[1], file.sha256)
        elif record is None or (path in record and record[path][:2] == here):
            wanted.append(path)  # unchanged here since last synced: the store's is newer
    return wanted, agreeing


def _write_all(
    workspace: Path, files: list[tuple[StoredFile, bytes]], run_id: str
) -> list[StoredFile]:
    """Write each file in place (through a temporary file), with its stored mtime; the
    files written (one that cannot be gets a warning and is left out)."""
    written = []
    for file, content in files:
        target = _inside(workspace, file.path)
        if target is None:
            continue
        temporary = target.with_name(f".mg-{secrets.token_hex(4)}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(content)
            os.utime(temporary, ns=(file.mtime_ns, file.mtime_ns))
            os.replace(temporary, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            _not_restored(file.path, run_id, exc.strerror or type(exc).__name__)
            continue
        written.append(file)
    return written


def _not_restored(path: str, run_id: str, why: str) -> None:
    log.warning(
        "workspace file %s of run %s not restored here (%s): the run goes on without it",
        path,
        run_id,
        why,
    )


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"
