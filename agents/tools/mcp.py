"""The ``mcp`` tool set: the tools of one MCP server, shown under its own server name.

A flow lists one entry per server::

    tools:
      - mcp: {name: weather, command: [python, -m, my_server]}   # stdio
      - mcp: {name: docs, url: "http://host:8000/mcp"}           # streamable HTTP

How it works:

- **Build time.** The tool schemas go into the system prompt, so they are
  needed when the graph is built. ``make_tools`` is plain sync code that may be
  called from inside a running event loop (the runner builds graphs in async
  code), so it lists the server's tools on a short-lived worker thread with
  its own event loop: start the server, ``initialize``, ``tools/list``, stop it.
  The listing is cached for the whole process per server (command/url, env,
  cwd): a build has no run yet to keep it in, and later builds of the same
  flow (every run's) then start nothing.
- **Run time.** The first call in a run opens ONE session per server per run
  (shared by every agent of the run that lists the same server), in the run's
  event loop, held open by a background task of its own (MCP transports are
  anyio task groups, which must be entered and left by the same task); every
  later call reuses it, concurrently if need be. The session is kept in the
  run's resources (``ctx.resources``), which stop it when the run ends (a
  stdio server gets its stdin closed, then SIGTERM/SIGKILL).
- **A dead session** (the server crashed or closed the connection) is
  reopened once and the call retried; otherwise the call fails with a
  one-line ``ToolException``, as do MCP errors and results flagged ``isError``.
- **Environment.** A stdio server does NOT inherit the host environment, so
  API keys held by the runner (``TAVILY_API_KEY`` ...) stay out of third-party
  servers: it gets ``PATH``, ``HOME`` and ``LANG`` (plus the few the MCP SDK
  always passes: ``LOGNAME``, ``SHELL``, ``TERM``, ``USER``) and what the
  flow's ``env`` option gives it (``env: {API_KEY: "${MY_KEY}"}``). Its stderr
  goes to a temporary file, quoted in error messages when it fails to start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import tempfile
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from mcp import ClientSession, McpError, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from mirograph.agents.fields import DAY_S, Float
from mirograph.agents.tools.base import RunResources, ToolContext, on_server
from mirograph.errors import ToolRefError
from mirograph.text import clip

#: Host variables a stdio server gets (the MCP SDK adds LOGNAME, SHELL, TERM, USER).
INHERITED_ENV = ("PATH", "HOME", "LANG")
#: How long a stopping session may take before its task is cancelled.
CLOSE_TIMEOUT_S = 10.0
#: Characters of a server's error text kept in a one-line message.
MAX_ERROR_CHARS = 500

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The server name the model sees (``## Server name: <name>``).
    name: str
    #: A stdio server: the command and its arguments.
    command: list[str] | None = None
    #: Extra environment of a stdio server (it inherits only PATH, HOME, LANG).
    env: dict[str, str] = Field(default_factory=dict)
    #: Working directory of a stdio server (default: the runner's).
    cwd: str | None = None
    #: A streamable-HTTP server: its endpoint (``http://host:port/mcp``).
    url: str | None = Field(None, validate_default=True)
    #: Limit on starting the server and on each call, in seconds.
    timeout_s: Float = Field(60.0, gt=0, le=DAY_S)
    #: Only these of the server's tools (default: all).
    tools: list[str] | None = None

    @field_validator("name")
    @classmethod
    def _simple_name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a simple name: use letters, digits, '_', '-' or '.',"
                " starting with a letter (at most 64 characters)"
            )
        if value.startswith("agent-"):
            raise ValueError(f"{value!r}: names starting with 'agent-' are kept for sub-agents")
        return value

    @field_validator("command")
    @classmethod
    def _non_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or not value[0]):
            raise ValueError("command must name a program, e.g. [python, -m, my_server]")
        return value

    @field_validator("url")
    @classmethod
    def _one_transport(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Checked on ``url`` (validated even when absent) so the error names a field.
        if "command" not in info.data:
            return value  # command itself is invalid; that error is the one to show
        if (info.data["command"] is None) == (value is None):
            raise ValueError(
                "give exactly one of command (a stdio server) or url (a streamable-HTTP server)"
            )
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://; got {value!r}")
        if value is not None and (info.data.get("env") or info.data.get("cwd")):
            raise ValueError("env and cwd apply to a stdio server (command), not to a url")
        return value

    def where(self) -> str:
        """The server as error messages name it: its program, or its URL's host and path.
        Arguments and URL credentials are left out: they may hold a ``${SECRET}``."""
        if self.command:
            more = len(self.command) - 1
            args = f" with {more} argument{'s' if more != 1 else ''}" if more else ""
            return f"`{shlex.quote(self.command[0])}`{args}"
        parts = urlsplit(str(self.url))
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    def transport_key(self) -> str:
        """What identifies the server process or endpoint (not its name, tools or timeout)."""
        return json.dumps([self.command, self.url, self.env, self.cwd], sort_keys=True)


def make_tools(ctx: ToolContext) -> list[BaseTool]:
    options: Options = ctx.options
    listed = _listed_tools(options)
    if options.tools is not None:
        names = {t.name for t in listed}
        missing = [n for n in options.tools if n not in names]
        if missing:
            raise ToolRefError(
                f"mcp server {options.name!r} has no tool {missing[0]!r}"
                f" (it has: {', '.join(sorted(names)) or 'none'})"
            )
        listed = [t for t in listed if t.name in options.tools]
    server = _ServerInRun(ctx.resources, options)
    return [on_server(_as_tool(t, server), options.name) for t in listed]


# -- build time: list the tools on a worker thread ---------------------------------------

#: Tool listings by ``Options.transport_key()``, kept for the whole process: they
#: are needed at build time, before any run exists to hold them, and a flow built
#: again (each run builds its graph) should not start its servers again to list them.
_PROCESS_LISTINGS: dict[str, list[types.Tool]] = {}
_PROCESS_LISTINGS_LOCK = threading.Lock()


def _listed_tools(options: Options) -> list[types.Tool]:
    """The server's tools, listed once per process; a one-line ``ToolRefError`` (the flow's
    entry cannot be used here: exit 2) if they cannot be."""
    key = options.transport_key()
    with _PROCESS_LISTINGS_LOCK:
        cached = _PROCESS_LISTINGS.get(key)
    if cached is not None:
        return cached
    outcome: dict[str, Any] = {}

    def work() -> None:  # a thread of its own: the caller may be inside a running loop
        try:
            outcome["tools"] = asyncio.run(_list_tools(options))
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=work, name=f"mcp-list-{options.name}", daemon=True)
    worker.start()
    worker.join()
    if "error" in outcome:
        raise ToolRefError(_start_failure(options, outcome["error"])) from None
    with _PROCESS_LISTINGS_LOCK:
        _PROCESS_LISTINGS[key] = outcome["tools"]
    return outcome["tools"]


async def _list_tools(options: Options) -> list[types.Tool]:
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as errlog:
        try:
            async with asyncio.timeout(options.timeout_s), _open(options, errlog) as session:
                tools: list[types.Tool] = []
                cursor: str | None = None
                while True:
                    params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
                    page = await session.list_tools(params=params)
                    tools.extend(page.tools)
                    cursor = page.nextCursor
                    if not cursor:
                        return tools
        except BaseException as exc:
            raise _StartError(_reason(exc, options), _stderr_tail(errlog)) from None


class _StartError(Exception):
    def __init__(self, reason: str, stderr: str) -> None:
        super().__init__(f"{reason} (stderr: {stderr})" if stderr else reason)


def _start_failure(options: Options, exc: BaseException) -> str:
    verb = "could not start" if options.command else "could not connect to"
    return clip(f"mcp server {options.name!r}: {verb} {options.where()}: {exc}", MAX_ERROR_CHARS)


# -- run time: one session per server per run ----------------------------------------------


@contextlib.asynccontextmanager
async def _open(options: Options, errlog: IO[str]) -> AsyncIterator[ClientSession]:
    """An initialized session on the server (stdio: its process runs while this is open)."""
    read_timeout = timedelta(seconds=options.timeout_s)
    if options.command is not None:
        params = StdioServerParameters(
            command=options.command[0],
            args=options.command[1:],
            env=server_env(options),
            cwd=options.cwd,
        )
        transport: Any = stdio_client(params, errlog=errlog)
    else:
        transport = streamable_http_client(str(options.url))
    async with transport as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write, read_timeout_seconds=read_timeout) as session:
            await session.initialize()
            yield session


def server_env(options: Options) -> dict[str, str]:
    """The environment of a stdio server: PATH, HOME, LANG and its own ``env``."""
    inherited = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    return {**inherited, **options.env}


class _Dead(Exception):
    """The session ended under a call (the server exited or closed the connection)."""


class _OpenSession:
    """One open MCP session (one server process or HTTP session), held by a task of
    its own until ``close``; a run's session replaces it if it dies."""

    def __init__(self, options: Options) -> None:
        self.options = options
        # Closed by ``close`` (or by ``started`` when the server fails to start).
        self.errlog = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115
        self._ready: asyncio.Future[ClientSession] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._hold(), name=f"mcp-session-{options.name}")
        self.error: BaseException | None = None

    async def _hold(self) -> None:
        try:
            async with _open(self.options, self.errlog) as session:
                self._ready.set_result(session)
                await self._stop.wait()
        except BaseException as exc:  # kept for messages; the task itself ends quietly
            self.error = exc
            if not self._ready.done():
                self._ready.set_exception(ConnectionError(_reason(exc, self.options)))

    async def started(self) -> ClientSession:
        try:
            return await asyncio.wait_for(asyncio.shield(self._ready), self.options.timeout_s)
        except BaseException as exc:
            await self.stop()
            stderr = _stderr_tail(self.errlog)
            self.errlog.close()
            if isinstance(exc, asyncio.CancelledError):
                raise
            if isinstance(exc, TimeoutError):
                exc = TimeoutError(f"no answer within {self.options.timeout_s:g} s")
            raise _StartError(_reason(exc, self.options), stderr) from None

    @property
    def alive(self) -> bool:
        return self._ready.done() and not self._task.done()

    async def call(self, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        session = self._ready.result()
        request = asyncio.ensure_future(session.call_tool(tool, arguments))
        try:
            # The session's task ending (the transport failed) wakes this call too.
            await asyncio.wait({request, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not request.done():
                request.cancel()
        if not request.done():
            raise _Dead(self.why_dead())
        try:
            return request.result()
        except McpError as exc:
            if exc.error.code == types.CONNECTION_CLOSED:
                raise _Dead(self.why_dead()) from None
            if exc.error.code == 408:  # the SDK's read timeout
                raise ToolException(f"no answer within {self.options.timeout_s:g} s") from None
            raise ToolException(clip(exc.error.message, MAX_ERROR_CHARS)) from None
        except (OSError, EOFError) as exc:
            raise _Dead(_reason(exc, self.options)) from None
        except Exception as exc:
            if _is_transport_failure(exc):
                raise _Dead(_reason(exc, self.options)) from None
            raise

    def why_dead(self) -> str:
        stderr = _stderr_tail(self.errlog)
        reason = _reason(self.error, self.options) if self.error else "connection closed"
        return f"{reason} (stderr: {stderr})" if stderr else reason

    async def stop(self) -> None:
        """End the session (a stdio server: stdin closed, then SIGTERM, then SIGKILL)."""
        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), CLOSE_TIMEOUT_S)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def close(self) -> None:
        try:
            await self.stop()
        finally:
            self.errlog.close()


@dataclass
class _RunSession:
    """The run's session on one server: opened on first use, reopened once if it died,
    closed with the run (kept in the run's resources)."""

    options: Options
    current: _OpenSession | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def call(self, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        for attempt in (1, 2):
            session = await self._open_session()
            try:
                return await session.call(tool, arguments)
            except _Dead as exc:
                await self._drop(session)
                if attempt == 2:
                    raise ToolException(
                        f"mcp server {self.options.name!r} stopped: {exc}; retried once"
                    ) from None
        raise AssertionError("unreachable")

    async def _open_session(self) -> _OpenSession:
        async with self.lock:
            current = self.current
            if current is not None and current.alive:
                return current
            if current is not None:  # died while idle
                self.current = None
                await current.close()
            session = _OpenSession(self.options)
            try:
                await session.started()
            except _StartError as exc:
                raise ToolException(_start_failure(self.options, exc)) from None
            self.current = session
            return session

    async def _drop(self, session: _OpenSession) -> None:
        async with self.lock:
            if self.current is session:
                self.current = None
        await session.close()

    async def aclose(self) -> None:
        async with self.lock:
            session, self.current = self.current, None
        if session is not None:
            await session.close()


@dataclass(frozen=True)
class _ServerInRun:
    """What a tool holds: the server it calls and the resources of the run it belongs to
    (lives as long as the tools; the session itself is the run's)."""

    resources: RunResources
    options: Options

    def session(self) -> _RunSession:
        # Keyed by the server's name and transport: agents of a run that list the same
        # server share its session; another run has other resources, so another session.
        key = (__name__, self.options.name, self.options.transport_key())
        return self.resources.get_or_create(key, lambda: _RunSession(self.options))


def _as_tool(listed: types.Tool, server: _ServerInRun) -> BaseTool:
    name = listed.name

    async def call(**arguments: Any) -> str:
        result = await server.session().call(name, arguments)
        text = _result_text(result)
        if result.isError:
            raise ToolException(clip(text, MAX_ERROR_CHARS) or "the tool reported an error")
        return text

    return StructuredTool(
        name=name,
        # As the server lists them (the system prompt shows both untouched).
        description=listed.description or listed.title or name,
        args_schema=dict(listed.inputSchema or {"type": "object", "properties": {}}),
        coroutine=call,
        handle_tool_error=False,
    )


# -- helpers --------------------------------------------------------------------------------


def _result_text(result: types.CallToolResult) -> str:
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, types.TextContent):
            parts.append(block.text)
        elif isinstance(block, types.EmbeddedResource):
            resource = block.resource
            if isinstance(resource, types.TextResourceContents):
                parts.append(resource.text)
            else:
                parts.append(f"[resource {resource.uri} ({resource.mimeType or 'binary'})]")
        elif isinstance(block, types.ResourceLink):
            parts.append(f"[resource {block.uri}]")
        elif isinstance(block, types.ImageContent | types.AudioContent):
            parts.append(f"[{block.type} ({block.mimeType}) omitted]")
    if not parts and result.structuredContent is not None:
        parts.append(json.dumps(result.structuredContent, ensure_ascii=False))
    return "\n".join(parts)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _is_transport_failure(exc: BaseException) -> bool:
    import anyio  # the MCP SDK's transports raise anyio's stream errors

    failures = (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream)
    return any(isinstance(leaf, failures) for leaf in _leaves(exc))


def _reason(exc: BaseException, options: Options) -> str:
    """One line on why ``exc`` happened, without nested exception groups."""
    leaves = [e for e in _leaves(exc) if not isinstance(e, asyncio.CancelledError)] or [exc]
    leaf = leaves[0]
    if isinstance(leaf, McpError):
        return clip(leaf.error.message, MAX_ERROR_CHARS)
    if isinstance(leaf, TimeoutError) and not str(leaf):
        return f"no answer within {options.timeout_s:g} s"
    if isinstance(leaf, FileNotFoundError) and options.command:
        return f"no such program: {options.command[0]!r}"
    if isinstance(leaf, _StartError | ConnectionError) and str(leaf):
        return clip(str(leaf), MAX_ERROR_CHARS)
    text = clip(str(leaf), MAX_ERROR_CHARS)
    return f"{type(leaf).__name__}: {text}" if text else type(leaf).__name__


def _stderr_tail(errlog: IO[str]) -> str:
    """The server's last stderr line (read without moving the file's shared offset)."""
    try:
        fd = errlog.fileno()
        size = os.fstat(fd).st_size
        data = os.pread(fd, 2000, max(0, size - 2000)).decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""
    lines = [line.strip() for line in data.splitlines() if line.strip()]
    return clip(lines[-1], MAX_ERROR_CHARS) if lines else ""
