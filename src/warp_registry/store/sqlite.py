"""SQLite engine: WAL mode, quick reads on the event loop, writes on one writer thread.

A primary-key read costs tens of microseconds, less than a hand-off to a thread, so
`fetch_one` runs on the caller's thread. Reads that may scan (`fetch_all`) and every write
run on worker threads so a long query or a lock wait never stalls the event loop. Writes
in one process are serialised by an asyncio lock and begin with BEGIN IMMEDIATE, so
SQLite never has to abort a transaction to break a deadlock; between processes the
busy timeout waits, and a still-busy write is retried whole. Each write has
`WRITE_BUDGET_S` from the moment it asks, waiting for this process's earlier writes
included; one still blocked after that (another process holding the write lock: a seed, a
long import) raises StoreUnavailable, which the API answers with 503, having written
nothing.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from warp_registry.store.database import (
    Database,
    Params,
    Row,
    StoreUnavailable,
    Transaction,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

_BUSY_TIMEOUT_MS = 10_000
WRITE_BUDGET_S = 60.0
# The writer's page cache, in KiB (negative, as the pragma takes it). A bulk write
# touches index pages all over a large fleet's file; SQLite's default 2 MiB keeps few of
# them, so each statement re-reads them. Filled only by writes, and bounded.
_WRITER_CACHE_KIB = -32_768


def _connect(path: str, busy_timeout_ms: int = _BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


class ThreadTransaction(Transaction):
    """Statements of one transaction on one SQLite connection, run on `thread`.

    `thread` is an executor with a single worker that owns the connection: the
    statements and the ROLLBACK of an interrupted transaction queue behind each other on
    it, so a cancelled caller can never end the transaction under a statement still
    running (which would then go on in autocommit mode). `counted` is told of each
    statement (the store's query counter).
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        thread: ThreadPoolExecutor,
        counted: Callable[[], None] | None = None,
    ) -> None:
        self._conn = conn
        self._thread = thread
        self._counted = counted

    async def run(self, fn: Callable[[], T]) -> T:
        if self._counted is not None:
            self._counted()
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        return await self.run(lambda: self._conn.execute(sql, params).fetchone())

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        return await self.run(lambda: self._conn.execute(sql, params).fetchall())

    async def execute(self, sql: str, params: Params = ()) -> int:
        return await self.run(lambda: self._conn.execute(sql, params).rowcount)

    async def execute_many(self, sql: str, rows: Sequence[Params]) -> None:
        await self.run(lambda: self._conn.executemany(sql, rows))


class SqliteDatabase(Database):
    dialect = "sqlite"

    def __init__(
        self,
        path: str,
        busy_timeout_ms: int = _BUSY_TIMEOUT_MS,
        write_budget_s: float = WRITE_BUDGET_S,
    ) -> None:
        self.path = path
        self.write_budget_s = write_budget_s
        self._query_count = 0
        self._reader = _connect(path)
        self._reader.execute("PRAGMA journal_mode = WAL")
        self._write_conn = _connect(path, busy_timeout_ms)
        self._write_conn.execute(f"PRAGMA cache_size = {_WRITER_CACHE_KIB}")
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._scanners = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sqlite-reader")
        self._scanner_conns = threading.local()
        self._write_lock = asyncio.Lock()

    def _count_query(self) -> None:
        self._query_count += 1

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        self._query_count += 1
        return self._reader.execute(sql, params).fetchone()  # type: ignore[no-any-return]

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        self._query_count += 1
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._scanners, self._scan, sql, params)

    def _scan(self, sql: str, params: Params) -> list[Row]:
        conn = getattr(self._scanner_conns, "conn", None)
        if conn is None:
            conn = self._scanner_conns.conn = _connect(self.path)
        return conn.execute(sql, params).fetchall()

    async def write(self, work: Callable[[Transaction], Awaitable[T]]) -> T:
        deadline = time.monotonic() + self.write_budget_s
        try:
            await asyncio.wait_for(self._write_lock.acquire(), self.write_budget_s)
        except TimeoutError:
            raise self._held_up() from None
        try:
            attempt = 1
            while True:
                try:
                    return await self._attempt(work)
                except sqlite3.OperationalError as exc:
                    # Each attempt waited up to the busy timeout inside SQLite already.
                    if not _is_busy(exc):
                        raise
                    if time.monotonic() >= deadline:
                        raise self._held_up() from exc
                    log.info("sqlite busy, retrying write (attempt %d)", attempt)
                    await asyncio.sleep(0.01 * attempt)
                    attempt += 1
        finally:
            self._write_lock.release()

    def _held_up(self) -> StoreUnavailable:
        return StoreUnavailable(
            f"{self.path}: the write lock stayed taken for {self.write_budget_s:.0f} s "
            "(another process is writing); nothing was written"
        )

    async def _attempt(self, work: Callable[[Transaction], Awaitable[T]]) -> T:
        tx = ThreadTransaction(self._write_conn, self._writer, self._count_query)
        await tx.run(lambda: self._write_conn.execute("BEGIN IMMEDIATE"))
        try:
            result = await work(tx)
        except BaseException:
            await tx.run(self._rollback)
            raise
        await tx.run(lambda: self._write_conn.execute("COMMIT"))
        return result

    def _rollback(self) -> None:
        if self._write_conn.in_transaction:
            self._write_conn.execute("ROLLBACK")

    async def write_exclusive(self, work: Callable[[Transaction], Awaitable[T]]) -> T:
        # BEGIN IMMEDIATE already excludes every other writer, in any process.
        return await self.write(work)

    async def run_script(self, statements: Sequence[str]) -> None:
        async def apply(tx: Transaction) -> None:
            for statement in statements:
                await tx.execute(statement)

        await self.write(apply)

    async def close(self) -> None:
        self._writer.shutdown(wait=True)
        self._scanners.shutdown(wait=True)
        self._reader.close()
        self._write_conn.close()


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text
