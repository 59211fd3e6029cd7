"""``google_search`` through the real Tavily client, against a local Tavily-shaped server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import BaseTool, ToolException
from langchain_core.utils.function_calling import convert_to_openai_tool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from support.http_server import HttpServer

from mirograph.agents.tools.base import DEDUPE_KEY, ToolContext, server_of
from mirograph.agents.tools.search import MISSING_KEY, make_tools
from mirograph.agents.tools.tool_refs import (
    ToolRefError,
    check_environment,
    check_ref,
    resolve_tools,
)

KEY = "tvly-test-SECRET-0123456789"
RESULTS = [
    {"title": "Leo Messi", "url": "https://example.org/messi",
     "content": "An Argentine footballer.", "score": 0.9, "raw_content": None},
    {"title": "Messi facts", "url": "https://example.org/facts",
     "content": "Born in 1987.", "score": 0.7, "raw_content": None,
     "published_date": "2024-06-24"},
]  # fmt: skip
#: A query that makes the server answer with this status and an error body naming the key.
FAILURES = {"fail-400": 400, "fail-401": 401, "fail-429": 429, "fail-500": 500}


class Tavily:
    """Tavily-shaped ``POST /search`` and ``POST /extract``; records every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.server = HttpServer(
            [
                Route("/search", self.search, methods=["POST"]),
                Route("/extract", self.extract, methods=["POST"]),
            ]
        )

    async def extract(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append((dict(request.headers), body))
        [url] = body["urls"]
        if url.endswith("/fail-401"):
            detail = {"error": f"refused ({request.headers.get('authorization')})"}
            return JSONResponse({"detail": detail}, status_code=401)
        if url.endswith("/unreachable"):
            failed = [{"url": url, "error": "Failed to fetch url"}]
            return JSONResponse({"results": [], "failed_results": failed})
        result = {"url": url, "raw_content": f"Extracted text of {url}.\nSecond line."}
        return JSONResponse({"results": [result], "failed_results": [], "response_time": 0.01})

    async def search(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append((dict(request.headers), body))
        query = body["query"]
        if query == "hang":
            await self.server.until_closed()
        if query in FAILURES:
            detail = {"error": f"refused ({request.headers.get('authorization')})"}
            return JSONResponse({"detail": detail}, status_code=FAILURES[query])
        results = [] if query == "nothing" else RESULTS[: body.get("max_results", 5)]
        return JSONResponse({"query": query, "results": results, "response_time": 0.01})


@pytest.fixture(scope="module")
def tavily_server() -> Iterator[Tavily]:
    tavily = Tavily()
    with tavily.server:
        yield tavily


@pytest.fixture
def tavily(tavily_server: Tavily, monkeypatch: pytest.MonkeyPatch) -> Tavily:
    monkeypatch.setenv("TAVILY_API_KEY", KEY)
    monkeypatch.setenv("TAVILY_API_BASE_URL", tavily_server.server.root_url)
    tavily_server.requests.clear()
    return tavily_server


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    return ToolContext(run_id="r1", workspace=tmp_path)


@pytest.fixture
def search(ctx: ToolContext) -> BaseTool:
    [tool] = make_tools(ctx)
    return tool


async def test_tool_is_named_as_the_weights_know_it(search: BaseTool) -> None:
    assert search.name == "google_search"
    assert server_of(search) == "search_and_scrape_webpage"
    assert (search.metadata or {})[DEDUPE_KEY] == ["q"]
    schema = convert_to_openai_tool(search)["function"]["parameters"]
    assert set(schema["properties"]) == {"q", "gl", "hl", "num", "tbs", "page", "location"}
    assert schema["required"] == ["q"]


async def test_results_come_back_as_google_organic_results(
    tavily: Tavily, search: BaseTool
) -> None:
    answer = json.loads(await search.ainvoke({"q": "who is Leo Messi?"}))
    assert answer["searchParameters"]["q"] == "who is Leo Messi?"
    assert answer["organic"] == [
        {"title": "Leo Messi", "link": "https://example.org/messi",
         "snippet": "An Argentine footballer.", "position": 1},
        {"title": "Messi facts", "link": "https://example.org/facts",
         "snippet": "Born in 1987.", "position": 2, "date": "2024-06-24"},
    ]  # fmt: skip
    [(headers, body)] = tavily.requests
    assert headers["authorization"] == f"Bearer {KEY}"
    assert body["query"] == "who is Leo Messi?"
    assert body["max_results"] == 10
    assert body["country"] == "united states"
    assert "time_range" not in body


async def test_google_options_map_to_tavily_ones(tavily: Tavily, search: BaseTool) -> None:
    await search.ainvoke({"q": "a", "num": 50, "tbs": "qdr:w", "gl": "DE", "hl": "de", "page": 2})
    await search.ainvoke({"q": "b", "num": 3, "tbs": "qdr:y", "gl": "zz", "location": "Berlin"})
    await search.ainvoke({"q": "c", "num": 0, "tbs": "sbd:1"})
    first, second, third = (body for _, body in tavily.requests)
    assert (first["max_results"], first["time_range"], first["country"]) == (20, "week", "germany")
    assert (second["max_results"], second["time_range"]) == (3, "year")
    assert "country" not in second
    assert third["max_results"] == 1
    assert "time_range" not in third
    for body in (first, second, third):
        assert not {"hl", "page", "location", "gl", "tbs", "num"} & set(body)


async def test_no_results_is_an_empty_organic_list(tavily: Tavily, search: BaseTool) -> None:
    answer = json.loads(await search.ainvoke({"q": "nothing"}))
    assert answer["organic"] == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("fail-401", r"^Tavily rejected the API key \(HTTP 401\); set TAVILY_API_KEY$"),
        ("fail-429", r"HTTP 429"),
        ("fail-500", r"^Tavily search failed with HTTP 500"),
        ("fail-400", r"HTTP 400.*refused \(Bearer \*\*\*\)"),
    ],
)
async def test_errors_are_one_line_and_never_show_the_key(
    tavily: Tavily, search: BaseTool, query: str, expected: str
) -> None:
    with pytest.raises(ToolException, match=expected) as info:
        await search.ainvoke({"q": query})
    message = str(info.value)
    assert "\n" not in message
    assert KEY not in message
    assert "SECRET" not in message


async def test_a_silent_server_times_out(tavily: Tavily, ctx: ToolContext) -> None:
    [search] = make_tools(ctx, timeout_s=0.5)
    with pytest.raises(ToolException, match="Tavily did not answer in time") as info:
        await search.ainvoke({"q": "hang"})
    assert "\n" not in str(info.value)


async def test_unreachable_server(
    tavily: Tavily, search: BaseTool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAVILY_API_BASE_URL", "http://127.0.0.1:1")
    with pytest.raises(ToolException, match="Tavily could not be reached: ConnectError"):
        await search.ainvoke({"q": "anything"})


async def test_the_tool_refuses_to_run_without_a_key(
    search: BaseTool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TAVILY_API_KEY", raising=False)
    with pytest.raises(ToolException, match="needs TAVILY_API_KEY"):
        await search.ainvoke({"q": "anything"})


def test_validation_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAVILY_API_KEY", raising=False)
    check_ref("search")  # the name resolves; only running it needs the key
    with pytest.raises(ToolRefError) as info:
        check_environment("search")
    assert str(info.value) == (
        "tool set 'search' needs TAVILY_API_KEY in the environment "
        "(a Tavily key; TAVILY_API_BASE_URL may point search at a proxy or a compatible server)"
    )
    assert str(info.value) == MISSING_KEY
    monkeypatch.setenv("TAVILY_API_KEY", KEY)
    check_environment("search")


def test_search_is_a_builtin_set(ctx: ToolContext) -> None:
    [tool] = resolve_tools(["search"], ctx)
    assert tool.name == "google_search"


async def test_scrape_can_read_pages_through_tavily_extract(
    tavily: Tavily, ctx: ToolContext
) -> None:
    [scrape] = resolve_tools([{"scrape": {"fetcher": "tavily"}}], ctx)
    url = "https://example.org/page"
    answer = json.loads(await scrape.ainvoke({"url": url, "info_to_extract": "the text"}))
    assert answer["content"] == f"Extracted text of {url}.\nSecond line."
    assert answer["page_stats"] == {
        "lines": 2,
        "chars": len(answer["content"]),
        "all_content_shown": True,
    }
    [(headers, body)] = tavily.requests
    assert body["urls"] == [url] and headers["authorization"] == f"Bearer {KEY}"
    with pytest.raises(ToolException, match=r"Tavily could not extract .*: Failed to fetch url"):
        await scrape.ainvoke({"url": "https://example.org/unreachable", "info_to_extract": "x"})
    with pytest.raises(ToolException) as err:
        await scrape.ainvoke({"url": "https://example.org/fail-401", "info_to_extract": "x"})
    assert str(err.value) == "Tavily rejected the API key (HTTP 401); set TAVILY_API_KEY"
