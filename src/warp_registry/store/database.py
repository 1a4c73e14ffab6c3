"""The thin driver layer under the store: run SQL, read rows, run write transactions.

`SqlStore` writes its SQL once, with `?` placeholders; each `Database` runs it on its own
engine. A write is a coroutine function given a `Transaction`; the database runs it inside
one transaction and runs it again from the start when the engine reports a transient
conflict (SQLite busy, PostgreSQL serialization failure or deadlock), so callers never see
those and a write either happens whole or not at all.
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
Row = Sequence[Any]
Params = Sequence[Any]


class StoreUnavailable(ConnectionError):
    """The database cannot be reached or refused us; the app answers 503, the CLI exits."""


def is_unique_violation(exc: BaseException) -> bool:
    """A unique index refused a write (SQLite IntegrityError, PostgreSQL 23505)."""
    if isinstance(exc, sqlite3.IntegrityError):
        return "UNIQUE constraint failed" in str(exc)
    return getattr(exc, "sqlstate", None) == "23505"


class Transaction(ABC):
    """Statements inside one write transaction."""

    @abstractmethod
    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None: ...

    @abstractmethod
    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]: ...

    @abstractmethod
    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return the number of rows it changed."""

    @abstractmethod
    async def execute_many(self, sql: str, rows: Sequence[Params]) -> None: ...


class Database(ABC):
    """One engine: SQLite or PostgreSQL."""

    dialect: str

    @abstractmethod
    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        """A read expected to be a quick indexed lookup."""

    @abstractmethod
    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        """A read that may touch many rows."""

    @abstractmethod
    async def write(self, work: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run `work` in one transaction, retrying it whole on transient conflicts."""

    @abstractmethod
    async def write_exclusive(self, work: Callable[[Transaction], Awaitable[T]]) -> T:
        """Like `write`, but never alongside another process's `write_exclusive`.

        For schema migrations: each statement sees everything committed before it, so a
        migrator that waited for another one finds the schema that one left.
        """

    @abstractmethod
    async def run_script(self, statements: Sequence[str]) -> None:
        """Run DDL statements in one transaction (used by migrations)."""

    @abstractmethod
    async def close(self) -> None: ...

    @property
    def query_count(self) -> int:
        """Statements sent to the engine so far (for tests that count store round trips)."""
        return self._query_count

    _query_count: int = 0
