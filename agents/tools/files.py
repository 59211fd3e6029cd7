"""The ``files`` tool set: read, write, list and download files inside the run's workspace.

Every path is resolved (symlinks included) and must stay inside the
workspace; anything else is a clear tool error the model can act on.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import stat
import uuid
from pathlib import Path

from langchain_core.tools import BaseTool, StructuredTool, ToolException

from mirograph.agents.tools.base import ToolContext, on_server

SERVER = "tool-files"
MAX_READ_CHARS = 100_000
MAX_DOWNLOAD_BYTES = 50 * 2**20


def confine(workspace: Path, path: str) -> str:
    """``path`` as a normalised relative path inside ``workspace``, or a ``ToolException``.

    Only the name is checked here; what it leads to is checked on the opened
    file itself (``_open_inside``), since links may change in between.
    """
    if not path or not path.strip():
        raise ToolException("path is empty; give a path relative to the workspace")
    if Path(path).is_absolute():
        raise ToolException(
            f"absolute path {path!r} is not allowed; give a path relative to the workspace"
        )
    relative = posixpath.normpath(path.strip())
    if relative == ".." or relative.startswith("../"):
        raise ToolException(f"path {path!r} leaves the workspace; stay inside it")
    return relative


def _inside(fd: int, root: str) -> bool:
    """Whether the open file ``fd`` really is inside ``root`` (after every link)."""
    real = os.readlink(f"/proc/self/fd/{fd}")
    return real == root or real.startswith(root + os.sep)


def _open_inside(workspace: Path, relative: str, flags: int, path: str) -> int:
    """Open ``relative`` (links followed) and keep it only if it is inside the workspace.

    The check is made on the opened descriptor, so a link swapped in after the
    name was checked cannot lead the host outside.
    """
    root = os.path.realpath(workspace)
    fd = os.open(os.path.join(root, relative), flags)
    if not _inside(fd, root):
        os.close(fd)
        raise ToolException(f"path {path!r} leaves the workspace; stay inside it")
    return fd


def _write_inside(workspace: Path, relative: str, data: bytes, path: str) -> str:
    """Write ``data`` to ``relative`` atomically, never through a link that leads outside."""
    folder, name = posixpath.split(relative)
    if name in ("", ".", ".."):
        raise ToolException(f"path {path!r} names a folder, not a file")
    root = os.path.realpath(workspace)
    try:
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        dir_fd = _open_inside(workspace, folder or ".", os.O_RDONLY | os.O_DIRECTORY, path)
    except ToolException:
        raise
    except OSError as exc:
        raise ToolException(f"cannot write {path!r}: {exc.strerror or exc}") from None
    temp = f".{name}.{uuid.uuid4().hex}.tmp"
    try:
        fd = os.open(
            temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd
        )
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        # Replaces whatever the name is (a file or a link) without following it.
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        where = os.readlink(f"/proc/self/fd/{dir_fd}")
    finally:
        os.close(dir_fd)
    return os.path.relpath(os.path.join(where, name), root)


def make_tools(ctx: ToolContext) -> list[BaseTool]:
    workspace = ctx.workspace

    async def read_file(path: str, offset: int = 0, max_chars: int = MAX_READ_CHARS) -> str:
        """Read a text file from the workspace, from character `offset`, at most `max_chars`."""
        relative = confine(workspace, path)
        text = await asyncio.to_thread(_read_text, workspace, relative, path)
        return text[offset : offset + max(1, min(max_chars, MAX_READ_CHARS))]

    async def write_file(path: str, content: str) -> str:
        """Write `content` to a file in the workspace, creating folders; replaces the file."""
        relative = confine(workspace, path)
        where = await asyncio.to_thread(
            _write_inside, workspace, relative, content.encode("utf-8"), path
        )
        return f"wrote {len(content)} characters to {where}"

    async def list_files(path: str = ".") -> str:
        """List files under a folder of the workspace (recursive), with their sizes in bytes."""
        relative = confine(workspace, path)
        lines = await asyncio.to_thread(_list, workspace, relative, path)
        return "\n".join(lines) if lines else "(no files)"

    async def download_file(url: str, path: str) -> str:
        """Download the file at an http(s) `url` into the workspace at `path` (bytes as is)."""
        from mirograph.agents.tools.scrape import FetchLimits, fetch  # httpx only when used

        relative = confine(workspace, path)
        limits = FetchLimits(max_bytes=MAX_DOWNLOAD_BYTES)
        page = await fetch(url, limits)
        if not page.complete:
            mb = MAX_DOWNLOAD_BYTES // 2**20
            raise ToolException(f"GET {url} is larger than {mb} MB; nothing was saved")
        where = await asyncio.to_thread(_write_inside, workspace, relative, page.body, path)
        kind = page.content_type or "unknown type"
        return f"saved {len(page.body)} bytes ({kind}) from {url} to {where}"

    tools = [
        StructuredTool.from_function(coroutine=fn, handle_tool_error=False)
        for fn in (read_file, write_file, list_files, download_file)
    ]
    return [on_server(tool, SERVER) for tool in tools]


def _read_text(workspace: Path, relative: str, path: str) -> str:
    missing = f"no file {path!r} in the workspace; list_files shows what exists"
    try:
        fd = _open_inside(workspace, relative, os.O_RDONLY, path)
    except (FileNotFoundError, NotADirectoryError):
        raise ToolException(missing) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ToolException(missing)
    with os.fdopen(fd, "rb") as handle:
        return handle.read().decode("utf-8", errors="replace")


def _list(workspace: Path, relative: str, path: str) -> list[str]:
    """Regular files under the folder (links are not followed), paths from the workspace."""
    try:
        dir_fd = _open_inside(workspace, relative, os.O_RDONLY | os.O_DIRECTORY, path)
    except (FileNotFoundError, NotADirectoryError):
        raise ToolException(f"no folder {path!r} in the workspace") from None
    root = os.path.realpath(workspace)
    try:
        base = os.path.relpath(os.readlink(f"/proc/self/fd/{dir_fd}"), root)
        lines = []
        for folder, _, names, fd in os.fwalk(".", dir_fd=dir_fd):
            for name in names:
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISREG(info.st_mode):
                    shown = posixpath.normpath(posixpath.join(base, folder, name))
                    lines.append(f"{shown}\t{info.st_size}")
    finally:
        os.close(dir_fd)
    return sorted(lines)
