"""The ``files`` tool set: read, write, list and download files inside the run's workspace.

Every path is resolved (symlinks included) and must stay inside the
workspace; anything else is a clear tool error the model can act on.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from langchain_core.tools import BaseTool, StructuredTool, ToolException

from mirograph.agents.tools.base import ToolContext, on_server

SERVER = "tool-files"
MAX_READ_CHARS = 100_000
MAX_DOWNLOAD_BYTES = 50 * 2**20


def confine(workspace: Path, path: str) -> Path:
    """``path`` inside ``workspace``, or a ``ToolException`` saying why not."""
    if not path or not path.strip():
        raise ToolException("path is empty; give a path relative to the workspace")
    candidate = Path(path)
    if candidate.is_absolute():
        raise ToolException(
            f"absolute path {path!r} is not allowed; give a path relative to the workspace"
        )
    root = workspace.resolve()
    resolved = (root / candidate).resolve()
    if resolved != root and root not in resolved.parents:
        raise ToolException(f"path {path!r} leaves the workspace; stay inside it")
    return resolved


def make_tools(ctx: ToolContext) -> list[BaseTool]:
    workspace = ctx.workspace

    async def read_file(path: str, offset: int = 0, max_chars: int = MAX_READ_CHARS) -> str:
        """Read a text file from the workspace, from character `offset`, at most `max_chars`."""
        target = confine(workspace, path)
        if not target.is_file():
            raise ToolException(f"no file {path!r} in the workspace; list_files shows what exists")
        text = await asyncio.to_thread(target.read_text, encoding="utf-8", errors="replace")
        return text[offset : offset + max(1, min(max_chars, MAX_READ_CHARS))]

    async def write_file(path: str, content: str) -> str:
        """Write `content` to a file in the workspace, creating folders; replaces the file."""
        target = confine(workspace, path)
        await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(target.write_text, content, encoding="utf-8")
        return f"wrote {len(content)} characters to {target.relative_to(workspace.resolve())}"

    async def list_files(path: str = ".") -> str:
        """List files under a folder of the workspace (recursive), with their sizes in bytes."""
        folder = confine(workspace, path)
        if not folder.is_dir():
            raise ToolException(f"no folder {path!r} in the workspace")
        root = workspace.resolve()
        lines = [
            f"{item.relative_to(root)}\t{item.stat().st_size}"
            for item in sorted(folder.rglob("*"))
            if item.is_file()
        ]
        return "\n".join(lines) if lines else "(no files)"

    async def download_file(url: str, path: str) -> str:
        """Download the file at an http(s) `url` into the workspace at `path` (bytes as is)."""
        from mirograph.agents.tools.scrape import FetchLimits, fetch  # httpx only when used

        target = confine(workspace, path)
        limits = FetchLimits(max_bytes=MAX_DOWNLOAD_BYTES)
        page = await fetch(url, limits)
        if not page.complete:
            mb = MAX_DOWNLOAD_BYTES // 2**20
            raise ToolException(f"GET {url} is larger than {mb} MB; nothing was saved")
        await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(target.write_bytes, page.body)
        kind = page.content_type or "unknown type"
        where = target.relative_to(workspace.resolve())
        return f"saved {len(page.body)} bytes ({kind}) from {url} to {where}"

    tools = [
        StructuredTool.from_function(coroutine=fn, handle_tool_error=False)
        for fn in (read_file, write_file, list_files, download_file)
    ]
    return [on_server(tool, SERVER) for tool in tools]
