"""The ``local`` tool set: offline research over a folder of documents.

``{local: {path: ./corpus}}`` makes ``local_search(query)``, a BM25 search over
the folder's ``.md``, ``.txt``, ``.html`` and ``.pdf`` files answered in the
Google organic-results JSON the weights know (links are ``doc://<doc_id>``), and
``read_document(doc_id, offset)``, a document's text a budget at a time.

A ``doc_id`` is the file's path inside the folder (``notes/flood.md``), stable
across runs. The index is built on the first call of a run, in a thread, and
cached under ``$MIROGRAPH_HOME/corpus-index/<hash of the folder's path>/``
(never inside the folder, which may be read-only), keyed by a manifest of every
file's (path, size, mtime): a later run loads it unless a file was added,
removed or changed. A run searches the folder as it was at its first call.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import io
import json
import logging
import os
import re
import shutil
import stat
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bm25s
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mirograph.agents.fields import DAY_S, Float, Int
from mirograph.agents.tools.base import DEDUPE_KEY, ToolContext, on_server
from mirograph.agents.tools.bounded import run_bounded_sync
from mirograph.state.store import mirograph_home

logger = logging.getLogger(__name__)

SERVER = "tool-local-corpus"
SCHEME = "doc://"
TRUNCATED = "[Content truncated]"
#: File kinds indexed, by suffix (lower case).
SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".txt": "text"}
SUFFIXES |= {".html": "html", ".htm": "html", ".pdf": "pdf"}
#: A file larger than this is skipped (with a warning) rather than read into memory.
MAX_FILE_BYTES = 50 * 1024 * 1024
#: Bumped when the cached layout or the tokenizing changes; old caches are rebuilt.
INDEX_FORMAT = 1
STOPWORDS = "en"
MAX_TOP_K = 50
_WORD = re.compile(r"(?u)\b\w\w+\b")  # bm25s's default token pattern
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_SPACE = re.compile(r"\s+")


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The folder of documents (searched recursively); relative paths are taken
    #: from the working directory and stored absolute.
    path: Path
    #: Results of one search unless the call asks for another number.
    top_k: Int = Field(5, gt=0, le=MAX_TOP_K)
    #: Characters of a document one ``read_document`` call returns.
    max_chars: Int = Field(20_000, gt=0, le=100_000_000)
    #: Characters of a search result's snippet.
    snippet_chars: Int = Field(300, gt=0, le=100_000)
    #: Seconds that reading and indexing the folder may take before it is stopped.
    index_timeout_s: Float = Field(600.0, gt=0, le=DAY_S)

    @field_validator("path")
    @classmethod
    def _existing_folder(cls, value: Path) -> Path:
        path = value.expanduser().resolve()
        if not path.is_dir():
            what = "is not a directory" if path.exists() else "does not exist"
            raise ValueError(f"{path} {what}; give the folder of documents to search")
        return path


@dataclass(frozen=True)
class Doc:
    doc_id: str
    title: str
    text: str


@dataclass
class Index:
    """Documents of a corpus and their BM25 index (None when there are none).

    ``skipped`` says which files were left out and why: the index is built in
    a worker process, so the warnings are logged by the parent.
    """

    docs: list[Doc]
    bm25: bm25s.BM25 | None
    skipped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_id = {doc.doc_id: doc for doc in self.docs}

    def search(self, query: str, k: int) -> list[tuple[Doc, float]]:
        if self.bm25 is None:
            return []
        vocab = self.bm25.vocab_dict
        tokens = [t for t in query_tokens(query) if t in vocab]
        if not tokens:
            return []
        k = min(k, len(self.docs))
        found, scores = self.bm25.retrieve([tokens], k=k, show_progress=False)
        return [
            (self.docs[int(i)], float(s)) for i, s in zip(found[0], scores[0], strict=True) if s > 0
        ]


#: One file as the manifest records it: (path inside the folder, size, mtime_ns).
Entry = tuple[str, int, int]


def make_tools(ctx: ToolContext) -> list[BaseTool]:
    options: Options = ctx.options
    root = options.path
    lock = asyncio.Lock()
    loaded: list[Index] = []

    async def index() -> Index:
        async with lock:  # parallel first calls build (or load) once
            if not loaded:
                try:
                    opened = await asyncio.to_thread(open_index, root, options.index_timeout_s)
                    loaded.append(opened)
                except OSError as exc:
                    raise ToolException(f"cannot index the documents in {root}: {exc}") from None
            return loaded[0]

    async def local_search(query: str, top_k: int | None = None) -> str:
        """Search the local document collection (offline, private files) with keywords;
        read a result with read_document.

        Args:
            query: Keywords to look for; exact names, places and dates work best.
            top_k: How many results to return (default set by the flow, at most 50).

        Returns:
            JSON like a web search: "organic" lists the matches best first, each with
            title, link (doc://<doc_id>), snippet, position, doc_id and offset (where
            the snippet starts); an empty list means no document matched.
        """
        k = options.top_k if top_k is None else top_k
        if not 1 <= k <= MAX_TOP_K:
            raise ToolException(f"top_k must be between 1 and {MAX_TOP_K}; got {k}")
        if not query.strip():
            raise ToolException("the query is empty; give keywords to search for")
        corpus = await index()
        rows = await asyncio.to_thread(organic, corpus, query, k, options.snippet_chars)
        result = {"searchParameters": {"q": query, "num": k}, "organic": rows}
        return json.dumps(result, ensure_ascii=False)

    async def read_document(doc_id: str, offset: int = 0) -> str:
        """Read a document of the local collection, found with local_search, as text.
        Long documents come a part at a time; the end says how to read on.

        Args:
            doc_id: The document's doc_id (or its doc:// link) from local_search results.
            offset: Character position to start reading at (0 for the beginning).

        Returns:
            A line with the document's title, link and the characters shown, then the
            text. When more follows, a last line says how many characters are left and
            which offset to read on from. An unknown doc_id gives an error message.
        """
        corpus = await index()
        doc = find_doc(corpus, doc_id)
        return excerpt(doc, offset, options.max_chars)

    search_tool = StructuredTool.from_function(
        coroutine=local_search, parse_docstring=True, handle_tool_error=False
    )
    search_tool.metadata = {DEDUPE_KEY: ["query"]}
    read_tool = StructuredTool.from_function(
        coroutine=read_document, parse_docstring=True, handle_tool_error=False
    )
    read_tool.metadata = {DEDUPE_KEY: ["doc_id", "offset"]}
    return [on_server(search_tool, SERVER), on_server(read_tool, SERVER)]


# --- answers -------------------------------------------------------------------------


def organic(corpus: Index, query: str, k: int, snippet_chars: int) -> list[dict[str, Any]]:
    """The best ``k`` matches of ``query`` as Google organic results, numbered from 1."""
    rows = []
    for position, (doc, _score) in enumerate(corpus.search(query, k), start=1):
        offset, snippet = best_snippet(doc.text, query, snippet_chars)
        rows.append(
            {
                "title": doc.title,
                "link": SCHEME + doc.doc_id,
                "snippet": snippet,
                "position": position,
                "doc_id": doc.doc_id,
                "offset": offset,
            }
        )
    return rows


def find_doc(corpus: Index, doc_id: str) -> Doc:
    """The document ``doc_id`` names (``doc://`` and a leading ``./`` or ``/`` accepted)."""
    wanted = doc_id.strip().removeprefix(SCHEME).replace("\\", "/").removeprefix("./").lstrip("/")
    doc = corpus.by_id.get(wanted)
    if doc is not None:
        return doc
    same_name = [d for d in corpus.docs if d.doc_id.rsplit("/", 1)[-1] == wanted]
    if len(same_name) == 1:
        return same_name[0]
    raise ToolException(
        f"unknown doc_id {doc_id!r}; doc_ids come from local_search results"
        f" (the doc_id field, or the link after {SCHEME}); the collection has"
        f" {len(corpus.docs)} documents"
    )


def excerpt(doc: Doc, offset: int, max_chars: int) -> str:
    """``doc``'s text from ``offset``, at most ``max_chars``, saying how to read on."""
    total = len(doc.text)
    if offset < 0 or (offset >= total and offset > 0):
        raise ToolException(
            f"offset {offset} is outside {doc.doc_id!r}, which has {total} characters;"
            f" use an offset from 0 to {max(total - 1, 0)}"
        )
    end = min(offset + max_chars, total)
    if end < total:  # end at a line or word break when one is near
        cut = max(doc.text.rfind("\n", offset, end), doc.text.rfind(" ", offset, end))
        if cut > offset + max_chars * 0.9:
            end = cut + 1
    head = f"{doc.title} ({SCHEME}{doc.doc_id}), characters {offset}-{end} of {total}"
    body = f"{head}\n\n{doc.text[offset:end]}"
    if end < total:
        body += (
            f"\n{TRUNCATED} {total - end} more characters; to read on, call"
            f' read_document with doc_id="{doc.doc_id}" and offset={end}'
        )
    return body


def query_tokens(query: str) -> list[str]:
    tokens = bm25s.tokenize(
        query, stopwords=STOPWORDS, return_ids=False, show_progress=False, allow_empty=False
    )
    return list(tokens[0]) if tokens else []


def best_snippet(text: str, query: str, size: int) -> tuple[int, str]:
    """The offset and text of the passage of ``size`` characters with most query words."""
    terms = set(query_tokens(query))
    hits = [(m.start(), m.group().lower()) for m in _WORD.finditer(text)]
    hits = [(pos, word) for pos, word in hits if word in terms]
    start = 0
    if hits:
        span = int(size * 0.8)
        best: tuple[int, int] = (0, 0)
        j = 0
        for i, (pos, _) in enumerate(hits):
            j = max(j, i)
            while j + 1 < len(hits) and hits[j + 1][0] < pos + span:
                j += 1
            window = hits[i : j + 1]
            score = (len({w for _, w in window}), len(window))
            if score > best:
                best, start = score, pos
        start = max(0, start - (size - span) // 2)
        if start > 0:  # begin at a word
            space = text.rfind(" ", max(0, start - 20), start)
            start = space + 1 if space >= 0 else start
    end = min(len(text), start + size)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > start else end
    snippet = _SPACE.sub(" ", text[start:end]).strip()
    return start, ("…" if start > 0 else "") + snippet + ("…" if end < len(text) else "")


# --- the index and its cache ------------------------------------------------------------


def cache_root(root: Path) -> Path:
    """Where the index of the folder ``root`` (an absolute path) is cached."""
    key = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    return mirograph_home() / "corpus-index" / key


def scan(root: Path) -> list[Entry]:
    """Every indexable regular file under ``root`` (hidden files and folders, and links,
    left out), sorted."""
    entries = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith(".") or Path(name).suffix.lower() not in SUFFIXES:
                continue
            path = Path(folder, name)
            try:
                info = path.stat(follow_symlinks=False)
            except OSError:  # gone since listed
                continue
            if not stat.S_ISREG(info.st_mode):  # links are skipped: they may lead outside
                continue
            entries.append((path.relative_to(root).as_posix(), info.st_size, info.st_mtime_ns))
    return sorted(entries)


def open_index(
    root: Path, limit_s: float = Options.model_fields["index_timeout_s"].default
) -> Index:
    """The index of ``root``: loaded from the cache when no file changed, else built.

    Building (reading PDFs and HTML, tokenizing) is CPU-bound and may meet
    hostile files, so it runs in a worker process killed after ``limit_s``.
    """
    manifest = scan(root)
    record = {
        "format": INDEX_FORMAT,
        "bm25s": bm25s.__version__,
        "root": str(root),
        "files": manifest,
    }
    generation = hashlib.sha256(json.dumps(record).encode()).hexdigest()[:16]
    base = cache_root(root)
    final = base / generation
    if (final / "manifest.json").is_file():
        try:
            return load_index(final)
        except Exception as exc:  # a damaged cache is rebuilt, not fatal
            logger.warning("rebuilding the damaged corpus index %s: %s", final, exc)
            shutil.rmtree(final, ignore_errors=True)
    corpus = build_bounded(root, manifest, limit_s)
    for warning in corpus.skipped:
        logger.warning("%s", warning)
    base.mkdir(parents=True, exist_ok=True)
    staging = base / f".tmp-{uuid.uuid4().hex}"
    try:
        save_index(corpus, record, staging)
        staging.rename(final)  # atomic: a cache directory is complete or absent
    except OSError as exc:
        if not (final / "manifest.json").is_file():  # unless a parallel build won the race
            logger.warning("cannot cache the corpus index in %s: %s", base, exc)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _prune(base, keep=generation)
    return corpus


def _prune(base: Path, keep: str) -> None:
    """Remove earlier generations of an index, and builds abandoned an hour ago or more."""
    stale = time.time() - 3600
    for old in base.iterdir():
        if old.name == keep:
            continue
        with contextlib.suppress(OSError):
            if not old.name.startswith(".tmp-") or old.stat().st_mtime < stale:
                shutil.rmtree(old, ignore_errors=True)


def build_bounded(root: Path, manifest: list[Entry], limit_s: float) -> Index:
    """``build_index`` in a worker process, stopped after ``limit_s`` seconds."""
    what = f"indexing the documents in {root}"
    return run_bounded_sync(build_index, root, manifest, limit_s=limit_s, what=what)


def build_index(root: Path, manifest: list[Entry]) -> Index:
    """Read every file of ``manifest`` and index it; unreadable files are skipped."""
    docs: list[Doc] = []
    skipped: list[str] = []
    for rel, size, _ in manifest:
        if size > MAX_FILE_BYTES:
            skipped.append(f"skipping {root / rel}: larger than {MAX_FILE_BYTES} bytes")
            continue
        try:
            doc = read_doc(root, rel)
        except Exception as exc:  # one bad file must not stop the corpus
            skipped.append(f"skipping {root / rel}: cannot read it: {exc}")
            continue
        if not doc.text.strip():
            skipped.append(f"skipping {root / rel}: no text found in it")
            continue
        docs.append(doc)
    if not docs:
        return Index([], None, skipped)
    texts = [f"{_words_of(doc.title)}\n{doc.text}" for doc in docs]
    tokens = bm25s.tokenize(texts, stopwords=STOPWORDS, show_progress=False)
    bm25 = bm25s.BM25()
    bm25.index(tokens, show_progress=False)
    return Index(docs, bm25, skipped)


def save_index(corpus: Index, record: dict[str, Any], folder: Path) -> None:
    folder.mkdir(parents=True)
    with (folder / "docs.jsonl").open("w", encoding="utf-8") as out:
        for doc in corpus.docs:
            row = {"doc_id": doc.doc_id, "title": doc.title, "text": doc.text}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    if corpus.bm25 is not None:
        corpus.bm25.save(str(folder / "bm25"), show_progress=False)
    (folder / "manifest.json").write_text(json.dumps(record, indent=1), encoding="utf-8")


def load_index(folder: Path) -> Index:
    with (folder / "docs.jsonl").open(encoding="utf-8") as rows:
        docs = [Doc(**json.loads(line)) for line in rows if line.strip()]
    bm25 = None
    if docs:
        bm25 = bm25s.BM25.load(str(folder / "bm25"), show_progress=False, verbosity=0)
    return Index(docs, bm25)


# --- reading files -----------------------------------------------------------------------


def read_doc(root: Path, rel: str) -> Doc:
    """The title and text of the file ``rel`` under ``root``."""
    path = root / rel
    kind = SUFFIXES[path.suffix.lower()]
    body = path.read_bytes()
    if kind == "pdf":
        title, text = _pdf(body)
    elif kind == "html":
        title, text = _html(body, rel)
    else:
        text = body.decode("utf-8-sig", errors="replace").strip()
        heading = _HEADING.search(text) if kind == "markdown" else None
        title = heading.group(1).strip() if heading else ""
    return Doc(rel, _SPACE.sub(" ", title).strip() or path.name, text)


def _html(body: bytes, rel: str) -> tuple[str, str]:
    from mirograph.agents.tools.scrape import Page, page_text

    text = page_text(Page(SCHEME + rel, "text/html", None, body, True))
    found = _TITLE.search(body[:65536].decode("utf-8", errors="replace"))
    return (html.unescape(found.group(1)) if found else ""), text


def _pdf(body: bytes) -> tuple[str, str]:
    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(body))
    text = "\n\n".join((page.extract_text() or "").strip() for page in reader.pages).strip()
    title = ""
    with contextlib.suppress(Exception):  # metadata is optional and often malformed
        title = str((reader.metadata and reader.metadata.title) or "")
    return title, text


def _words_of(title: str) -> str:
    """A title as words to index (file names split at ``_``, ``-`` and ``.``)."""
    return re.sub(r"[_\-.]+", " ", title)
