"""LangGraph's PostgreSQL checkpointer, shaped for many concurrent runs.

The stock ``AsyncPostgresSaver`` serialises every call of a process behind one
lock, even over a connection pool. Here each call takes its own pooled
connection, in a transaction; blobs are committed when they are put
(``PostgresBlobStore``), so a checkpoint that refers to one never lacks it.
Channel versions are the compact ones of the SQLite store
(``state.sqlite_saver.compact_version``): a few bytes instead of ~50 for every
channel of every checkpoint.

A run's thread is fenced by its lease while a session holds it (``fence``):
each write of the thread (any namespace: sub-agents' too) first reads the lease
row ``FOR KEY SHARE`` in the write's transaction (one round trip more: pipelined
with ``BEGIN`` it measured slower, psycopg's pipeline mode costing more than a
local round trip), and writes only while it is still this session's
(``LeaseLostError`` else). The row lock makes an acquirer's ``SELECT … FOR
UPDATE`` wait for the write's commit, so a takeover is ordered after every
fenced write it did not see; a renewal's plain ``UPDATE`` does not wait for
the writes (key-share locks let non-key updates through).

A run may register a hook that each write of its thread awaits first
(``before_write``): the run's workspace files are sent before the checkpoint that
follows the tool call that wrote them, so a checkpoint never refers to work whose
files a crash lost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.base import SerializerProtocol
from psycopg import AsyncCursor
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from mirograph.state.leases import LEASE_COLUMNS, Fences, Lease
from mirograph.state.postgres.blobs import SCHEMA as BLOBS_SCHEMA
from mirograph.state.postgres.blobs import PostgresBlobStore
from mirograph.state.registry import lease_lost
from mirograph.state.sqlite_saver import _LEADS, compact_version, stock_version

#: The lease the write in progress (in this task) is fenced by; None: not fenced.
_FENCE: ContextVar[Lease | None] = ContextVar("mirograph_fence", default=None)


class PostgresSaver(AsyncPostgresSaver):
    """``AsyncPostgresSaver`` on a pool, one connection per call, blobs in its writes."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        *,
        serde: SerializerProtocol | None = None,
        blobs: PostgresBlobStore | None = None,
    ) -> None:
        super().__init__(pool, serde=serde)  # type: ignore[arg-type]
        self._pool = pool
        self._blobs = blobs
        #: The leases its runs' writes are fenced by (every run of the process).
        self.fences = Fences()
        #: Per run id: awaited before each write of its thread (``flows.workspace_sync``).
        self.before_write: dict[str, Callable[[], Awaitable[None]]] = {}

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        await self._before(config["configurable"]["thread_id"])
        with self._fenced(config["configurable"]["thread_id"]):
            return await super().aput(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self._before(config["configurable"]["thread_id"])
        with self._fenced(config["configurable"]["thread_id"]):
            await super().aput_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        with self._fenced(thread_id):
            await super().adelete_thread(thread_id)

    async def _before(self, thread_id: object) -> None:
        hook = self.before_write.get(str(thread_id)) if self.before_write else None
        if hook is not None:
            await hook()

    @contextmanager
    def _fenced(self, thread_id: object) -> Iterator[None]:
        """The stock write's ``_cursor`` (in this task) checks the thread's fence."""
        reset = _FENCE.set(self.fences.of(thread_id))
        try:
            yield
        finally:
            _FENCE.reset(reset)

    def get_next_version(self, current: str | int | None, channel: None) -> str:
        """The next version in the thread's own form (see ``state.sqlite_saver``)."""
        if current is None:
            return compact_version(1)
        if isinstance(current, int):
            return compact_version(current + 1)
        following = int(current.split(".")[0]) + 1
        return compact_version(following) if current[0] in _LEADS else stock_version(following)

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        """A cursor on a connection of the pool's own (several runs' calls at once; the
        blobs a write refers to are committed before it). A write (the stock saver asks
        for a pipeline) runs in a transaction that a fenced write starts with its fence
        check; reads, and ``aprune``'s own transaction, run as the stock saver runs them."""
        fence = _FENCE.get()
        write = pipeline or fence is not None
        async with (
            self._pool.connection() as conn,
            conn.transaction() if write else nullcontext(),
            conn.cursor(binary=True, row_factory=dict_row) as cur,
        ):
            if fence is not None:
                await _hold_fence(cur, fence)
            yield cur

    async def setup(self) -> None:
        """LangGraph's checkpoint schema and its migrations, and the blob table, once,
        in one transaction under an advisory lock: of processes opening a new store at
        once, one creates it and the others wait, then find it made. The migrations'
        ``CREATE INDEX CONCURRENTLY`` is run plainly: concurrently it waits for every
        open transaction, the waiting processes' included (a deadlock), and a build
        cut short leaves an invalid index that ``IF NOT EXISTS`` never repairs. The
        tables are new and empty here, so a plain build locks nothing for long."""
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('mirograph_checkpoints'))")
            async with conn.cursor(binary=True, row_factory=dict_row) as cur:
                await cur.execute(BLOBS_SCHEMA)
                await cur.execute(self.MIGRATIONS[0])
                await cur.execute("SELECT v FROM checkpoint_migrations ORDER BY v DESC LIMIT 1")
                row = await cur.fetchone()
                done = -1 if row is None else row["v"]
                for version in range(done + 1, len(self.MIGRATIONS)):
                    await cur.execute(_plain(self.MIGRATIONS[version]))
                    await cur.execute(
                        "INSERT INTO checkpoint_migrations (v) VALUES (%s)", (version,)
                    )


async def _hold_fence(cur: AsyncCursor[DictRow], fence: Lease) -> None:
    """Lock the run's lease row (key share) in the cursor's transaction and go on
    only while it is still ``fence``'s: else ``LeaseLostError``, nothing written."""
    await cur.execute(
        f"SELECT run_id, {LEASE_COLUMNS} FROM mirograph_leases WHERE run_id = %s FOR KEY SHARE",
        (fence.run_id,),
    )
    row = await cur.fetchone()
    current = Lease(**row) if row else None
    if current is not None and (current.token, current.owner) == (fence.token, fence.owner):
        return
    raise lease_lost(fence.run_id, current if current is not None and current.is_live() else None)


def _plain(statement: str) -> str:
    """A migration that builds an index ``CONCURRENTLY``, as a plain build."""
    return statement.replace(" CONCURRENTLY", "")
