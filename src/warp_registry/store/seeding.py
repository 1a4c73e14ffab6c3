"""Bulk seeding: many realistic registrations at once (`warp-registry seed --registrations`).

`FleetSeeder.seed` writes users, devices, device tags and registrations with `executemany`
in large chunks inside ONE transaction, so a reader sees either none or all of them. Rows
are made as plain tuples (no record objects) and each device's derived list columns
(`active_registrations` and the sort keys, see store/devices.py) are computed here as the
rows are made, the way `refresh_devices` would compute them; no UPDATE pass over a
million devices is needed. On SQLite a seed that at least grows the registry by a third
drops the secondary indexes of the four tables for the inserts and rebuilds them before
the commit (still inside the transaction); a smaller one inserts into them. The
rows are made by a child process while this one inserts (they travel as `marshal` bytes).

On a SQLite file no other connection has open, `warp-registry seed` uses the faster path
of store/seed_exclusive.py (same statements, a rollback journal instead of WAL).

The shape of a seeded fleet (our choice, close to the demo fleet's):

- one user per two devices (a laptop and a phone each), with unique emails;
- nine devices per ten registrations: every tenth registration is a re-enrollment of the
  previous device by the same user, which revoked the older registration;
- 3 % of devices are enrolled by a service token (no user), 2 % of registrations revoked;
- 40 % MASQUE (real P-256 points) and 60 % WireGuard keys, all distinct;
- every registration is on the account's default profile, as a fresh check-in with no
  matching custom profile would be;
- virtual IPs come from the account's pool (the same 100.96.0.0/12 and IPv6 /64 that
  enrollment allocates from) by enrollment's rule: onwards from the account's mark,
  wrapping to the lowest free host at the top; the marks then move past them, so later
  enrollments continue after them without reading the seeded addresses. The pool holds
  1,048,573 hosts per account; a seed that would not fit in the free part of it is
  refused before anything is written.
"""

from __future__ import annotations

import asyncio
import logging
import marshal
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from queue import Empty
from typing import Any

from warp_registry.clock import now_us
from warp_registry.domain.enrollment import FIRST_HOST, AddressPool, ipv6_network
from warp_registry.store.database import Database, Transaction, is_unique_violation
from warp_registry.store.enrollment import set_address_marks
from warp_registry.store.seed_rows import (
    PlanArgs,
    SeedAccount,
    SeedResult,
    generate_rows,
)

log = logging.getLogger(__name__)

_QUEUED_CHUNKS = 4  # chunks made ahead of the inserts (bounds the memory they hold)
_CHILD_TIMEOUT_S = 300  # a chunk takes well under a second; this only catches a hung child
_RECEIVE_STEP_S = 0.2
_POOL = AddressPool()  # the pool enrollment allocates from
POOL_TOP = _POOL.top  # last host before broadcast
POOL_HOSTS = POOL_TOP - FIRST_HOST + 1

# SQLite page cache for the seeding transaction: its index pages stay in memory instead
# of being re-read at each of the million random index inserts. Negative = KiB.
_SQLITE_SEED_CACHE = -1_048_576
_SQLITE_DEFAULT_CACHE = -2_000
# ... but a small one while the indexes are rebuilt: SQLite's sorter keeps at most a cache's
# worth of keys in memory before it sorts them into a run, and with `PRAGMA threads` it sorts
# those runs on a second thread while the first keeps scanning the table. With 1 GiB every
# index fitted in one run, sorted on one thread (measured for a million registrations: the
# 21 indexes in 33 s with 1 GiB, 14 s with 4 MiB; docs/benchmarks.md).
_SQLITE_SORT_CACHE = -4_096
# A seed drops and rebuilds the indexes when it adds at least 1/REBUILD_RATIO as many
# registrations as the registry holds (see `_rebuild_pays`).
REBUILD_RATIO = 3


_USER_SQL = (
    "INSERT INTO users (id, account_id, email, name, groups, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_DEVICE_SQL = (
    "INSERT INTO devices (id, account_id, name, created_at, updated_at, client_version, "
    "device_type, model, manufacturer, serial_number, hardware_id, mac_address, "
    "os_version, os_version_extra, install_id, public_ip, tags, last_seen_at, "
    "last_seen_user_id, last_seen_registration_id, active_registrations, "
    "sort_client_version, sort_last_seen_at, sort_last_seen_email) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_TAG_SQL = "INSERT INTO device_tags (device_id, key, value) VALUES (?, ?, ?)"
_REGISTRATION_SQL = (
    "INSERT INTO registrations (id, account_id, device_id, user_id, user_email, user_name, "
    "policy_id, policy_name, policy_assigned_at, key, key_type, tunnel_type, "
    "registration_type, virtual_ipv4, virtual_ipv6, override_secret, created_at, "
    "updated_at, last_seen_at, revoked_at, service_token_id, client_token_hash) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class SeedError(Exception):
    """The seed cannot be written (unknown account, no default profile, pool too small)."""


Progress = Callable[[int], None]


class FleetSeeder:
    """Bulk inserts of seeded registrations (reached as `SqlStore.seeding`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def seed(
        self,
        account_id: str,
        registrations: int,
        *,
        seed: int = 1,
        progress: Progress | None = None,
    ) -> SeedResult:
        """Add `registrations` registrations (with their devices and users) in one transaction.

        `progress(n)` is called after each chunk with the number of registrations written
        by it. Raises SeedError, writing nothing, when the account's pool cannot hold them.
        The rows are made in a spawned child process, so a script calling this needs the
        usual `if __name__ == "__main__":` guard around its entry point. This is the path
        beside other connections (WAL on SQLite); see store/seed_exclusive.py for the
        faster one when nothing else has the SQLite file open.
        """
        sqlite = self._db.dialect == "sqlite"

        async def work(tx: Transaction) -> SeedResult:
            return await seed_in_transaction(tx, sqlite, account_id, registrations, seed, progress)

        return await self._db.write(work)


async def seed_in_transaction(
    tx: Transaction,
    sqlite: bool,
    account_id: str,
    registrations: int,
    seed: int,
    progress: Progress | None,
) -> SeedResult:
    """The seed's statements inside the caller's transaction."""
    started = time.perf_counter()
    account = await _load_account(tx, account_id, registrations)
    # The same --seed on the same registry makes the same fleet; a registry that has
    # changed since (more rows, or registrations deleted but their users kept) gets other
    # ids, so a second seed does not make rows that collide with the first one's.
    existing = await tx.fetch_one(
        "SELECT (SELECT COUNT(*) FROM registrations), (SELECT COUNT(*) FROM devices), "
        "(SELECT COUNT(*) FROM users)"
    )
    counts = ":".join(str(count) for count in existing or ())
    rng_seed = f"seed:{seed}:{counts}"
    rebuild_indexes = sqlite and _rebuild_pays(registrations, existing[0] if existing else 0)
    plan = PlanArgs(rng_seed, account, registrations, now_us())
    if sqlite:
        await tx.execute(f"PRAGMA cache_size = {_SQLITE_SEED_CACHE}")
        await tx.execute("PRAGMA threads = 2")  # index builds sort on two threads
    try:
        rebuild = await _drop_indexes(tx) if rebuild_indexes else []
        log.info("seed phase: account, free addresses, drop indexes %.1f s",
                 time.perf_counter() - started)  # fmt: skip
        started = time.perf_counter()
        result = await _write(tx, plan, progress)
        await set_address_marks(tx, account_id, *account.marks_after)
        log.info("seed phase: make and insert rows %.1f s", time.perf_counter() - started)
        started = time.perf_counter()
        if rebuild:
            await tx.execute(f"PRAGMA cache_size = {_SQLITE_SORT_CACHE}")
        for name, sql in rebuild:
            began = time.perf_counter()
            await tx.execute(sql)
            log.debug("seed index %s %.1f s", name, time.perf_counter() - began)
        log.info("seed phase: rebuild %d indexes %.1f s", len(rebuild),
                 time.perf_counter() - started)  # fmt: skip
    except Exception as exc:
        # Rows made from the same --seed at the same registry size as rows already there
        # (written by other means); the transaction is rolled back by the caller.
        if is_unique_violation(exc):
            raise SeedError(
                f"the seeded rows collide with rows already in the registry ({exc}); "
                "nothing was written: seed again with another --seed"
            ) from exc
        raise
    finally:
        if sqlite:
            await tx.execute(f"PRAGMA cache_size = {_SQLITE_DEFAULT_CACHE}")
            await tx.execute("PRAGMA threads = 0")
    return result


async def _load_account(tx: Transaction, account_id: str, wanted: int) -> SeedAccount:
    """The account's IPv6 base, default profile and free pool hosts (checked against wanted)."""
    row = await tx.fetch_one(
        "SELECT ipv6_prefix, next_ipv4_host, next_ipv6_host FROM accounts WHERE id = ?",
        (account_id,),
    )
    if row is None:
        raise SeedError(f"no account {account_id} in this registry")
    profile = await tx.fetch_one(
        "SELECT id, name FROM device_profiles WHERE account_id = ? AND is_default = 1",
        (account_id,),
    )
    if profile is None:
        raise SeedError(f"account {account_id} has no default device settings profile")

    used = await tx.fetch_all(
        "SELECT virtual_ipv4, virtual_ipv6 FROM registrations WHERE account_id = ?",
        (account_id,),
    )
    # One host number serves both families, so a host is taken if either address uses it.
    taken = set(_POOL.ipv4().hosts(r[0] for r in used))
    taken.update(_POOL.ipv6(row[0]).hosts(r[1] for r in used))
    free_count = POOL_HOSTS - len({h for h in taken if FIRST_HOST <= h <= POOL_TOP})
    if wanted > free_count:
        raise SeedError(
            f"the account's virtual address pool has {free_count:,} free addresses "
            f"(of {POOL_HOSTS:,}); cannot seed {wanted:,} registrations"
        )
    # Enrollment's rule, from the account's marks (one for both families only when both
    # are known), so a seed does not hand out at once the addresses just freed.
    marks = [mark for mark in (row[1], row[2]) if mark is not None]
    free = _POOL.hand_out(taken, max(marks) if len(marks) == 2 else None, wanted)
    marks_after = (free[-1] + 1, free[-1] + 1) if free else (row[1], row[2])
    ipv6_base = int(ipv6_network(row[0]).network_address)
    return SeedAccount(
        account_id, ipv6_base, profile[0], profile[1] or "Default", free, marks_after
    )


async def _write(tx: Transaction, args: PlanArgs, progress: Progress | None) -> SeedResult:
    """Users first (registrations reference them), then devices, tags and registrations.

    The rows are made in a child process while this one inserts: making them costs about
    as much CPU as inserting them, and one Python process would run the two on one core.
    """
    context = multiprocessing.get_context("spawn")  # no fork of a threaded process
    queue = context.Queue(maxsize=_QUEUED_CHUNKS)
    child = context.Process(
        target=generate_rows, args=(args, queue, os.getpid()), daemon=True
    )
    child.start()
    stop = threading.Event()
    try:
        while True:
            kind, payload = await asyncio.to_thread(_receive, queue, child, stop)
            if kind == "error":
                raise SeedError(f"making the seed's rows failed: {payload}")
            if kind == "stopped":
                raise SeedError("the seed was interrupted")
            if kind == "done":
                return payload  # type: ignore[no-any-return]
            if kind == "users":
                await tx.execute_many(_USER_SQL, payload)
                continue
            written = await _insert_chunk(tx, payload)
            if progress is not None:
                progress(written)
    finally:
        stop.set()  # a _receive still waiting (the seed was interrupted) gives up
        if child.is_alive():
            child.terminate()
        child.join(5)
        queue.close()


def _receive(queue: Any, child: Any, stop: threading.Event) -> tuple[str, Any]:
    """The child's next message, its rows decoded (on a worker thread, not the event loop).

    Waits in short steps, so that an interrupted seed (`stop`) or a dead child ends the
    wait at once: the thread would otherwise keep the process alive after Ctrl-C.
    Rows travel as `marshal` bytes: plain tuples of str, int and None, which marshal
    writes and reads four times faster than pickle (measured 2.6 + 1.9 µs against
    9.8 + 6.4 µs per registration), in the child and in this process, both busy.
    """
    waited = 0.0
    while True:
        try:
            kind, payload = queue.get(True, _RECEIVE_STEP_S)
            break
        except Empty:
            waited += _RECEIVE_STEP_S
            if stop.is_set():
                return "stopped", None
            if not child.is_alive() or waited > _CHILD_TIMEOUT_S:
                return "error", f"the child process making the rows ended ({child.exitcode})"
    if kind in ("users", "chunk"):
        payload = marshal.loads(payload)
    return kind, payload


async def _insert_chunk(tx: Transaction, chunk: tuple[list[tuple[Any, ...]], ...]) -> int:
    devices, tags, registrations = chunk
    await tx.execute_many(_DEVICE_SQL, devices)
    await tx.execute_many(_TAG_SQL, tags)
    await tx.execute_many(_REGISTRATION_SQL, registrations)
    return len(registrations)


def _rebuild_pays(adding: int, present: int) -> bool:
    """Whether dropping and rebuilding the indexes beats inserting into them (SQLite).

    A rebuild sorts every row of the tables, old and new; inserting with the indexes in
    place costs each new row its random index inserts, a few times a rebuild's cost per
    row. So a seed rebuilds when it adds at least a third as many registrations as there
    are (1,000 onto 1,000,000 now take about 5 s instead of about 40 s; measured in
    docs/benchmarks.md, "Seeding onto a large registry").
    """
    return adding * REBUILD_RATIO >= present


async def _drop_indexes(tx: Transaction) -> list[tuple[str, str]]:
    """SQLite: drop the secondary indexes of the seeded tables; returns their CREATE SQL.

    Building an index once, by sorting, is several times faster than a million random
    inserts into it. DDL is transactional in SQLite, so readers keep seeing the indexes
    until the seeding commits, and a unique index that the new rows would break fails
    its re-creation and rolls the whole seed back.
    """
    rows = await tx.fetch_all(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        "AND tbl_name IN ('users', 'devices', 'registrations', 'device_tags')"
    )
    for name, _ in rows:
        await tx.execute(f'DROP INDEX "{name}"')
    return [(name, sql) for name, sql in rows]
