"""``scrape_and_extract_info`` against a real local web server."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import BaseTool, ToolException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from support.http_server import HttpServer

from mirograph.agents.config import ModelConfig
from mirograph.agents.sim.scripting import Fault
from mirograph.agents.sim.server import SimServer
from mirograph.agents.tools.base import DEDUPE_KEY, ToolContext, server_of
from mirograph.agents.tools.scrape import (
    ALLOW_PRIVATE,
    EXTRACT_SYSTEM,
    TRUNCATED,
    FetchLimits,
    Page,
    _markup_text,
    make_tools,
    page_text,
)
from mirograph.agents.tools.tool_refs import check_ref, resolve_tools

CENSUS_PDF = Path(__file__).parents[3] / "flows" / "demo_corpus" / "census-returns.pdf"

MAIN = [
    "The lighthouse at Kelvin Point was built in 1874 from granite quarried on the island.",
    "Its lamp was first lit by oil, then by acetylene, and was electrified only in 1952.",
    "Keepers lived at the station until 1989, when the light was fully automated.",
    "Today the tower is a museum, and the keepers' cottage houses a small library.",
]
ARTICLE = f"""<!doctype html>
<html><head><title>Kelvin Point Lighthouse</title>
<style>body {{ color: red }}</style><script>var tracking = "pixel";</script></head>
<body>
<nav><a href="/">Home</a> | <a href="/about">About us</a> | <a href="/shop">Shop</a></nav>
<div class="cookie-banner">We use cookies to improve your experience. Accept all cookies?</div>
<main><article>
<h1>Kelvin Point Lighthouse</h1>
{"".join(f"<p>{p}</p>" for p in MAIN)}
</article></main>
<footer>Copyright 2024 Coastal Heritage Trust. All rights reserved. Privacy policy.</footer>
</body></html>"""
#: 300 KB of unclosed ``<script>`` tags: minutes of regex backtracking for a tag stripper.
HOSTILE = "<html><body><p>Visible words.</p>" + "<script>" * 37_500
#: ~5 MB of paragraphs: about a second to convert, far past any scheduling delay.
LONG = "<html><body>" + "".join(f"<p>part {i} " + "word " * 50 + "</p>" for i in range(20_000))
LATIN = "Crème brûlée à la façade: naïve café, 20 °C."
BIG_BYTES = 20 * 1024 * 1024
CHUNK = b"0123456789abcdef" * 4095 + b"0123456789abcde\n"  # 64 KiB, one line


class Site:
    """The pages under test; counts the hits on each path."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        pages = {
            "/article": self.article,
            "/plain": self.plain,
            "/latin1": self.latin1,
            "/latin1.html": self.latin1_html,
            "/missing": self.missing,
            "/loop": self.loop,
            "/moved": self.moved,
            "/huge": self.huge,
            "/slow": self.slow,
            "/flaky": self.flaky,
            "/broken": self.broken,
            "/paper.pdf": self.pdf,
            "/census.pdf": self.census,
            "/image.png": self.image,
            "/hostile": self.hostile,
            "/long": self.long,
        }
        routes = [Route(path, self._counted(handler)) for path, handler in pages.items()]
        self.server = HttpServer(routes)

    def _counted(self, handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            self.hits[request.url.path] += 1
            response: Response = await handler(request)
            return response

        return endpoint

    async def article(self, _: Request) -> Response:
        return Response(ARTICLE, media_type="text/html")

    async def plain(self, _: Request) -> Response:
        return PlainTextResponse("first line\nsecond line\n")

    async def latin1(self, _: Request) -> Response:
        headers = {"content-type": "text/plain; charset=iso-8859-1"}
        return Response(LATIN.encode("latin-1"), headers=headers)

    async def latin1_html(self, _: Request) -> Response:
        markup = f'<html><head><meta charset="iso-8859-1"></head><body><p>{LATIN}</p></body></html>'
        return Response(markup.encode("latin-1"), headers={"content-type": "text/html"})

    async def missing(self, _: Request) -> Response:
        return PlainTextResponse("no such page", status_code=404)

    async def loop(self, _: Request) -> Response:
        return RedirectResponse("/loop", status_code=302)

    async def moved(self, _: Request) -> Response:
        return RedirectResponse("/plain", status_code=301)

    async def huge(self, _: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(BIG_BYTES // len(CHUNK)):
                yield CHUNK

        return StreamingResponse(chunks(), media_type="text/plain")

    async def slow(self, _: Request) -> Response:
        await self.server.until_closed()
        return PlainTextResponse("too late")

    async def flaky(self, _: Request) -> Response:
        if self.hits["/flaky"] <= 2:
            return PlainTextResponse("busy", status_code=503)
        return PlainTextResponse("third time lucky")

    async def broken(self, _: Request) -> Response:
        return PlainTextResponse("oops", status_code=500)

    async def pdf(self, _: Request) -> Response:
        return Response(b"%PDF-1.4\n%%EOF\n", media_type="application/pdf")

    async def census(self, _: Request) -> Response:
        return Response(CENSUS_PDF.read_bytes(), media_type="application/pdf")

    async def image(self, _: Request) -> Response:
        return Response(b"\x89PNG\r\n\x1a\n", media_type="image/png")

    async def hostile(self, _: Request) -> Response:
        return Response(HOSTILE, media_type="text/html")

    async def long(self, _: Request) -> Response:
        return Response(LONG, media_type="text/html")


@pytest.fixture(scope="module")
def site_server() -> Iterator[Site]:
    site = Site()
    with site.server:
        yield site


@pytest.fixture
def site(site_server: Site) -> Site:
    site_server.hits.clear()
    return site_server


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    return ToolContext(run_id="r1", workspace=tmp_path)


@pytest.fixture
def scrape(ctx: ToolContext) -> BaseTool:
    # The test site is on 127.0.0.1, which scrape refuses unless allowed.
    limits = FetchLimits(read_s=0.5, connect_s=0.5, backoff_s=0, allow_private=True)
    [tool] = make_tools(ctx, limits=limits)
    return tool


async def _scrape(tool: BaseTool, url: str, info: str = "the facts") -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(await tool.ainvoke({"url": url, "info_to_extract": info}))
    return answer


async def _error(tool: BaseTool, url: str) -> str:
    with pytest.raises(ToolException) as info:
        await tool.ainvoke({"url": url, "info_to_extract": "anything"})
    message = str(info.value)
    assert "\n" not in message
    return message


def test_tool_is_named_as_the_weights_know_it(scrape: BaseTool) -> None:
    assert scrape.name == "scrape_and_extract_info"
    assert server_of(scrape) == "jina_scrape_llm_summary"
    assert (scrape.metadata or {})[DEDUPE_KEY] == ["url", "info_to_extract"]
    check_ref("scrape")


def test_scrape_is_a_builtin_set(ctx: ToolContext) -> None:
    [tool] = resolve_tools(["scrape"], ctx)
    assert tool.name == "scrape_and_extract_info"


async def test_html_keeps_the_main_text_and_drops_boilerplate(site: Site, scrape: BaseTool) -> None:
    url = site.server.url("/article")
    answer = await _scrape(scrape, url, "when was it built")
    assert (answer["url"], answer["info_to_extract"]) == (url, "when was it built")
    content = answer["content"]
    for paragraph in MAIN:
        assert paragraph in content
    for boilerplate in ("About us", "cookies", "All rights reserved", "tracking", "color: red"):
        assert boilerplate not in content
    stats = answer["page_stats"]
    assert stats["all_content_shown"] is True
    assert stats["chars"] == len(content)
    assert stats["lines"] == content.count("\n") + 1
    assert TRUNCATED not in content


async def test_plain_text_as_is(site: Site, scrape: BaseTool) -> None:
    answer = await _scrape(scrape, site.server.url("/plain"))
    assert answer["content"] == "first line\nsecond line"
    assert answer["page_stats"] == {"lines": 2, "chars": 22, "all_content_shown": True}


async def test_a_redirect_is_followed(site: Site, scrape: BaseTool) -> None:
    answer = await _scrape(scrape, site.server.url("/moved"))
    assert answer["content"] == "first line\nsecond line"


@pytest.mark.parametrize("path", ["/latin1", "/latin1.html"])
async def test_a_latin1_page_is_decoded_by_its_charset(
    site: Site, scrape: BaseTool, path: str
) -> None:
    answer = await _scrape(scrape, site.server.url(path))
    assert LATIN in answer["content"]


async def test_not_found_is_an_error(site: Site, scrape: BaseTool) -> None:
    url = site.server.url("/missing")
    assert await _error(scrape, url) == f"GET {url} returned HTTP 404"
    assert site.hits["/missing"] == 1


async def test_a_redirect_loop_stops(site: Site, scrape: BaseTool) -> None:
    url = site.server.url("/loop")
    assert await _error(scrape, url) == f"GET {url} was redirected more than 5 times"
    assert site.hits["/loop"] == 6


async def test_a_huge_page_is_cut_at_the_byte_cap(site: Site, ctx: ToolContext) -> None:
    [scrape] = make_tools(ctx, limits=FetchLimits(allow_private=True))  # the real 10 MB cap
    answer = await _scrape(scrape, site.server.url("/huge"))
    cap = FetchLimits().max_bytes
    stats = answer["page_stats"]
    assert stats["all_content_shown"] is False
    assert cap - len(CHUNK) <= stats["chars"] <= cap
    assert answer["content"].endswith(f"\n{TRUNCATED}")
    assert len(answer["content"]) == FetchLimits().max_chars + len(TRUNCATED) + 1


async def test_long_text_is_cut_to_the_character_budget(site: Site, ctx: ToolContext) -> None:
    [scrape] = make_tools(ctx, limits=FetchLimits(max_chars=10, allow_private=True))
    answer = await _scrape(scrape, site.server.url("/plain"))
    assert answer["content"] == f"first line\n{TRUNCATED}"
    assert answer["page_stats"] == {"lines": 2, "chars": 22, "all_content_shown": False}


async def test_a_silent_server_times_out_after_the_retries(site: Site, scrape: BaseTool) -> None:
    url = site.server.url("/slow")
    message = await _error(scrape, url)
    assert message == f"GET {url} timed out (ReadTimeout) on each of 3 tries"
    assert site.hits["/slow"] == 3


async def test_busy_answers_are_retried(site: Site, scrape: BaseTool) -> None:
    answer = await _scrape(scrape, site.server.url("/flaky"))
    assert answer["content"] == "third time lucky"
    assert site.hits["/flaky"] == 3


async def test_a_lasting_server_error_is_reported(site: Site, scrape: BaseTool) -> None:
    url = site.server.url("/broken")
    assert await _error(scrape, url) == f"GET {url} returned HTTP 500"
    assert site.hits["/broken"] == 3


async def test_a_pdf_is_read_as_text(site: Site, scrape: BaseTool) -> None:
    answer = await _scrape(scrape, site.server.url("/census.pdf"), info="the 1861 population")
    assert answer["content"].startswith("Marrowford Census Returns, 1841-1901")
    assert "1861    3,655 persons" in answer["content"]
    assert answer["page_stats"]["all_content_shown"] is True


def test_a_pdf_needs_pypdf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pypdf", None)  # as if not installed
    page = Page("http://x/paper.pdf", "application/pdf", None, b"%PDF-1.4\n%%EOF\n", True)
    with pytest.raises(ToolException, match="needs the pypdf package"):
        page_text(page)


async def test_a_hostile_page_is_converted_off_the_loop(site: Site, scrape: BaseTool) -> None:
    """While the page is turned into text, other coroutines of the process keep running."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.001)
            gaps.append(time.monotonic() - last)
            last = time.monotonic()

    ticking = asyncio.create_task(ticker())
    started = time.monotonic()
    try:
        answer = await _scrape(scrape, site.server.url("/hostile"))
    finally:
        done.set()
        await ticking
    assert time.monotonic() - started < FetchLimits().convert_s
    assert answer["content"] == "Visible words."
    assert len(gaps) >= 5
    assert max(gaps) < 1.0  # the loop was never held


def test_markup_is_read_by_a_parser_in_linear_time() -> None:
    """The fallback for pages trafilatura finds nothing in (no regular expressions)."""
    page = Page("http://x/", "text/html", None, HOSTILE.encode(), True)
    started = time.thread_time()
    assert page_text(page) == "Visible words."
    assert time.thread_time() - started < 5.0
    markup = "<div>One &amp; <b>two</b></div><p>three</p><script>x()</script><br>four"
    assert _markup_text(markup) == "One & two\nthree\nfour"


async def test_a_conversion_past_its_limit_is_stopped(site: Site, ctx: ToolContext) -> None:
    limits = FetchLimits(convert_s=0.001, allow_private=True)
    [scrape] = make_tools(ctx, limits=limits)
    url = site.server.url("/long")
    message = await _error(scrape, url)
    assert message == f"reading the text of {url} took longer than 0.001 s and was stopped"


async def test_binary_content_is_refused(site: Site, scrape: BaseTool) -> None:
    url = site.server.url("/image.png")
    assert await _error(scrape, url) == f"GET {url} returned image/png, not HTML, text or PDF"


@pytest.mark.parametrize("url", ["ftp://example.org/file", "file:///etc/passwd", "example.org"])
async def test_only_http_urls(scrape: BaseTool, url: str) -> None:
    message = await _error(scrape, url)
    assert message == f"only http and https URLs can be scraped; got {url!r}"


async def test_a_closed_port_is_an_error(scrape: BaseTool) -> None:
    message = await _error(scrape, "http://127.0.0.1:1/")
    assert message.startswith("GET http://127.0.0.1:1/ failed: ConnectError")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "169.254.169.254", "10.0.0.7"])
async def test_local_and_private_addresses_are_refused_by_default(
    host: str, ctx: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ALLOW_PRIVATE, raising=False)
    [tool] = make_tools(ctx)
    message = await _error(tool, f"http://{host}:9/latest/meta-data")
    assert "refused" in message and "local or private address" in message
    assert f"set {ALLOW_PRIVATE}=1" in message


async def test_an_extraction_model_answers_what_was_asked(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ALLOW_PRIVATE, "1")

    def extractor(body: dict[str, Any]) -> str:
        return "Looking for the count.</think>\n\nThe page gives no population figure."

    with SimServer(extractor) as srv:
        context = ToolContext("r1", tmp_path, models={"small": ModelConfig(base_url=srv.base_url)})
        [tool] = resolve_tools([{"scrape": {"extraction_model": "small"}}], context)
        answer = await _scrape(tool, site.server.url("/plain"), info="the population")
        await context.aclose()
    assert answer == {
        "url": site.server.url("/plain"),
        "info_to_extract": "the population",
        "extracted_info": "The page gives no population figure.",
        "page_stats": {"lines": 2, "chars": 22, "all_content_shown": True},
    }
    [request] = srv.requests
    system, user = (m["content"] for m in request["messages"])
    assert system == EXTRACT_SYSTEM
    assert user.startswith("Information to extract: the population\n\nPage (")
    assert "first line" in user  # the page text itself


async def test_a_failing_extraction_model_still_returns_the_page_text(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ALLOW_PRIVATE, "1")
    with SimServer(lambda body: Fault(500, "down")) as srv:
        context = ToolContext("r1", tmp_path, models={"small": ModelConfig(base_url=srv.base_url)})
        [tool] = resolve_tools([{"scrape": {"extraction_model": "small"}}], context)
        answer = await _scrape(tool, site.server.url("/plain"))
        await context.aclose()
    assert answer["content"].startswith("first line")
    assert "InternalServerError" in answer["extraction_error"]
