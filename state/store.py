"""Checkpoint-store factory: a URL in, a checkpointer and a run registry out.

``sqlite:///path`` is the embedded default. Every agent turn is committed
before the next model call starts (the graph runs with ``durability="sync"``),
so the store is where a killed run continues from.

Only the registry is imported up front: ``open_registry`` serves ``ls`` and
``pause`` without loading LangGraph's checkpoint code.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mirograph.errors import StoreURLError, UserInputError
from mirograph.state.registry import SqliteRunRegistry

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver

    from mirograph.state.blobs import BlobStore
    from mirograph.state.events import EventStore
    from mirograph.state.leases import Lease
    from mirograph.state.postgres.files import PostgresFiles


def mirograph_home() -> Path:
    """``$MIROGRAPH_HOME``, default ``~/.mirograph``: runs, workspaces, the default store."""
    return Path(os.environ.get("MIROGRAPH_HOME") or Path.home() / ".mirograph").expanduser()


def default_store_url() -> str:
    return f"sqlite:///{mirograph_home() / 'runs.db'}"


def shown_url(url: str) -> str:
    """``url`` with any password replaced: store URLs are named in errors and logs."""
    from mirograph.state.redact import without_url_passwords

    return without_url_passwords(url)


def is_postgres_url(url: str | None) -> bool:
    """Whether ``url`` names a PostgreSQL store (``postgresql://`` or ``postgres://``)."""
    return bool(url) and str(url).startswith(("postgresql://", "postgres://"))


def sqlite_path(url: str) -> Path:
    """The file of a SQLite URL: ``sqlite:///relative/path`` or ``sqlite:////absolute/path``."""
    if not url.startswith("sqlite:///"):
        raise StoreURLError(f"not a sqlite URL: {url!r}")
    raw = url.removeprefix("sqlite:///")
    if not raw:
        raise StoreURLError(f"store URL {url!r} names no file; use sqlite:///path/to/runs.db")
    return Path(raw).expanduser()


@dataclass
class Store:
    url: str
    checkpointer: BaseCheckpointSaver
    registry: SqliteRunRegistry
    blobs: BlobStore
    #: Drops writes of an interrupted step that no checkpoint committed (its blobs).
    discard_uncommitted: Callable[[], None] = lambda: None
    #: Whether an exception means the store itself went away (a server store's
    #: connection lost): the run stopped at its last checkpoint, resumable.
    is_outage: Callable[[BaseException], bool] = lambda exc: False
    #: Fences the run's checkpoint writes by its lease (``fence(lease)`` when a session
    #: takes it, ``unfence(lease)`` when it ends): a runner that lost it writes nothing.
    fence: Callable[[Lease], None] = lambda lease: None
    unfence: Callable[[Lease], None] = lambda lease: None
    #: The runs' event streams (a SQLite store's: files under ``$MIROGRAPH_HOME``).
    events: EventStore = field(default_factory=lambda: _local_events())
    #: Where a server store keeps runs' workspace files (None: they stay on this machine).
    files: PostgresFiles | None = None


def _local_events() -> EventStore:
    from mirograph.state.events import FileEvents

    return FileEvents(lambda run_id: mirograph_home() / "runs" / run_id)


@asynccontextmanager
async def open_store(
    url: str | None = None, *, lease_ttl_s: float | None = None
) -> AsyncIterator[Store]:
    """Open the store at ``url`` (default: the SQLite file under ``$MIROGRAPH_HOME``).

    A location that cannot hold a store (a directory, a file that is not a
    SQLite database, a path under a file, a directory that cannot be written)
    raises ``StoreURLError``: one line naming the path and the fix.

    ``lease_ttl_s`` (default ``$MIROGRAPH_LEASE_TTL_S``, else the leases' own): how
    long a runner's lease outlives its last renewal, so how soon a runner on a lost
    machine is taken over from another host (workers use a short one).
    """
    ttl = lease_ttl(lease_ttl_s)
    if is_postgres_url(url):
        from mirograph.state.postgres.store import open_postgres

        async with open_postgres(str(url)) as opened:
            _set_lease_ttl(opened, ttl)
            yield opened
        return
    path, fix = _location(url)
    async with _open_sqlite(url or default_store_url(), path, fix=fix) as store:
        _set_lease_ttl(store, ttl)
        yield store


#: Sets the lease TTL of every store a process opens (``mirograph worker`` sets it).
LEASE_TTL_ENV = "MIROGRAPH_LEASE_TTL_S"


def lease_ttl(explicit: float | None = None) -> float | None:
    """The lease TTL to use: ``explicit``, else ``$MIROGRAPH_LEASE_TTL_S``, else None
    (the leases' default)."""
    if explicit is not None:
        return explicit
    raw = os.environ.get(LEASE_TTL_ENV, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise UserInputError(
            f"{LEASE_TTL_ENV}={raw!r} is not a positive number of seconds; set it to e.g. 20"
            " or unset it"
        )
    return value


def _set_lease_ttl(store: Store, ttl: float | None) -> None:
    """Leases taken through ``store`` expire ``ttl`` s after their last renewal,
    renewed at least four times per TTL."""
    if ttl is None:
        return
    from mirograph.state.leases import RENEW_EVERY_S

    leases = store.registry.leases
    leases.ttl_s = ttl
    leases.renew_every_s = min(RENEW_EVERY_S, ttl / 4)


_URL_FIX = "pass --store sqlite:///path/to/runs.db naming a file in a writable directory"
_HOME_FIX = (
    "set MIROGRAPH_HOME (now {home}) to a writable directory,"
    " or pass --store sqlite:///path/to/runs.db"
)


@asynccontextmanager
async def open_registry(url: str | None = None) -> AsyncIterator[SqliteRunRegistry]:
    """Only the run registry of the store at ``url``: listing runs and asking one to
    pause need no checkpoint code. Bad locations fail as ``open_store``'s do."""
    if is_postgres_url(url):
        from mirograph.state.postgres.registry import PostgresRunRegistry

        shared = PostgresRunRegistry(str(url))
        try:
            yield shared  # type: ignore[misc]
        finally:
            shared.close()
        return
    path, fix = _location(url)
    _prepare_location(path, fix)
    try:
        registry = SqliteRunRegistry(path)
    except sqlite3.Error as exc:
        raise _open_error(path, exc, fix) from None
    try:
        yield registry
    finally:
        registry.close()


def _location(url: str | None) -> tuple[Path, str]:
    """The SQLite file of ``url`` (default: under ``$MIROGRAPH_HOME``) and the fix to
    name when it cannot hold a store."""
    if url is None:
        return sqlite_path(default_store_url()), _HOME_FIX.format(home=mirograph_home())
    if url.startswith("sqlite:///"):
        return sqlite_path(url), _URL_FIX
    scheme = url.split(":", 1)[0]
    raise StoreURLError(
        f"unsupported store URL scheme {scheme!r} in {url!r}; use sqlite:///path/to/runs.db"
        " or postgresql://USER@HOST:PORT/DATABASE"
    )


@asynccontextmanager
async def _open_sqlite(url: str, path: Path, *, fix: str) -> AsyncIterator[Store]:
    from mirograph.state.blobs import SqliteBlobStore, create_blob_table
    from mirograph.state.serde import message_serializer
    from mirograph.state.sqlite_file import SqliteFile
    from mirograph.state.sqlite_saver import LoopSqliteSaver, create_checkpoint_tables

    _prepare_location(path, fix)
    file = SqliteFile.share(path)
    registry: SqliteRunRegistry | None = None
    try:
        try:
            await file.open(create_checkpoint_tables, create_blob_table)
            registry = SqliteRunRegistry(path)
        except sqlite3.Error as exc:
            raise _open_error(path, exc, fix) from None
        blobs = SqliteBlobStore(file)
        saver = LoopSqliteSaver(file, serde=message_serializer(), blobs=blobs)
        yield Store(
            url=url,
            checkpointer=saver,
            registry=registry,
            blobs=blobs,
            discard_uncommitted=blobs.discard_staged,
            fence=saver.fences.fence,
            unfence=saver.fences.unfence,
        )
    finally:
        if registry is not None:
            registry.close()
        await file.release()


def _prepare_location(path: Path, fix: str) -> None:
    """Create the store's directory, or say in one line why ``path`` cannot be a store."""
    if path.is_dir():
        raise StoreURLError(f"store path {path} is a directory, not a file; {fix}")
    blocker = next((p for p in path.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise StoreURLError(f"store path {path} is under {blocker}, which is a file; {fix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreURLError(
            f"cannot create the directory {path.parent} for store {path}"
            f" ({exc.strerror or exc}); {fix}"
        ) from None


def _open_error(path: Path, exc: sqlite3.Error, fix: str) -> StoreURLError:
    """One line for a store file SQLite cannot open or write."""
    reason = str(exc)
    if "not a database" in reason:
        return StoreURLError(
            f"{path} is not a SQLite database, so it cannot be a store;"
            " pass --store sqlite:///path/to/runs.db naming a store or a new file"
        )
    if not path.exists():
        return StoreURLError(
            f"cannot create store {path}: its directory {path.parent} is not writable; {fix}"
        )
    if "readonly" in reason or "unable to open" in reason:
        return StoreURLError(f"store {path} cannot be written ({reason}); {fix}")
    return StoreURLError(f"cannot open store {path} ({reason}); {fix}")
