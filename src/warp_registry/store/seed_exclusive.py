"""`warp-registry seed --registrations` on a SQLite file that nothing else has open.

On a SQLite file that no other connection has open (no server running), the CLI uses
`seed_sqlite_exclusively`: the same transaction on a connection of its own that switches
the file from WAL to a rollback journal (`journal_mode = DELETE`) for the seed, holds it
with `locking_mode = EXCLUSIVE`, and switches it back to WAL at the end. A WAL commit
writes every new page twice (into the WAL, then the checkpoint copies it into the file:
20 s of a million-registration seed); a rollback journal only saves the few old pages the
seed changes, while the pages appended beyond the file's old end are written once (a
rollback truncates them away). Our choice: that connection runs with `synchronous = OFF`.
That is safe against a killed process (kill -9, a crash): every write has reached the
operating system before SQLite goes on, so the next opener finds the hot journal and
rolls the seed back (tests/test_crash.py kills it mid-way). It is not safe against a
power cut during the seed, which can leave a corrupt file; seeding is for test and
benchmark registries, and the file is fsynced once after the commit, so a seed that
has been reported is on disk. When another connection has the file open, the seed runs
through `FleetSeeder.seed` in WAL mode beside it (slower, same result).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from warp_registry.store.seed_rows import SeedResult
from warp_registry.store.seeding import Progress, seed_in_transaction
from warp_registry.store.sqlite import ThreadTransaction

log = logging.getLogger(__name__)
T = TypeVar("T")

_BUSY_TIMEOUT_MS = 10_000


async def seed_sqlite_exclusively(
    path: str,
    account_id: str,
    registrations: int,
    *,
    seed: int = 1,
    progress: Progress | None = None,
) -> SeedResult | None:
    """The seed of `FleetSeeder.seed` on a SQLite file no other connection has open.

    Returns None, having done nothing, when another connection (a server, this process's
    own store) has the file open; the caller then seeds through `FleetSeeder.seed`.
    The transaction runs with a rollback journal instead of WAL: the pages it appends
    beyond the file's old end are written once, not to the WAL and again by the
    checkpoint, and they need no journal copy (a rollback truncates them away). See the
    module docstring for why `synchronous = OFF` during it keeps a killed seed harmless.
    """
    conn = await asyncio.to_thread(_open_exclusive, path)
    if conn is None:
        return None
    tx = _ConnectionTransaction(conn)
    try:
        try:
            await tx.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # another process began a write meanwhile
            return None
        try:
            if await tx.fetch_one("PRAGMA journal_mode") != ("delete",):
                # A server opened the file between our switch and BEGIN and made it
                # WAL again: this is the shared path's case after all.
                await tx.execute("ROLLBACK")
                return None
            result = await seed_in_transaction(tx, True, account_id, registrations, seed, progress)
        except BaseException:
            await tx.execute("ROLLBACK")
            raise
        started = time.perf_counter()
        await tx.execute("COMMIT")
        await asyncio.to_thread(_fsync, path)
        log.info("seed phase: commit %.1f s", time.perf_counter() - started)
        return result
    finally:
        await tx.close()


def _open_exclusive(path: str) -> sqlite3.Connection | None:
    """A connection that has switched `path` to a rollback journal, or None if it cannot.

    Leaving WAL needs every other connection to have closed the file; while this one
    seeds, `locking_mode = EXCLUSIVE` keeps its lock until it is closed, so a server
    started meanwhile waits (and gives up after its busy timeout) instead of reading a
    file in the middle of a change of journal mode.
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=0)
    try:
        mode = conn.execute("PRAGMA journal_mode = DELETE").fetchone()
    except sqlite3.OperationalError:  # locked: another connection has the file open
        conn.close()
        return None
    if mode != ("delete",):
        conn.close()
        return None
    conn.execute("PRAGMA locking_mode = EXCLUSIVE")
    # A reader that opened the file meanwhile (before the seed's first write took the
    # exclusive lock for good) only delays the commit; wait for it as the store does.
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA synchronous = OFF")
    # The seed's rows reference only its own users and devices and the account and profile
    # `_load_account` read (tests/test_seeding.py runs `foreign_key_check` after a seed);
    # checking each reference cost ~7 s of the parent's CPU per million registrations.
    conn.execute("PRAGMA foreign_keys = OFF")
    return conn


def _fsync(path: str) -> None:
    """Put the committed seed on disk before reporting it (`synchronous = OFF` did not)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _close_exclusive(conn: sqlite3.Connection) -> None:
    """Back to WAL, the registry's mode, then release the file.

    If the process dies before this, the next opener finds the file in rollback mode (and,
    after a crash mid-seed, a hot journal it rolls back first); the store switches it to
    WAL again when it opens it.
    """
    try:
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()


class _ConnectionTransaction(ThreadTransaction):
    """The seed's statements on its own connection and thread (see ThreadTransaction for
    why one thread: an interrupted seed must roll back after its running statement)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__(conn, ThreadPoolExecutor(max_workers=1, thread_name_prefix="seed"))

    async def close(self) -> None:
        """Back to WAL and release the file, after any statement still running."""
        try:
            await self.run(lambda: _close_exclusive(self._conn))
        finally:
            self._thread.shutdown(wait=True)
