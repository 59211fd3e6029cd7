"""The ``files`` tool set: read, write, list and download files inside the run's workspace.

Every path is resolved (symlinks included) and must stay inside the
workspace; anything else is a clear tool error the model can act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import posixpath
import stat
import uuid
from collections.abc import Callable
from pathlib import Path

from langchain_core.tools import BaseTool, StructuredTool, ToolException

from mirograph.agents.tools.base import ToolContext, on_server

SERVER = "tool-files"
MAX_READ_CHARS = 100_000
#: Bytes of a file read_file reads at most, however far in the offset points.
MAX_SCAN_BYTES = 32 * 2**20
#: Files list_files shows at most.
MAX_LISTED = 10_000
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


def _locate(root: str, relative: str, path: str, *, dir_fd: int | None = None) -> int:
    """An ``O_PATH`` descriptor of ``relative`` (links followed), kept only if inside ``root``.

    ``O_PATH`` finds the file without opening it: a FIFO cannot block, a
    device sees no open, and nothing outside the workspace is touched before
    the check, which is made on the descriptor so that a link swapped in
    after the name was checked cannot lead the host outside.
    """
    fd = os.open(
        relative if dir_fd is not None else os.path.join(root, relative), os.O_PATH, dir_fd=dir_fd
    )
    if not _inside(fd, root):
        os.close(fd)
        raise ToolException(f"path {path!r} leaves the workspace; stay inside it")
    return fd


def _open_inside(
    workspace: Path, relative: str, flags: int, path: str, check: Callable[[int], None]
) -> int:
    """Open ``relative`` with ``flags`` once it is found inside the workspace and ``check``ed.

    ``check`` gets the file's mode from ``fstat`` on the ``O_PATH`` descriptor
    and raises to refuse it before it is opened: opening a FIFO wakes a writer
    blocked opening it, opening a device runs its driver. The file is reopened
    through the descriptor, so it is the file checked.
    """
    located = _locate(os.path.realpath(workspace), relative, path)
    try:
        check(os.fstat(located).st_mode)
        return os.open(f"/proc/self/fd/{located}", flags | os.O_NONBLOCK | os.O_NOCTTY)
    finally:
        os.close(located)


def _folder_inside(root: str, folder: str, path: str) -> int:
    """Descriptor of ``folder``, made a component at a time, each checked inside first.

    ``os.makedirs`` would follow a link in the path and create folders
    wherever it leads before any check could refuse the write.
    """
    current = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        for part in [p for p in folder.split("/") if p not in ("", ".")]:
            try:
                child = _locate(root, part, path, dir_fd=current)
            except FileNotFoundError:
                os.mkdir(part, 0o755, dir_fd=current)  # never follows a link at `part`
                child = _locate(root, part, path, dir_fd=current)
            os.close(current)
            current = child
            if not stat.S_ISDIR(os.fstat(current).st_mode):
                raise NotADirectoryError(errno.ENOTDIR, "Not a directory", part)
    except BaseException:
        os.close(current)
        raise
    return current


def _write_inside(workspace: Path, relative: str, data: bytes, path: str) -> str:
    """Write ``data`` to ``relative`` atomically, never through a link that leads outside."""
    folder, name = posixpath.split(relative)
    if name in ("", ".", ".."):
        raise ToolException(f"path {path!r} names a folder, not a file")
    root = os.path.realpath(workspace)
    try:
        dir_fd = _folder_inside(root, folder, path)
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
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=dir_fd)
        raise ToolException(f"cannot write {path!r}: {exc.strerror or exc}") from None
    finally:
        os.close(dir_fd)
    return os.path.relpath(os.path.join(where, name), root)


def make_tools(ctx: ToolContext) -> list[BaseTool]:
    workspace = ctx.workspace

    async def read_file(path: str, offset: int = 0, max_chars: int = MAX_READ_CHARS) -> str:
        """Read a text file from the workspace, a part at a time.

        Args:
            path: The file's path in the workspace (relative).
            offset: Character position to start reading at (0 for the beginning).
            max_chars: How many characters to read at most (at most 100000).

        Returns:
            The file's text from offset, at most max_chars characters (fewer at the
            file's end). A missing file gives an error message.
        """
        relative = confine(workspace, path)
        if offset < 0:
            raise ToolException(f"offset {offset} is negative; give a character position from 0")
        limit = max(1, min(max_chars, MAX_READ_CHARS))
        text, cut = await asyncio.to_thread(_read_text, workspace, relative, path, offset + limit)
        if cut and offset >= len(text):
            raise ToolException(
                f"read_file reads the first {MAX_SCAN_BYTES // 2**20} MB of a file and offset"
                f" {offset} is past them; process a file this big with code instead"
            )
        return text[offset : offset + limit]

    async def write_file(path: str, content: str) -> str:
        """Write text to a file in the workspace, creating its folders; replaces the file.

        Args:
            path: The file's path in the workspace (relative).
            content: The text to write (UTF-8).

        Returns:
            A line saying how many characters were written, and where.
        """
        relative = confine(workspace, path)
        where = await asyncio.to_thread(
            _write_inside, workspace, relative, content.encode("utf-8"), path
        )
        return f"wrote {len(content)} characters to {where}"

    async def list_files(path: str = ".") -> str:
        """List the files under a folder of the workspace, in all its subfolders.

        Args:
            path: The folder's path in the workspace ("." for the whole workspace).

        Returns:
            One line per file: its path in the workspace, a tab, its size in bytes;
            "(no files)" when there are none. A missing folder gives an error message.
        """
        relative = confine(workspace, path)
        lines = await asyncio.to_thread(_list, workspace, relative, path)
        return "\n".join(lines) if lines else "(no files)"

    async def download_file(url: str, path: str) -> str:
        """Download a file from the web into the workspace, its bytes as they are.

        Args:
            url: The http(s) URL of the file.
            path: Where to save it in the workspace (relative); an existing file is replaced.

        Returns:
            A line with the bytes saved, their content type, the URL and the path. A
            download that fails, or is larger than 50 MB, saves nothing and gives an
            error message.
        """
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
        StructuredTool.from_function(coroutine=fn, handle_tool_error=False, parse_docstring=True)
        for fn in (read_file, write_file, list_files, download_file)
    ]
    return [on_server(tool, SERVER) for tool in tools]


def _read_text(workspace: Path, relative: str, path: str, chars: int) -> tuple[str, bool]:
    """The first ``chars`` characters of a regular file, and whether ``MAX_SCAN_BYTES`` cut it."""
    missing = f"no file {path!r} in the workspace; list_files shows what exists"

    def regular(mode: int) -> None:
        if stat.S_ISDIR(mode):
            raise ToolException(missing)
        if not stat.S_ISREG(mode):
            kind = _KINDS.get(stat.S_IFMT(mode), "special file")
            raise ToolException(f"{path!r} is a {kind}, not a regular file; only files are read")

    try:
        fd = _open_inside(workspace, relative, os.O_RDONLY, path, regular)
    except (FileNotFoundError, NotADirectoryError):
        raise ToolException(missing) from None
    except OSError as exc:  # refused by the system: not a file to read
        raise ToolException(f"cannot read {path!r}: {exc.strerror or exc}") from None
    # UTF-8 takes at most 4 bytes a character: this many bytes hold ``chars`` of them.
    wanted = 4 * chars + 4
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(min(wanted, MAX_SCAN_BYTES))
    cut = wanted > MAX_SCAN_BYTES and len(data) == MAX_SCAN_BYTES
    return data.decode("utf-8", errors="replace"), cut


def _folder(mode: int) -> None:
    if not stat.S_ISDIR(mode):
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory")


_KINDS = {
    stat.S_IFIFO: "named pipe (FIFO)",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
}


def _list(workspace: Path, relative: str, path: str) -> list[str]:
    """Regular files under the folder (links are not followed), paths from the workspace.

    At most ``MAX_LISTED`` files are listed: code in the sandbox can make
    millions, or folders nested past the recursion of ``os.fwalk``.
    """
    try:
        dir_fd = _open_inside(workspace, relative, os.O_RDONLY | os.O_DIRECTORY, path, _folder)
    except (FileNotFoundError, NotADirectoryError):
        raise ToolException(f"no folder {path!r} in the workspace") from None
    root = os.path.realpath(workspace)
    lines: list[str] = []
    try:
        base = os.path.relpath(os.readlink(f"/proc/self/fd/{dir_fd}"), root)
        for folder, _, names, fd in os.fwalk(".", dir_fd=dir_fd):
            for name in names:
                with contextlib.suppress(FileNotFoundError):  # removed while listed
                    info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    if stat.S_ISREG(info.st_mode):
                        shown = posixpath.normpath(posixpath.join(base, folder, name))
                        lines.append(f"{shown}\t{info.st_size}")
            if len(lines) >= MAX_LISTED:
                return [*sorted(lines[:MAX_LISTED]), f"(listing stopped at {MAX_LISTED} files)"]
    except RecursionError:
        raise ToolException(f"folders under {path!r} nest too deep to list") from None
    finally:
        os.close(dir_fd)
    return sorted(lines)
