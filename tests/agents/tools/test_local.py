"""The ``local`` tool set: BM25 search and reading over a folder of documents, cached."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import BaseTool, ToolException

from mirograph.agents.tools import local
from mirograph.agents.tools.base import DEDUPE_KEY, ToolContext, server_of
from mirograph.agents.tools.tool_refs import ToolRefError, check_ref, resolve_tools
from mirograph.flows.loader import FlowError, validate_flow

DEMO = Path(__file__).resolve().parents[3] / "flows" / "demo_corpus"
CENSUS_PDF = DEMO / "census-returns.pdf"

FILES = {
    "otters.md": "# River Otters\n\nOtters hunt eels and crayfish in the shallows at dusk.\n",
    "weather.txt": "Weather log. The barometer fell sharply before the storm.\n",
    "sub/kilns.html": (
        "<html><head><title>Lime &amp; Kilns</title></head><body><article>"
        "<h1>Kilns</h1><p>The quicklime kilns burned limestone with charcoal.</p>"
        "</article></body></html>"
    ),
    "census-returns.pdf": CENSUS_PDF.read_bytes(),
    "notes/long.md": "# Long notes\n\n"
    + "".join(f"Line {i:03d} of the ledger.\n" for i in range(200)),
}


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


@pytest.fixture
def corpus(tmp_path: Path, home: Path) -> Path:
    root = tmp_path / "corpus"
    write(root, FILES)
    return root


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The folders the index was built (not loaded) for, in order."""
    built: list[Path] = []
    real = local.build_bounded

    def spy(root: Path, manifest: list[local.Entry], limit_s: float) -> local.Index:
        built.append(root)
        return real(root, manifest, limit_s)

    monkeypatch.setattr(local, "build_bounded", spy)
    return built


def tools_for(root: Path, tmp_path: Path, **options: Any) -> dict[str, BaseTool]:
    made = resolve_tools([{"local": {"path": str(root), **options}}], ToolContext("r1", tmp_path))
    return {t.name: t for t in made}


def listing(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


async def search(tools: dict[str, BaseTool], query: str, **args: Any) -> dict[str, Any]:
    return json.loads(await tools["local_search"].ainvoke({"query": query, **args}))


async def ids(tools: dict[str, BaseTool], query: str, **args: Any) -> list[str]:
    return [row["doc_id"] for row in (await search(tools, query, **args))["organic"]]


def test_tools_server_and_dedupe(corpus: Path, tmp_path: Path) -> None:
    tools = tools_for(corpus, tmp_path)
    assert sorted(tools) == ["local_search", "read_document"]
    assert {server_of(t) for t in tools.values()} == {local.SERVER} == {"tool-local-corpus"}
    assert tools["local_search"].metadata[DEDUPE_KEY] == ["query"]
    assert tools["read_document"].metadata[DEDUPE_KEY] == ["doc_id", "offset"]


async def test_search_finds_the_right_document_first(corpus: Path, tmp_path: Path) -> None:
    tools = tools_for(corpus, tmp_path)
    result = await search(tools, "what do otters hunt")
    assert result["searchParameters"] == {"q": "what do otters hunt", "num": 5}
    first = result["organic"][0]
    assert set(first) == {"title", "link", "snippet", "position", "doc_id", "offset"}
    assert first["doc_id"] == "otters.md"
    assert first["link"] == "doc://otters.md"
    assert first["title"] == "River Otters"
    assert first["position"] == 1
    assert "Otters hunt eels" in first["snippet"]
    assert [row["position"] for row in result["organic"]] == list(
        range(1, len(result["organic"]) + 1)
    )


@pytest.mark.parametrize(
    ("query", "doc_id", "title"),
    [
        ("crayfish", "otters.md", "River Otters"),  # title: first markdown heading
        ("barometer", "weather.txt", "weather.txt"),  # title: the file name
        ("quicklime", "sub/kilns.html", "Lime & Kilns"),  # title: <title>
        ("enumerators", "census-returns.pdf", "Marrowford Census Returns, 1841-1901"),
    ],
)
async def test_each_file_type_is_indexed(
    corpus: Path, tmp_path: Path, query: str, doc_id: str, title: str
) -> None:
    rows = (await search(tools_for(corpus, tmp_path), query))["organic"]
    assert [(row["doc_id"], row["title"]) for row in rows] == [(doc_id, title)]
    assert query in rows[0]["snippet"].lower()


async def test_top_k_from_options_and_call(corpus: Path, tmp_path: Path) -> None:
    write(corpus, {f"ledger{i}.txt": f"ledger entry number {i}\n" for i in range(4)})
    tools = tools_for(corpus, tmp_path, top_k=2)
    assert len(await ids(tools, "ledger")) == 2
    assert len(await ids(tools, "ledger", top_k=3)) == 3
    assert len(await ids(tools, "ledger", top_k=50)) == 5  # every matching document
    with pytest.raises(ToolException, match="top_k must be between 1 and 50"):
        await search(tools, "ledger", top_k=0)


async def test_no_match_and_empty_query(corpus: Path, tmp_path: Path) -> None:
    tools = tools_for(corpus, tmp_path)
    assert (await search(tools, "xylophone zeppelin"))["organic"] == []
    assert (await search(tools, "the of and"))["organic"] == []  # stopwords only
    with pytest.raises(ToolException, match="query is empty"):
        await search(tools, "  ")


async def test_snippet_offset_points_into_the_document(corpus: Path, tmp_path: Path) -> None:
    tools = tools_for(corpus, tmp_path, snippet_chars=60)
    [row] = (await search(tools, "Line 150 ledger"))["organic"]
    assert row["doc_id"] == "notes/long.md"
    assert "Line 150" in row["snippet"]
    assert row["snippet"].startswith("…") and row["snippet"].endswith("…")
    assert len(row["snippet"]) <= 62
    text = await tools["read_document"].ainvoke(
        {"doc_id": "notes/long.md", "offset": row["offset"]}
    )
    assert "Line 150 of the ledger." in text.split("\n\n", 1)[1][:100]


async def test_read_document_in_parts(corpus: Path, tmp_path: Path) -> None:
    tools = tools_for(corpus, tmp_path, max_chars=1000)
    read = tools["read_document"]
    whole = (corpus / "notes/long.md").read_text().strip()
    parts, offset = [], 0
    while True:
        text = await read.ainvoke({"doc_id": "notes/long.md", "offset": offset})
        head, body = text.split("\n\n", 1)
        assert head.startswith(f"Long notes (doc://notes/long.md), characters {offset}-")
        if local.TRUNCATED not in body:
            parts.append(body)
            break
        body, note = body.rsplit(f"\n{local.TRUNCATED}", 1)
        assert len(body) <= 1000
        assert 'call read_document with doc_id="notes/long.md" and offset=' in note
        parts.append(body)
        offset = int(note.rsplit("offset=", 1)[1])
    assert len(parts) == 5
    assert "".join(parts) == whole


async def test_read_document_ids(corpus: Path, tmp_path: Path) -> None:
    read = tools_for(corpus, tmp_path)["read_document"]
    plain = await read.ainvoke({"doc_id": "sub/kilns.html"})
    assert plain.startswith("Lime & Kilns (doc://sub/kilns.html), characters 0-")
    assert "quicklime kilns burned limestone" in plain
    assert local.TRUNCATED not in plain
    assert await read.ainvoke({"doc_id": "doc://sub/kilns.html"}) == plain
    assert await read.ainvoke({"doc_id": "kilns.html"}) == plain  # a unique file name
    with pytest.raises(ToolException) as err:
        await read.ainvoke({"doc_id": "doc://missing.md"})
    assert "unknown doc_id 'doc://missing.md'" in str(err.value)
    assert "local_search" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ToolException, match=re.escape("offset 9999 is outside 'sub/kilns.html'")):
        await read.ainvoke({"doc_id": "sub/kilns.html", "offset": 9999})
    with pytest.raises(ToolException, match="offset -1 is outside"):
        await read.ainvoke({"doc_id": "sub/kilns.html", "offset": -1})


async def test_unreadable_and_ignored_files_are_skipped(
    corpus: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(
        corpus,
        {
            "broken.pdf": b"%PDF-1.4\nthis is not really a pdf",
            ".hidden.md": "# Secret\n\nzanzibar",
            ".git/notes.md": "zanzibar",
            "script.py": "zanzibar = 1",
        },
    )
    tools = tools_for(corpus, tmp_path)
    with caplog.at_level(logging.WARNING, logger=local.__name__):
        assert await ids(tools, "otters") == ["otters.md"]
    assert any("broken.pdf" in r.getMessage() for r in caplog.records)
    assert await ids(tools, "zanzibar") == []


async def test_parallel_first_calls_build_once(
    corpus: Path, tmp_path: Path, builds: list[Path]
) -> None:
    tools = tools_for(corpus, tmp_path)
    calls = [search(tools, "otters") for _ in range(3)]
    calls.append(tools["read_document"].ainvoke({"doc_id": "otters.md"}))
    await asyncio.gather(*calls)
    assert builds == [corpus]


async def test_a_later_run_loads_the_cached_index(
    corpus: Path, tmp_path: Path, home: Path, builds: list[Path]
) -> None:
    first = await search(tools_for(corpus, tmp_path), "quicklime kilns")
    cache = local.cache_root(corpus)
    assert cache.parent == home / "corpus-index"
    [generation] = list(cache.iterdir())
    manifest = json.loads((generation / "manifest.json").read_text())
    assert manifest["root"] == str(corpus)
    assert [rel for rel, _size, _mtime in manifest["files"]] == sorted(FILES)
    assert listing(corpus) == sorted(FILES)  # nothing written into the corpus
    again = await search(tools_for(corpus, tmp_path), "quicklime kilns")
    assert again == first
    assert builds == [corpus]  # loaded, not rebuilt
    assert list(cache.iterdir()) == [generation]


@pytest.mark.parametrize("change", ["edit", "add", "remove"])
async def test_a_changed_corpus_is_rebuilt(
    corpus: Path, tmp_path: Path, builds: list[Path], change: str
) -> None:
    assert await ids(tools_for(corpus, tmp_path), "otters") == ["otters.md"]
    if change == "edit":
        write(corpus, {"weather.txt": "Weather log. Otters seen near the weir after the flood.\n"})
    elif change == "add":
        write(corpus, {"more/otter-survey.md": "# Survey\n\nThe otters returned in spring.\n"})
    else:
        (corpus / "otters.md").unlink()
    found = await ids(tools_for(corpus, tmp_path), "otters")
    assert len(builds) == 2
    expected = {
        "edit": ["otters.md", "weather.txt"],
        "add": ["more/otter-survey.md", "otters.md"],
        "remove": [],
    }[change]
    assert sorted(found) == expected
    assert len(list(local.cache_root(corpus).iterdir())) == 1  # the old index is dropped


async def test_a_damaged_cache_is_rebuilt(corpus: Path, tmp_path: Path, builds: list[Path]) -> None:
    await ids(tools_for(corpus, tmp_path), "otters")
    [generation] = list(local.cache_root(corpus).iterdir())
    (generation / "docs.jsonl").write_text("{not json")
    assert await ids(tools_for(corpus, tmp_path), "otters") == ["otters.md"]
    assert len(builds) == 2


async def test_abandoned_builds_are_cleaned_up(corpus: Path, tmp_path: Path) -> None:
    cache = local.cache_root(corpus)
    for name in (".tmp-abandoned", ".tmp-in-progress", "0123456789abcdef"):
        (cache / name).mkdir(parents=True)
    os.utime(cache / ".tmp-abandoned", (0, 0))
    await ids(tools_for(corpus, tmp_path), "otters")
    names = sorted(p.name for p in cache.iterdir())
    assert len(names) == 2 and names[0] == ".tmp-in-progress"  # and the new index


async def test_an_empty_folder(tmp_path: Path, home: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    tools = tools_for(empty, tmp_path)
    assert (await search(tools, "anything"))["organic"] == []
    with pytest.raises(ToolException, match="the collection has 0 documents"):
        await tools["read_document"].ainvoke({"doc_id": "x.md"})


async def test_the_bundled_demo_corpus(tmp_path: Path, home: Path) -> None:
    tools = tools_for(DEMO, tmp_path)
    assert (await ids(tools, "Great Flood 1868 drowned"))[0] == "great-flood-1868.txt"
    assert (await ids(tools, "Harrow Bridge opened engineer"))[0] == "harrow-bridge.html"
    assert (await ids(tools, "census population 1861 1871"))[0] == "census-returns.pdf"
    everything = await ids(tools, "Marrowford", top_k=50)
    assert sorted(everything) == sorted(
        p.name for p in DEMO.iterdir() if p.suffix in {".md", ".txt", ".html", ".pdf"}
    )
    census = await tools["read_document"].ainvoke({"doc_id": "doc://census-returns.pdf"})
    assert "1861    3,655 persons" in census and "1871    2,980 persons" in census


def flow(tools: list[Any]) -> dict[str, Any]:
    return {
        "name": "x",
        "models": {"m": {}},
        "agents": {"main": {"model": "m", "tools": tools}},
        "entry": "main",
    }


def test_a_missing_folder_is_rejected_in_the_flow(tmp_path: Path) -> None:
    with pytest.raises(FlowError) as err:
        validate_flow(flow([{"local": {"path": "/nonexistent"}}]), source="f.yaml")
    message = str(err.value)
    assert message.startswith("f.yaml: agents.main.tools[0]: local.path: /nonexistent")
    assert "does not exist" in message and "\n" not in message
    file = tmp_path / "a.txt"
    file.write_text("x")
    with pytest.raises(FlowError, match=r"agents\.main\.tools\[0\]: local\.path: .* is not a dir"):
        validate_flow(flow([{"local": {"path": str(file)}}]))
    with pytest.raises(FlowError, match=r"local\.top_k: Input should be greater than 0"):
        validate_flow(flow([{"local": {"path": str(tmp_path), "top_k": 0}}]))
    with pytest.raises(ToolRefError, match=r"local\.path: required option is missing"):
        check_ref({"local": {}})


def test_a_relative_path_is_stored_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "docs").mkdir()
    monkeypatch.chdir(tmp_path)
    validated = validate_flow(flow([{"local": {"path": "./docs"}}]))
    options = validated.agents["main"].tools[0]["local"]
    assert options["path"] == str(tmp_path.resolve() / "docs")
    assert options["top_k"] == 5 and options["max_chars"] == 20_000


def test_the_demo_corpus_has_one_of_each_kind() -> None:
    kinds = {p.suffix for p in DEMO.iterdir()}
    assert {".md", ".txt", ".html", ".pdf"} <= kinds
    assert (DEMO / "README.md").is_file()


async def test_links_in_the_corpus_are_not_followed(home: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "linked"
    corpus.mkdir()
    (corpus / "real.md").write_text("# Real\n\nThe harbour opened in 1901.\n")
    outside = tmp_path / "private.txt"
    outside.write_text("private salary figures\n")
    (corpus / "leak.txt").symlink_to(outside)
    ctx = ToolContext("r1", tmp_path / "ws")
    search, read = resolve_tools([{"local": {"path": str(corpus)}}], ctx)
    found = json.loads(await search.ainvoke({"query": "salary figures"}))
    assert found["organic"] == []
    with pytest.raises(ToolException):
        await read.ainvoke({"doc_id": "leak.txt"})


async def test_indexing_past_its_limit_is_stopped(corpus: Path, tmp_path: Path) -> None:
    tools = tools_for(corpus, tmp_path, index_timeout_s=0.001)
    with pytest.raises(ToolException) as info:
        await search(tools, "otters")
    assert str(info.value) == (
        f"indexing the documents in {corpus} took longer than 0.001 s and was stopped"
    )


async def test_a_hostile_html_file_is_indexed_off_the_loop(corpus: Path, tmp_path: Path) -> None:
    """300 KB of unclosed ``<script>`` tags once took minutes of regex time in the process."""
    write(corpus, {"hostile.html": "<html><body><p>Quokkas here.</p>" + "<script>" * 37_500})
    tools = tools_for(corpus, tmp_path)
    assert await ids(tools, "quokkas") == ["hostile.html"]
