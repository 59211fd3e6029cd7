"""The engine's non-streamed model call as one lean HTTP/1.1 POST (issue 14).

With 64 investigations at once the process was CPU-bound, and a third of its
CPU went to the OpenAI SDK's request machinery per call: options copied and
validated, headers rebuilt, the URL parsed again, httpx's request and response
models, anyio streams, h11's state machine (~4 ms per call under a profiler).
``Poster`` sends the same request (the SDK's own headers, made once by the SDK
per client; the body serialised byte for byte as the SDK serialises it) over
keep-alive connections of its own and reads the reply. What goes wrong is
raised as the SDK would raise it: a status error is made by the SDK from the
response, a connection that fails is ``openai.APIConnectionError``, so errors
are classified (``model_failures``) exactly as before.

It is used only where the SDK's client would add nothing: it does no retries
of its own (``max_retries`` 0: the engine retries) and no proxy is set in the
environment (the SDK's client would honour one). A redirect is left to the SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import urllib.request
import zlib
from dataclasses import dataclass
from typing import Any

import openai
from openai._models import FinalRequestOptions

from mirograph.agents.mirothinker.clients import http_package

#: The longest status line plus headers a reply may have.
_HEAD_LIMIT = 1 << 20


def usable(max_retries: int) -> bool:
    """Whether ``Poster`` sends what the SDK's client would: no SDK retries, no proxy."""
    proxies = urllib.request.getproxies()
    return max_retries == 0 and not any(k in proxies for k in ("http", "https", "all"))


@dataclass
class _Reply:
    status: int
    headers: list[tuple[str, str]]
    content: bytes


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def reusable(self) -> bool:
        """Idle and still open: the server has neither closed it nor sent anything."""
        return not (self.writer.is_closing() or self.reader.at_eof() or len(self.reader._buffer))

    def close(self) -> None:
        with contextlib.suppress(Exception):  # its loop may be closed already
            self.writer.close()


class Poster:
    """POSTs JSON bodies to one path of a model server, as ``client`` would.

    Connections are made on demand and kept while the server keeps them alive;
    calls at once each get their own. ``aclose`` closes them.
    """

    def __init__(self, client: openai.AsyncOpenAI, path: str, tls: ssl.SSLContext) -> None:
        self._client, self._path = client, path
        options = FinalRequestOptions.construct(method="post", url=path, json_data=None)
        self._request = request = client._build_request(options)
        url = request.url
        self._host, self._tls = url.host, tls if url.scheme == "https" else None
        self._port = url.port or (443 if url.scheme == "https" else 80)
        lines = [f"POST {url.raw_path.decode('ascii')} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in request.headers.items() if k != "content-length"]
        self._head = ("\r\n".join(lines) + "\r\ncontent-length: ").encode("latin-1")
        self._idle: list[_Connection] = []

    async def post_json(self, body: dict[str, Any]) -> Any:
        """The reply's JSON (its text where it is not labelled JSON), as ``client.post(path,
        body=body, cast_to=object)`` returns it, and raising what that raises."""
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        reply = await self.post(payload.encode())
        if 300 <= reply.status < 400:  # the SDK's client follows redirects
            return await self._client.post(self._path, body=body, cast_to=object)
        if not 200 <= reply.status < 300:
            raise self._client._make_status_error_from_response(self._response(reply))
        content_type = next((v for k, v in reply.headers if k.lower() == "content-type"), "*")
        if content_type.split(";")[0].endswith("json"):
            return json.loads(reply.content)
        return self._response(reply).text

    async def post(self, payload: bytes) -> _Reply:
        """One exchange; a kept connection the server had closed is retried once on a new
        one. A failed connection is ``openai.APIConnectionError``."""
        message = self._head + b"%d\r\n\r\n" % len(payload) + payload
        while True:
            connection, reused = self._take()
            try:
                if connection is None:
                    connection = await self._connect()
                connection.writer.write(message)
                reply, keep = await _read_reply(connection.reader)
            except BaseException as exc:
                if connection is not None:
                    connection.close()
                if reused and _stale(exc):
                    continue
                if isinstance(exc, Exception):
                    raise openai.APIConnectionError(request=self._request) from exc
                raise
            if keep:
                self._idle.append(connection)
            else:
                connection.close()
            return reply

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def __del__(self) -> None:
        for connection in self._idle:
            connection.close()

    def _take(self) -> tuple[_Connection | None, bool]:
        while self._idle:
            connection = self._idle.pop()
            if connection.reusable():
                return connection, True
            connection.close()
        return None, False

    async def _connect(self) -> _Connection:
        server_hostname = self._host if self._tls is not None else None
        reader, writer = await asyncio.open_connection(
            self._host, self._port, ssl=self._tls, server_hostname=server_hostname,
            limit=_HEAD_LIMIT,
        )  # fmt: skip
        return _Connection(reader, writer)

    def _response(self, reply: _Reply) -> Any:
        """The reply as the SDK's HTTP package has it (for its error or its text)."""
        return http_package().Response(
            reply.status, headers=reply.headers, content=reply.content, request=self._request
        )


def _stale(exc: BaseException) -> bool:
    """The server had closed a kept connection before the request: nothing was answered."""
    if isinstance(exc, asyncio.IncompleteReadError):
        return not exc.partial
    return isinstance(exc, ConnectionResetError | BrokenPipeError)


class _ProtocolError(Exception):
    """A reply that is not HTTP/1.x as this client reads it."""


async def _read_reply(reader: asyncio.StreamReader) -> tuple[_Reply, bool]:
    """The next reply on ``reader`` (informational ones skipped), and whether the
    connection may carry another request."""
    while True:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status_line, *lines = head[:-4].split("\r\n")
        version, _, rest = status_line.partition(" ")
        code = rest[:3]
        if not (version.startswith("HTTP/1.") and code.isdigit()):
            raise _ProtocolError(f"bad status line {status_line[:80]!r}")
        status = int(code)
        if not (100 <= status < 200) or status == 101:
            break
    headers = []
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep:
            raise _ProtocolError(f"bad header line {line[:80]!r}")
        headers.append((name.strip(), value.strip()))
    fields = {name.lower(): value.lower() for name, value in headers}
    keep = version == "HTTP/1.1" and "close" not in fields.get("connection", "")
    if "chunked" in fields.get("transfer-encoding", ""):
        content = await _read_chunked(reader)
    elif "content-length" in fields:
        content = await reader.readexactly(int(fields["content-length"]))
    elif status in (204, 304):
        content = b""
    else:  # delimited by the end of the connection
        content, keep = await reader.read(), False
    encoding = fields.get("content-encoding", "identity")
    return _Reply(status, headers, _decoded(content, encoding)), keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        parts.append((await reader.readexactly(size + 2))[:-2])
    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
        pass
    return b"".join(parts)


def _decoded(content: bytes, encoding: str) -> bytes:
    """``content`` without the encodings the SDK's client asks for (gzip, deflate)."""
    for coding in reversed([c.strip() for c in encoding.split(",")]):
        if coding == "gzip":
            content = zlib.decompress(content, 16 + zlib.MAX_WBITS)
        elif coding == "deflate":
            try:
                content = zlib.decompress(content)
            except zlib.error:
                content = zlib.decompress(content, -zlib.MAX_WBITS)
        elif coding not in ("identity", ""):
            raise _ProtocolError(f"unsupported content-encoding {coding!r}")
    return content
