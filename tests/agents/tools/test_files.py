"""The files tool set: confined to the run's workspace."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.tools import BaseTool, ToolException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from support.http_server import HttpServer

from mirograph.agents.tools.base import ToolContext
from mirograph.agents.tools.files import SERVER, make_tools


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "workspace"
    ws.mkdir()
    return ws


@pytest.fixture
def tools(workspace: Path) -> dict[str, BaseTool]:
    return {t.name: t for t in make_tools(ToolContext(run_id="r1", workspace=workspace))}


def test_tool_names_and_server(tools: dict[str, BaseTool]) -> None:
    assert sorted(tools) == ["download_file", "list_files", "read_file", "write_file"]
    for tool in tools.values():
        assert tool.metadata is not None
        assert tool.metadata["mcp_server"] == "tool-files"
    assert SERVER == "tool-files"


async def test_write_read_list_round_trip(tools: dict[str, BaseTool], workspace: Path) -> None:
    reply = await tools["write_file"].ainvoke({"path": "notes/a.txt", "content": "héllo\nworld"})
    assert "11" in reply
    assert "notes/a.txt" in reply
    assert (workspace / "notes" / "a.txt").read_text(encoding="utf-8") == "héllo\nworld"

    assert await tools["read_file"].ainvoke({"path": "notes/a.txt"}) == "héllo\nworld"
    assert await tools["read_file"].ainvoke({"path": "notes/a.txt", "offset": 6}) == "world"
    assert (
        await tools["read_file"].ainvoke({"path": "notes/a.txt", "offset": 1, "max_chars": 3})
        == "éll"
    )

    await tools["write_file"].ainvoke({"path": "b.txt", "content": "xyz"})
    listing = await tools["list_files"].ainvoke({})
    size_a = len("héllo\nworld".encode())
    assert listing.splitlines() == ["b.txt\t3", f"notes/a.txt\t{size_a}"]
    assert await tools["list_files"].ainvoke({"path": "notes"}) == f"notes/a.txt\t{size_a}"


async def test_write_replaces_existing_file(tools: dict[str, BaseTool], workspace: Path) -> None:
    await tools["write_file"].ainvoke({"path": "a.txt", "content": "long original text"})
    await tools["write_file"].ainvoke({"path": "a.txt", "content": "new"})
    assert await tools["read_file"].ainvoke({"path": "a.txt"}) == "new"


async def test_empty_workspace_listing(tools: dict[str, BaseTool]) -> None:
    assert await tools["list_files"].ainvoke({}) == "(no files)"


async def test_dot_dot_in_the_middle_that_stays_inside_is_allowed(
    tools: dict[str, BaseTool],
) -> None:
    await tools["write_file"].ainvoke({"path": "sub/../inside.txt", "content": "ok"})
    assert await tools["read_file"].ainvoke({"path": "inside.txt"}) == "ok"


@pytest.mark.parametrize("name", ["read_file", "write_file", "list_files"])
async def test_dot_dot_traversal_rejected(
    tools: dict[str, BaseTool], workspace: Path, name: str
) -> None:
    (workspace.parent / "secret.txt").write_text("secret")
    args: dict = {"path": "../secret.txt"}
    if name == "write_file":
        args["content"] = "overwritten"
    with pytest.raises(ToolException, match="leaves the workspace"):
        await tools[name].ainvoke(args)
    assert (workspace.parent / "secret.txt").read_text() == "secret"


async def test_deep_traversal_rejected(tools: dict[str, BaseTool]) -> None:
    with pytest.raises(ToolException, match="leaves the workspace"):
        await tools["write_file"].ainvoke({"path": "a/../../../x.txt", "content": "x"})


@pytest.mark.parametrize("name", ["read_file", "write_file", "list_files"])
async def test_absolute_path_rejected(
    tools: dict[str, BaseTool], workspace: Path, name: str
) -> None:
    target = workspace / "a.txt"  # even absolute paths inside the workspace
    target.write_text("x")
    args: dict = {"path": str(target)}
    if name == "write_file":
        args["content"] = "y"
    with pytest.raises(ToolException, match=r"absolute path .* is not allowed"):
        await tools[name].ainvoke(args)
    assert target.read_text() == "x"


async def test_symlink_pointing_outside_rejected(
    tools: dict[str, BaseTool], workspace: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    os.symlink(outside, workspace / "link")
    os.symlink(outside / "secret.txt", workspace / "file-link")

    with pytest.raises(ToolException, match="leaves the workspace"):
        await tools["read_file"].ainvoke({"path": "link/secret.txt"})
    with pytest.raises(ToolException, match="leaves the workspace"):
        await tools["read_file"].ainvoke({"path": "file-link"})
    with pytest.raises(ToolException, match="leaves the workspace"):
        await tools["write_file"].ainvoke({"path": "link/new.txt", "content": "x"})
    # Writing to a link's name replaces the link itself; the target is untouched.
    await tools["write_file"].ainvoke({"path": "file-link", "content": "x"})
    assert not (workspace / "file-link").is_symlink()
    assert (workspace / "file-link").read_text() == "x"
    with pytest.raises(ToolException, match="leaves the workspace"):
        await tools["list_files"].ainvoke({"path": "link"})
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "secret"


async def test_symlink_inside_workspace_is_allowed(
    tools: dict[str, BaseTool], workspace: Path
) -> None:
    (workspace / "real.txt").write_text("content")
    os.symlink(workspace / "real.txt", workspace / "alias.txt")
    assert await tools["read_file"].ainvoke({"path": "alias.txt"}) == "content"


async def test_read_missing_file(tools: dict[str, BaseTool]) -> None:
    with pytest.raises(ToolException, match=r"no file 'missing\.txt' in the workspace"):
        await tools["read_file"].ainvoke({"path": "missing.txt"})


async def test_read_a_folder_is_not_a_file(tools: dict[str, BaseTool], workspace: Path) -> None:
    (workspace / "folder").mkdir()
    with pytest.raises(ToolException, match="no file 'folder'"):
        await tools["read_file"].ainvoke({"path": "folder"})


async def test_list_missing_folder(tools: dict[str, BaseTool]) -> None:
    with pytest.raises(ToolException, match="no folder 'nowhere'"):
        await tools["list_files"].ainvoke({"path": "nowhere"})


@pytest.mark.parametrize("path", ["", "   "])
async def test_empty_path_rejected(tools: dict[str, BaseTool], path: str) -> None:
    with pytest.raises(ToolException, match="path is empty"):
        await tools["read_file"].ainvoke({"path": path})


@pytest.fixture(scope="module")
def site() -> Iterator[HttpServer]:
    blob = bytes(range(256)) * 64

    async def data(request: Request) -> Response:
        return Response(blob, media_type="application/octet-stream")

    async def missing(request: Request) -> Response:
        return Response("gone", status_code=404)

    with HttpServer([Route("/data.bin", data), Route("/missing", missing)]) as server:
        yield server


async def test_download_saves_the_bytes_inside_the_workspace(
    tools: dict[str, BaseTool], workspace: Path, site: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIROGRAPH_ALLOW_PRIVATE_URLS", "1")  # the site is on 127.0.0.1
    url = site.url("/data.bin")
    reply = await tools["download_file"].ainvoke({"url": url, "path": "raw/data.bin"})
    assert reply == f"saved 16384 bytes (application/octet-stream) from {url} to raw/data.bin"
    assert (workspace / "raw" / "data.bin").read_bytes() == bytes(range(256)) * 64
    with pytest.raises(ToolException, match="leaves the workspace"):
        await tools["download_file"].ainvoke({"url": url, "path": "../outside.bin"})
    with pytest.raises(ToolException, match="returned HTTP 404"):
        await tools["download_file"].ainvoke({"url": site.url("/missing"), "path": "m"})
    assert not (workspace / "m").exists()


async def test_download_refuses_local_addresses_by_default(
    tools: dict[str, BaseTool], site: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MIROGRAPH_ALLOW_PRIVATE_URLS", raising=False)
    with pytest.raises(ToolException, match="local or private address"):
        await tools["download_file"].ainvoke({"url": site.url("/data.bin"), "path": "d.bin"})


async def test_links_swapped_in_while_the_tools_work_never_lead_outside(
    tools: dict[str, BaseTool], workspace: Path, tmp_path: Path
) -> None:
    """Code in the sandbox can swap a folder for a link at any moment: the check is made
    on what was actually opened, so every read or write stays inside or fails."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (workspace / "d").mkdir()
    (workspace / "d" / "secret.txt").write_text("inside")
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            try:  # the tools may create "d" in a gap; then just try again
                os.rename(workspace / "d", workspace / "d-real")
                os.symlink(outside, workspace / "d")
                os.unlink(workspace / "d")
                os.rename(workspace / "d-real", workspace / "d")
            except OSError:
                continue

    swapper = threading.Thread(target=swap)
    swapper.start()
    read: set[str] = set()
    try:
        for i in range(200):
            try:
                read.add(await tools["read_file"].ainvoke({"path": "d/secret.txt"}))
                await tools["write_file"].ainvoke({"path": f"d/w{i}.txt", "content": "w"})
            except Exception:  # a failed call is fine (the runner reports it); an escape is not
                continue
    finally:
        stop.set()
        swapper.join()
    assert read <= {"inside"}
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


async def test_a_fifo_is_refused_without_blocking(
    tools: dict[str, BaseTool], workspace: Path, tmp_path: Path
) -> None:
    """Opening a FIFO for reading waits for a writer: it used to hang the process."""
    os.mkfifo(workspace / "pipe")
    with pytest.raises(ToolException, match=r"'pipe' is a named pipe \(FIFO\), not a regular"):
        await tools["read_file"].ainvoke({"path": "pipe"})
    os.mkfifo(tmp_path / "outside-pipe")
    os.symlink(tmp_path / "outside-pipe", workspace / "to-pipe")
    with pytest.raises(ToolException, match="leaves the workspace"):
        await tools["read_file"].ainvoke({"path": "to-pipe"})


def test_a_fifo_is_refused_before_it_is_opened(tools: dict[str, BaseTool], workspace: Path) -> None:
    """Opening it, even to refuse it, woke a writer blocked opening it for writing."""
    fifo = workspace / "pipe"
    os.mkfifo(fifo)
    opened: list[int] = []
    writer = threading.Thread(target=lambda: opened.append(os.open(fifo, os.O_WRONLY)))
    writer.start()
    try:
        wchan = Path(f"/proc/self/task/{writer.native_id}/wchan")  # gone once it returns
        deadline = time.monotonic() + 30
        while _waits_in(wchan) != "wait_for_partner":  # blocked in open(), waiting for a reader
            assert time.monotonic() < deadline and writer.is_alive()
            time.sleep(0.001)  # polled, with a deadline
        with pytest.raises(ToolException, match=r"'pipe' is a named pipe \(FIFO\)"):
            asyncio.run(tools["read_file"].ainvoke({"path": "pipe"}))
        # A woken writer is runnable at once, and the kernel then reports no wait channel.
        assert _waits_in(wchan) == "wait_for_partner" and not opened
    finally:
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # lets the writer go
        writer.join()
        os.close(reader)
        for fd in opened:
            os.close(fd)


def _waits_in(wchan: Path) -> str:
    try:
        return wchan.read_text()
    except FileNotFoundError:  # the thread has ended
        return ""


async def test_a_socket_is_refused(tools: dict[str, BaseTool], workspace: Path) -> None:
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(workspace / "sock"))
        with pytest.raises(ToolException, match=r"cannot read 'sock'|'sock' is a socket"):
            await tools["read_file"].ainvoke({"path": "sock"})


@pytest.mark.parametrize("target", ["/dev/zero", "/proc/self/environ", "/dev/stdin"])
async def test_links_to_devices_and_proc_are_refused(
    tools: dict[str, BaseTool], workspace: Path, target: str
) -> None:
    os.symlink(target, workspace / "special")
    with pytest.raises(ToolException, match="leaves the workspace"):
        await tools["read_file"].ainvoke({"path": "special"})


async def test_a_huge_file_is_not_read_whole(tools: dict[str, BaseTool], workspace: Path) -> None:
    with (workspace / "huge.bin").open("wb") as out:  # 8 GB, sparse: no disk used
        out.truncate(8 * 2**30)
        out.seek(2**20)
        out.write(b"marker")
    text = await tools["read_file"].ainvoke({"path": "huge.bin", "offset": 2**20, "max_chars": 6})
    assert text == "marker"
    assert len(await tools["read_file"].ainvoke({"path": "huge.bin"})) == 100_000
    with pytest.raises(ToolException, match="reads the first 32 MB of a file and offset"):
        await tools["read_file"].ainvoke({"path": "huge.bin", "offset": 2**32})


async def test_write_creates_no_folder_outside_through_a_link(
    tools: dict[str, BaseTool], workspace: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, workspace / "link")
    with pytest.raises(ToolException, match="leaves the workspace"):
        await tools["write_file"].ainvoke({"path": "link/a/b/new.txt", "content": "x"})
    assert list(outside.iterdir()) == []  # checked before anything was created


async def test_write_through_a_file_in_the_path_is_an_error(
    tools: dict[str, BaseTool], workspace: Path
) -> None:
    (workspace / "plain.txt").write_text("x")
    with pytest.raises(ToolException, match=r"cannot write 'plain\.txt/new\.txt': Not a directory"):
        await tools["write_file"].ainvoke({"path": "plain.txt/new.txt", "content": "y"})
    (workspace / "folder").mkdir()
    with pytest.raises(ToolException, match="cannot write 'folder': Is a directory"):
        await tools["write_file"].ainvoke({"path": "folder", "content": "y"})


async def test_a_listing_stops_at_its_cap(
    tools: dict[str, BaseTool], workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mirograph.agents.tools.files.MAX_LISTED", 3)
    for n in range(5):
        (workspace / f"{n}.txt").write_text("x")
    lines = (await tools["list_files"].ainvoke({})).splitlines()
    assert len(lines) == 4
    assert lines[-1] == "(listing stopped at 3 files)"
