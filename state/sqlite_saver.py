"""LangGraph's SqliteSaver on the store file's shared connection, with compact versions.

All runs of this process share one connection per file (``SqliteFile``).
Reads run on the file's thread; a write runs at once when it need not wait
(nothing queued, SQLite's lock free), else on that thread. Either way the
event loop never waits on SQLite's lock, and a write transaction never
outlives the call that opened it. A step's staged blobs are inserted in the
same transaction as the step's next write, so a checkpoint that refers to a
blob is never committed without it.

A run's thread is fenced by its lease while a session holds it (``fence``):
each write of the thread (any namespace: sub-agents' too) then starts with
``BEGIN IMMEDIATE`` and reads the lease row under that write lock, so a runner
that lost its lease writes nothing (``LeaseLostError``), and an acquirer, which
takes the same lock, is ordered after every fenced write it did not see.

Channel versions are short strings that sort like numbers and that the stock
savers can continue (see ``get_next_version``), so a thread moves between
mirograph and ``SqliteSaver``/``AsyncSqliteSaver`` in either direction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    SerializerProtocol,
)
from langgraph.checkpoint.sqlite import SqliteSaver

from mirograph.errors import LeaseLostError
from mirograph.state.blobs import SqliteBlobStore, write_blobs
from mirograph.state.leases import LEASE_COLUMNS, Fences, Lease
from mirograph.state.registry import lease_lost
from mirograph.state.sqlite_file import NotNow, SqliteFile, is_busy

#: Lead characters of compact versions of 1 to 6 digits: whitespace, which ``int()``
#: skips, in increasing order, and all below ``"0"``.
_LEADS = "\t\n\x0b\x0c\r "


def compact_version(n: int) -> str:
    """Version ``n`` as mirograph writes it: ``"\\n42"`` (2 digits, so ``"\\n"``).

    The stock savers write ``f"{n:032}.{random}"`` (about 50 bytes, for every
    channel of every checkpoint). Ours is the digits led by one whitespace
    character that encodes their count: it sorts like the number among ours,
    below every stock version (whitespace sorts before ``0``), and
    ``int(v.split(".")[0])`` (the stock savers' parse) reads it, so a stock
    saver can continue our thread. Past six digits the stock form follows.
    """
    digits = str(n)
    if len(digits) > len(_LEADS):
        return stock_version(n)
    return _LEADS[len(digits) - 1] + digits


def stock_version(n: int) -> str:
    """The stock savers' form, without their random fraction (a thread has one writer)."""
    return f"{n:032}"


def create_checkpoint_tables(conn: sqlite3.Connection) -> None:
    """LangGraph's checkpoint schema (and its migrations), once per file per process."""
    SqliteSaver(conn).setup()


class LoopSqliteSaver(SqliteSaver):
    """``SqliteSaver`` whose async methods never wait on the event loop."""

    def __init__(
        self,
        file: SqliteFile,
        *,
        serde: SerializerProtocol | None = None,
        blobs: SqliteBlobStore | None = None,
    ) -> None:
        super().__init__(file.conn, serde=serde)
        self.file = file
        self.lock = file.lock  # one lock per connection, whoever uses it
        self.is_setup = True  # ``create_checkpoint_tables`` ran when the file was opened
        self._blobs = blobs
        #: The first write that failed (shared with the copies LangGraph makes of a saver);
        #: a write refused by its fence is not one: it stops only its own run.
        self._failed: list[BaseException] = []
        #: The leases its runs' writes are fenced by (``Store.fence``, ``Store.unfence``).
        self.fences = Fences()

    def get_next_version(self, current: str | int | None, channel: None) -> str | int:
        """The next version in the thread's own form: compact for new threads,
        integers for threads of older mirograph versions, the stock form for
        threads a stock saver wrote (a compact version would sort below it)."""
        if current is None:
            return compact_version(1)
        if isinstance(current, int):
            return current + 1
        following = int(current.split(".")[0]) + 1
        return compact_version(following) if current[0] in _LEADS else stock_version(following)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self.file.call(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        def read() -> list[CheckpointTuple]:
            return list(self.list(config, filter=filter, before=before, limit=limit))

        for item in await self.file.call(read):
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        staged = self._staged_blobs()
        args = (config, checkpoint, metadata, new_versions)
        fence = self.fences.of(config["configurable"]["thread_id"])
        try:
            return self.file.now(self._write, staged, fence, self.put, args, False)
        except NotNow:
            return await self.file.call(self._write, staged, fence, self.put, args, True)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        staged = self._staged_blobs()
        args = (config, writes, task_id, task_path)
        fence = self.fences.of(config["configurable"]["thread_id"])
        try:
            self.file.now(self._write, staged, fence, self.put_writes, args, False)
        except NotNow:
            # Queued, not awaited: the thread commits in call order, so these writes
            # land before the checkpoint that follows them, and a failure fails that
            # checkpoint (and every later write) instead of going unseen. (A fence that
            # refused them refuses that checkpoint too: a lost lease never comes back.)
            self.file.submit(self._write, staged, fence, self.put_writes, args, True)

    async def adelete_thread(self, thread_id: str) -> None:
        fence = self.fences.of(thread_id)
        if fence is None:
            await self.file.call(self.delete_thread, thread_id)
        else:  # a runner that lost the lease cannot delete what the new one writes
            await self.file.call(self._write, {}, fence, self.delete_thread, (thread_id,), True)

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return await self.file.call(
            lambda: self.get_delta_channel_history(config=config, channels=channels)
        )

    def _staged_blobs(self) -> dict[str, str]:
        """Blobs put since the last write: they are committed with this one."""
        return self._blobs.take_staged() if self._blobs is not None else {}

    def _write(
        self,
        staged: dict[str, str],
        fence: Lease | None,
        write: Any,
        args: tuple[Any, ...],
        waited: bool,
    ) -> Any:
        """``write(*args)`` in one transaction with the inserts of ``staged``;
        refused once a write of this saver failed (a later one may refer to it).
        With ``fence``: only while that lease is still the run's, read once the
        write lock is held. ``waited``: with the busy timeout; a lock held
        elsewhere is then a failure, not a reason to queue the write."""
        with self.lock:
            if self._failed:
                raise self._failed[0]
            try:
                if fence is not None:
                    self._hold_fence(fence, staged)
                if staged:
                    write_blobs(self.conn, staged)
                result = write(*args)  # commits, blobs included
            except LeaseLostError:
                raise  # nothing written; the other runs of this saver write on
            except BaseException as exc:
                if self.conn.in_transaction:  # never leave the write lock held
                    self.conn.rollback()
                if waited or not is_busy(exc):
                    self._failed.append(exc)
                raise
        self.file.wrote()
        return result

    def _hold_fence(self, fence: Lease, staged: dict[str, str]) -> None:
        """Open the write's transaction with SQLite's write lock and go on only while
        ``fence`` is the run's lease; else commit ``staged`` alone (blobs another run
        of this saver may refer to: keyed by content, harmless) and refuse."""
        self.conn.execute("BEGIN IMMEDIATE")
        row = self.conn.execute(
            f"SELECT run_id, {LEASE_COLUMNS} FROM mirograph_leases WHERE run_id = ?",
            (fence.run_id,),
        ).fetchone()
        current = Lease(*row) if row else None
        if current is not None and (current.token, current.owner) == (fence.token, fence.owner):
            return
        if staged:
            write_blobs(self.conn, staged)
        self.conn.commit()
        live = current is not None and current.is_live()
        raise lease_lost(fence.run_id, current if live else None)
