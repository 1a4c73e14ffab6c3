"""PostgreSQL engine on asyncpg: a connection pool, serializable writes retried whole.

`SqlStore` writes its SQL once with `?` placeholders; this module rewrites each statement
to PostgreSQL's `$1..$n` once and caches the result.

Writes run at SERIALIZABLE isolation. SQLite runs one writer at a time, so every write
there behaves as if it ran alone; SERIALIZABLE gives PostgreSQL the same guarantee while
several processes write at once: when two transactions could not have run one after the
other, PostgreSQL aborts one with serialization_failure (40001), and `write` runs it again
from the start. Deadlocks (40P01) are retried the same way. So a read-then-write in the
store (check a row, then insert) needs no lock in Python memory on either engine.

Reads take a pooled connection for one statement each. A connection that turns out to be
dead (the server restarted, a proxy dropped it) is replaced and the statement runs again
on a new one; a write is run again only if the connection died before COMMIT was sent,
so that no write can happen twice. A database that cannot be reached at all raises
StoreUnavailable, which the API answers with 503.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg

from warp_registry.store import describe_database
from warp_registry.store.database import (
    Database,
    Params,
    Row,
    StoreUnavailable,
    Transaction,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

DEFAULT_POOL_SIZE = 10

# The advisory lock `write_exclusive` takes (migrations): two processes starting at once
# change the schema one after the other.
SCHEMA_LOCK_KEY = 7436521

# Conflicts that mean "run the transaction again": serialization_failure, deadlock_detected.
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})
_MAX_ATTEMPTS = 60
_BACKOFF_BASE_S = 0.002
_BACKOFF_CAP_S = 0.2

# PostgreSQL errors that mean the database cannot serve us now, by SQLSTATE class:
# 08 connection, 28 authorisation, 3D no such database, 53 resources (too many
# connections), 57 operator intervention (shutdown, cancel).
_UNAVAILABLE_CLASSES = ("08", "28", "3D", "53", "57")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset hook: there is no session state to undo.

    asyncpg's default hook sends `RESET ALL; CLOSE ALL; UNLISTEN *;
    pg_advisory_unlock_all()` whenever a connection goes back to the pool: a second round
    trip for every one-statement read. The store never changes session state (no SET, no
    cursors, no LISTEN, and its only advisory lock is transaction-scoped), and asyncpg
    itself still rolls back a transaction left open before it calls this hook.
    """


class _ConnectionLost(Exception):
    """The connection broke under a statement (server restart, proxy, network)."""

    def __init__(self, *, committing: bool = False) -> None:
        super().__init__("connection to PostgreSQL lost")
        self.committing = committing


class PostgresTransaction(Transaction):
    """Statements on the one connection that holds the transaction."""

    def __init__(self, db: PostgresDatabase, conn: asyncpg.Connection) -> None:
        self._db = db
        self._conn = conn

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        self._db._query_count += 1
        return await self._conn.fetchrow(to_dollar(sql), *params)  # type: ignore[no-any-return]

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        self._db._query_count += 1
        return await self._conn.fetch(to_dollar(sql), *params)  # type: ignore[no-any-return]

    async def execute(self, sql: str, params: Params = ()) -> int:
        self._db._query_count += 1
        status = await self._conn.execute(to_dollar(sql), *params)
        return _changed_rows(status)

    async def execute_many(self, sql: str, rows: Sequence[Params]) -> None:
        if not rows:
            return
        self._db._query_count += 1
        await self._conn.executemany(to_dollar(sql), rows)


class PostgresDatabase(Database):
    """A registry in one PostgreSQL database, shared by any number of processes."""

    dialect = "postgresql"

    def __init__(self, pool: asyncpg.Pool, description: str) -> None:
        self._pool = pool
        self._query_count = 0
        self.description = description

    @classmethod
    async def connect(cls, url: str, *, pool_size: int | None = None) -> PostgresDatabase:
        """Open a pool on `url`; raises StoreUnavailable if the database cannot be reached."""
        size = pool_size or DEFAULT_POOL_SIZE
        description = describe_database(url)
        try:
            # min_size=1: a process opens connections as load needs them, not all at start.
            pool = await asyncpg.create_pool(url, min_size=1, max_size=size, reset=_keep_session)
        except (OSError, asyncpg.PostgresError) as exc:
            if isinstance(exc, asyncpg.PostgresError) and not _is_unavailable(exc):
                raise
            raise StoreUnavailable(f"cannot connect to {description}: {exc}") from exc
        return cls(pool, description)

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        return await self._read(sql, params, _fetch_row)  # type: ignore[no-any-return]

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        return await self._read(sql, params, _fetch_rows)  # type: ignore[no-any-return]

    async def _read(
        self,
        sql: str,
        params: Params,
        fetch: Callable[[asyncpg.Connection, str, Params], Awaitable[Any]],
    ) -> Any:
        """One read; on a connection that turns out to be dead, once more on a fresh one."""
        self._query_count += 1
        statement = to_dollar(sql)
        for attempt in (1, 2):
            try:
                async with self._connection() as conn:
                    return await fetch(conn, statement, params)
            except _ConnectionLost as exc:
                if attempt == 2:
                    raise StoreUnavailable(f"lost the connection to {self.description}") from exc
                log.info("connection to PostgreSQL lost; reading again on a new one")
                await self._renew_connections()
            except asyncpg.PostgresError as exc:
                if _is_unavailable(exc):
                    raise StoreUnavailable(f"{self.description}: {exc}") from exc
                raise
        raise AssertionError("unreachable")

    async def write(self, work: Callable[[Transaction], Awaitable[T]]) -> T:
        return await self._retrying(work, "serializable", exclusive=False)

    async def write_exclusive(self, work: Callable[[Transaction], Awaitable[T]]) -> T:
        # READ COMMITTED here, on purpose: a serializable transaction takes its snapshot at
        # its first statement, the lock itself, so after waiting it would still see the
        # schema as it was before the other migrator committed.
        return await self._retrying(work, "read_committed", exclusive=True)

    async def _retrying(
        self, work: Callable[[Transaction], Awaitable[T]], isolation: str, *, exclusive: bool
    ) -> T:
        """Run `work` until it commits: again after a conflict, or once after a lost link."""
        lost_before = False
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                return await self._attempt(work, isolation, exclusive)
            except _ConnectionLost as exc:
                # Lost while committing, nobody knows whether the write happened: say so
                # (503) rather than risk running it twice.
                if exc.committing or lost_before:
                    raise StoreUnavailable(f"lost the connection to {self.description}") from exc
                lost_before = True
                log.info("connection to PostgreSQL lost; running the write again")
                await self._renew_connections()
            except asyncpg.PostgresError as exc:
                if exc.sqlstate in _RETRY_SQLSTATES:
                    log.debug("write conflict %s (attempt %d)", exc.sqlstate, attempt)
                    await asyncio.sleep(_backoff(attempt))
                    continue
                if _is_unavailable(exc):
                    raise StoreUnavailable(f"{self.description}: {exc}") from exc
                raise
        raise StoreUnavailable(f"a write conflicted {_MAX_ATTEMPTS} times in a row; try again")

    async def _attempt(
        self, work: Callable[[Transaction], Awaitable[T]], isolation: str, exclusive: bool
    ) -> T:
        async with self._connection() as conn:
            # BEGIN and COMMIT are round trips too: count them as SQLite does.
            self._query_count += 2
            transaction = conn.transaction(isolation=isolation)
            await transaction.start()
            try:
                tx = PostgresTransaction(self, conn)
                if exclusive:
                    # Held until commit or rollback, whatever happens to this process.
                    await tx.fetch_one("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK_KEY,))
                result = await work(tx)
            except BaseException:
                await _rollback_quietly(conn, transaction)
                raise

            try:
                await transaction.commit()
            except Exception as exc:
                if _is_dead(conn):
                    raise _ConnectionLost(committing=True) from exc
                raise
            return result

    async def _renew_connections(self) -> None:
        # One dead connection usually means all of them died (a server restart): have the
        # pool replace every connection it holds rather than try each dead one in turn.
        await self._pool.expire_connections()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection. Losing it mid-statement raises _ConnectionLost; not getting
        one at all (server down, database gone, too many connections), StoreUnavailable."""
        acquired = False
        try:
            async with self._pool.acquire() as conn:
                acquired = True
                try:
                    yield conn
                except Exception as exc:
                    # asyncpg reports a dead connection in several ways (reset, EOF, a
                    # protocol state error); what they share is a closed connection.
                    if _is_dead(conn) and not isinstance(exc, _ConnectionLost):
                        raise _ConnectionLost() from exc
                    raise
        except (OSError, asyncpg.PostgresError) as exc:
            if acquired or (isinstance(exc, asyncpg.PostgresError) and not _is_unavailable(exc)):
                raise
            raise StoreUnavailable(f"cannot connect to {self.description}: {exc}") from exc

    async def run_script(self, statements: Sequence[str]) -> None:
        async def apply(tx: Transaction) -> None:
            for statement in statements:
                await tx.execute(statement)

        await self.write_exclusive(apply)

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._pool.close(), timeout=10)
        except TimeoutError:
            # A connection still busy after 10 s (a stuck query): drop them all.
            self._pool.terminate()


# --- placeholders ---

_SQL_CACHE: dict[str, str] = {}
_CACHE_LIMIT = 4096

# Pieces of SQL where a `?` is not a placeholder: quoted strings and identifiers, comments.
_SKIPPED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", re.DOTALL)


def to_dollar(sql: str) -> str:
    """`?` placeholders become `$1, $2, ...`; a `?` inside quotes or comments stays."""
    cached = _SQL_CACHE.get(sql)
    if cached is not None:
        return cached

    parts: list[str] = []
    number = 0
    position = 0
    for skipped in _SKIPPED.finditer(sql):
        code = sql[position : skipped.start()]
        number = _number_placeholders(code, number, parts)
        parts.append(skipped.group())
        position = skipped.end()
    _number_placeholders(sql[position:], number, parts)

    translated = "".join(parts)
    if len(_SQL_CACHE) < _CACHE_LIMIT:  # SQL built per call (IN lists) must not grow it forever
        _SQL_CACHE[sql] = translated
    return translated


def _number_placeholders(code: str, number: int, parts: list[str]) -> int:
    pieces = code.split("?")
    parts.append(pieces[0])
    for piece in pieces[1:]:
        number += 1
        parts.append(f"${number}")
        parts.append(piece)
    return number


# --- errors and helpers ---


def _is_unavailable(exc: asyncpg.PostgresError) -> bool:
    sqlstate = exc.sqlstate or ""
    return sqlstate.startswith(_UNAVAILABLE_CLASSES)


def _is_dead(conn: asyncpg.Connection) -> bool:
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:  # the pool has already taken the dead connection back
        return True


async def _fetch_row(conn: asyncpg.Connection, statement: str, args: Params) -> Any:
    return await conn.fetchrow(statement, *args)


async def _fetch_rows(conn: asyncpg.Connection, statement: str, args: Params) -> Any:
    return await conn.fetch(statement, *args)


async def _rollback_quietly(conn: asyncpg.Connection, transaction: Any) -> None:
    """Roll back after a failure, keeping the failure as the error the caller sees."""
    if _is_dead(conn):
        return  # the server rolled it back when the connection went
    try:
        await transaction.rollback()
    except Exception:  # the pool resets or replaces the connection on release anyway
        log.debug("rollback failed", exc_info=True)


def _changed_rows(status: str) -> int:
    """Rows changed, from a command tag such as 'UPDATE 3' or 'INSERT 0 1'."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


def _backoff(attempt: int) -> float:
    """Exponential back-off with full jitter, so that retrying writers spread out."""
    ceiling = min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2 ** min(attempt, 16))
    return random.uniform(0, ceiling)
