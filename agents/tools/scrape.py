"""The ``scrape`` tool set: ``scrape_and_extract_info``, as the weights know it.

A page is fetched with bounded time, redirects and size, and reduced to its
main text. There is no extraction model yet: the cleaned text itself is
returned (cut to a budget) in the JSON shape the weights expect.
"""

from __future__ import annotations

import asyncio
import codecs
import io
import ipaddress
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import lxml.html
import trafilatura
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from lxml import etree
from pydantic import BaseModel, ConfigDict, Field

from mirograph.agents.fields import Int
from mirograph.agents.tools.base import DEDUPE_KEY, ToolContext, on_server
from mirograph.agents.tools.bounded import run_bounded
from mirograph.text import describe

SERVER = "jina_scrape_llm_summary"
TRUNCATED = "[Content truncated]"
USER_AGENT = "Mozilla/5.0 (compatible; mirograph)"
ACCEPT = "text/html,application/xhtml+xml,text/plain;q=0.9,application/pdf;q=0.8,*/*;q=0.5"
#: Set to 1 to let scrape fetch local and private addresses (a local corpus server, tests).
ALLOW_PRIVATE = "MIROGRAPH_ALLOW_PRIVATE_URLS"
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
TEXT_TYPES = frozenset({"application/json", "application/xml", "application/javascript"})


@dataclass(frozen=True)
class FetchLimits:
    """How long, how far and how much one scrape may fetch; tests shrink them."""

    connect_s: float = 10.0
    read_s: float = 30.0
    max_redirects: int = 5
    retries: int = 2
    backoff_s: float = 1.0
    max_bytes: int = 10 * 1024 * 1024
    max_chars: int = 20_000
    #: Seconds the page's conversion to text (HTML, PDF) may take before it is stopped.
    convert_s: float = 60.0
    #: Whether loopback, private and link-local addresses may be fetched (a page
    #: could otherwise steer the model to internal services or cloud metadata).
    allow_private: bool = field(default_factory=lambda: os.environ.get(ALLOW_PRIVATE) == "1")


@dataclass(frozen=True)
class Page:
    """A fetched body; ``complete`` is False when it was cut at ``max_bytes``."""

    url: str
    content_type: str
    charset: str | None
    body: bytes
    complete: bool


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: ``direct``: an httpx GET from this machine; ``tavily``: Tavily's extract
    #: endpoint reads the page (needs ``TAVILY_API_KEY``, like search).
    fetcher: Literal["direct", "tavily"] = "direct"
    #: A flow model (a small, fast one) that extracts what was asked from the page;
    #: without one the cleaned page text itself is returned.
    extraction_model: str | None = None
    #: Characters of page text the extraction model reads.
    extraction_chars: Int = Field(100_000, gt=0, le=100_000_000)
    #: Characters of page text returned without an extraction model.
    max_chars: Int = Field(20_000, gt=0, le=100_000_000)


EXTRACT_SYSTEM = (
    "You read one web page and extract the information a researcher asked for. Use only"
    " what the page says; quote numbers, names and dates exactly. If the page does not"
    " contain it, say so plainly and give whatever related facts it does contain."
)


def make_tools(ctx: ToolContext, *, limits: FetchLimits | None = None) -> list[BaseTool]:
    options: Options = ctx.options or Options()
    chosen = limits or FetchLimits(max_chars=options.max_chars)
    extractor = _Extractor(ctx, options) if options.extraction_model else None

    async def scrape_and_extract_info(url: str, info_to_extract: str) -> str:
        """Fetch a web page (HTML, plain text or PDF) and extract the requested information.

        Args:
            url: The http(s) URL of the page.
            info_to_extract: What to look for on the page.

        Returns:
            JSON with url, info_to_extract, page_stats (lines, chars, all_content_shown)
            and either extracted_info (what was found, when the flow sets an extraction
            model) or content (the page's text, ending in "[Content truncated]" when cut).
            A page that cannot be fetched or read gives an error message saying why
            (e.g. its HTTP status).
        """
        if options.fetcher == "tavily":
            from mirograph.agents.tools.search import extract_page

            _check_scheme(url.strip())
            text, complete = (await extract_page(url.strip())).strip(), True
        else:
            page = await fetch(url, chosen)
            text, complete = await read_text(page, chosen.convert_s), page.complete
        answer = report(url, info_to_extract, text, complete, chosen.max_chars)
        if extractor is not None:
            answer = await extractor.extract(answer, text, complete)
        return json.dumps(answer, ensure_ascii=False)

    tool = StructuredTool.from_function(
        coroutine=scrape_and_extract_info, handle_tool_error=False, parse_docstring=True
    )
    tool.metadata = {DEDUPE_KEY: ["url", "info_to_extract"]}  # the reference's key
    return [on_server(tool, SERVER)]


class _Extractor:
    """Asks the flow's extraction model; one client per run, opened on first use."""

    def __init__(self, ctx: ToolContext, options: Options) -> None:
        self.ctx, self.options = ctx, options
        self.config = ctx.models[options.extraction_model]
        self.model: Any = None

    async def extract(self, answer: dict[str, Any], text: str, complete: bool) -> dict[str, Any]:
        from langchain_core.messages import HumanMessage, SystemMessage

        from mirograph.agents.mirothinker.thinking import split_thinking
        from mirograph.agents.models import build_chat_model

        if self.model is None:
            self.model = build_chat_model(self.config)
            self.ctx.close_later(self.model)
        limit = self.options.extraction_chars
        shown = complete and len(text) <= limit
        page = text if shown else f"{text[:limit]}\n{TRUNCATED}"
        request = (
            f"Information to extract: {answer['info_to_extract']}\n\n"
            f"Page ({answer['url']}):\n{page}"
        )
        stats = {**answer["page_stats"], "all_content_shown": shown}
        try:
            reply = await self.model.ainvoke([SystemMessage(EXTRACT_SYSTEM), HumanMessage(request)])
            extracted = split_thinking(reply.text)[1]
        except Exception as exc:  # the page text still helps: return it with the reason
            answer["extraction_error"] = describe(exc)
            return answer
        return {
            "url": answer["url"],
            "info_to_extract": answer["info_to_extract"],
            "extracted_info": extracted,
            "page_stats": stats,
        }


def report(url: str, info: str, text: str, complete: bool, max_chars: int) -> dict[str, object]:
    """The tool's answer: the text within ``max_chars``, marked when anything is left out."""
    shown = complete and len(text) <= max_chars
    content = text if shown else f"{text[:max_chars]}\n{TRUNCATED}"
    lines = text.count("\n") + 1 if text else 0
    return {
        "url": url,
        "info_to_extract": info,
        "content": content,
        "page_stats": {"lines": lines, "chars": len(text), "all_content_shown": shown},
    }


async def fetch(url: str, limits: FetchLimits) -> Page:
    """GET ``url``, retrying timeouts, 429 and 5xx; failures are one-line ``ToolException``s."""
    url = url.strip()
    _check_scheme(url)
    timeout = httpx.Timeout(limits.read_s, connect=limits.connect_s)
    headers = {"User-Agent": USER_AGENT, "Accept": ACCEPT}
    hooks = {"request": [] if limits.allow_private else [_refuse_private]}
    async with httpx.AsyncClient(
        follow_redirects=True,
        max_redirects=limits.max_redirects,
        timeout=timeout,
        headers=headers,
        event_hooks=hooks,
    ) as client:
        for attempt in range(limits.retries + 1):
            last = attempt == limits.retries
            try:
                async with client.stream("GET", url) as response:
                    if response.is_success:
                        return await _read(response, limits.max_bytes)
                    if last or response.status_code not in RETRY_STATUS:
                        raise ToolException(f"GET {url} returned HTTP {response.status_code}")
            except httpx.TimeoutException as exc:
                if last:
                    tries = limits.retries + 1
                    raise ToolException(
                        f"GET {url} timed out ({type(exc).__name__}) on each of {tries} tries"
                    ) from None
            except httpx.TooManyRedirects:
                raise ToolException(
                    f"GET {url} was redirected more than {limits.max_redirects} times"
                ) from None
            except httpx.HTTPError as exc:
                detail = " ".join(str(exc).split())
                raise ToolException(f"GET {url} failed: {type(exc).__name__}: {detail}") from None
            await asyncio.sleep(limits.backoff_s * (attempt + 1))
    raise AssertionError("unreachable: the last attempt returns or raises")


async def read_text(page: Page, limit_s: float) -> str:
    """``page_text`` in a worker process, stopped after ``limit_s``: a hostile page
    can take minutes of CPU to convert, which must hold neither the loop nor a thread."""
    return await run_bounded(
        page_text, page, limit_s=limit_s, what=f"reading the text of {page.url}"
    )


def page_text(page: Page) -> str:
    """The readable text of ``page``: main text of HTML, text as is, PDF through pypdf."""
    kind = page.content_type
    head = page.body[:1024].lstrip().lower()
    if kind == "application/pdf" or page.body.startswith(b"%PDF-"):
        return _pdf_text(page)
    if kind in HTML_TYPES or (kind in ("", "application/octet-stream") and _looks_html(head)):
        return _html_text(page)
    if kind.startswith("text/") or kind in TEXT_TYPES or kind.endswith(("+json", "+xml")):
        return page.body.decode(_codec(page.charset) or "utf-8", errors="replace").strip()
    got = kind or "content of no declared type"
    raise ToolException(f"GET {page.url} returned {got}, not HTML, text or PDF")


async def _read(response: httpx.Response, max_bytes: int) -> Page:
    chunks: list[bytes] = []
    size = 0
    complete = True
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            complete = False
            break
    body = b"".join(chunks)[:max_bytes]
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return Page(str(response.url), content_type, response.charset_encoding, body, complete)


async def _refuse_private(request: httpx.Request) -> None:
    """Refuse a request (the first or a redirect) to a non-public address."""
    host = request.url.host
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, request.url.port or 80)
    except OSError as exc:
        raise ToolException(f"GET {request.url} failed: cannot resolve {host!r} ({exc})") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global:
            raise ToolException(
                f"GET {request.url} refused: {host} is a local or private address ({address});"
                f" set {ALLOW_PRIVATE}=1 to allow it"
            )


def _check_scheme(url: str) -> None:
    try:
        scheme = httpx.URL(url).scheme
    except httpx.InvalidURL as exc:
        raise ToolException(f"{url!r} is not a valid URL: {exc}") from None
    if scheme not in ("http", "https"):
        raise ToolException(f"only http and https URLs can be scraped; got {url!r}")


def _looks_html(head: bytes) -> bool:
    return head.startswith((b"<!doctype html", b"<html")) or b"<body" in head


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)


def _html_text(page: Page) -> str:
    charset = _codec(page.charset)
    if charset is None:
        found = _META_CHARSET.search(page.body[:4096])
        charset = _codec(found.group(1).decode("ascii")) if found else None
    markup = page.body.decode(charset or "utf-8", errors="replace")
    text = trafilatura.extract(markup, url=page.url, include_comments=False, include_tables=True)
    return (text or _markup_text(markup)).strip()


def _codec(name: str | None) -> str | None:
    """``name`` if Python knows the encoding, else None."""
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


_HIDDEN_TAGS = ("script", "style", "noscript", "template")
_BLOCK_TAGS = (
    *("address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption"),
    *("footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav"),
    *("ol", "p", "pre", "section", "table", "td", "th", "title", "tr", "ul"),
)
_BLANKS = re.compile(r"[ \t\r\f\v]+")


def _markup_text(markup: str) -> str:
    """The visible text of ``markup``, a line per block, for pages trafilatura finds nothing in.

    A real HTML parser (lxml, linear time) rather than regular expressions,
    which a page of unclosed ``<script>`` tags drives into quadratic time.
    """
    parser = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True)
    try:
        root = lxml.html.document_fromstring(markup.encode("utf-8", "replace"), parser=parser)
    except (etree.ParserError, ValueError):  # nothing but blanks, or not markup at all
        return ""
    for hidden in list(root.iter(*_HIDDEN_TAGS)):
        hidden.drop_tree()
    for block in root.iter(*_BLOCK_TAGS):
        block.tail = "\n" + (block.tail or "")
    lines = (_BLANKS.sub(" ", line).strip() for line in root.text_content().splitlines())
    return "\n".join(line for line in lines if line)


def _pdf_text(page: Page) -> str:
    try:
        import pypdf
    except ImportError:
        raise ToolException(
            f"{page.url} is a PDF; reading PDFs needs the pypdf package, which is not installed"
        ) from None
    try:
        reader = pypdf.PdfReader(io.BytesIO(page.body))
        return "\n\n".join(p.extract_text() or "" for p in reader.pages).strip()
    except Exception as exc:
        raise ToolException(f"cannot read the PDF at {page.url}: {exc}") from None
