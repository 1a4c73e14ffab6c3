"""The storage contract, checked on SQLite and on PostgreSQL alike.

Several `SqlStore`s opened on one database stand in for several processes: each has its
own connections (a SQLite file handle, or a PostgreSQL pool), so they race the way
separate servers do. What must hold on both engines:

- migrations are versioned, idempotent, and safe when several openers race on a fresh
  database;
- a write is all or nothing: a failure part-way leaves no trace;
- read-then-write operations race without locks in Python memory (one `init` wins; one
  admin per email; every token created);
- racing bulk revoke / unrevoke / delete calls end in a state some serial order explains;
- SQLite writers wait for each other: no "database is locked" reaches a caller;
- PostgreSQL: an unreachable database is StoreUnavailable (a 503 in the API, a clean CLI
  error), never an unexplained crash.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from tests import pg
from tests.conftest import Registry, cli
from tests.consistency import Call, find_serial_order, random_calls
from tests.expect import assert_error_envelope
from warp_registry.bootstrap import InitResult, RegistryNotEmpty, initialise, plan_registry
from warp_registry.http.app import RegistryApp
from warp_registry.http.context import AppContext
from warp_registry.secrets import hash_secret
from warp_registry.store import open_store
from warp_registry.store.database import StoreUnavailable, Transaction
from warp_registry.store.schema import LATEST_VERSION
from warp_registry.store.sql_store import BearerProbe, GlobalKeyProbe, SqlStore


@asynccontextmanager
async def stores(database: str, count: int) -> AsyncIterator[list[SqlStore]]:
    """`count` independent stores on one database, closed afterwards."""
    opened = [await open_store(database) for _ in range(count)]
    try:
        yield opened
    finally:
        for store in opened:
            await store.close()


# --- migrations ---


async def test_migrations_are_versioned_and_idempotent(bare_database_url: str) -> None:
    store = await open_store(bare_database_url)
    try:
        assert await store.schema_version() == LATEST_VERSION
        assert await store.migrate() == LATEST_VERSION  # found up to date: nothing applied
        assert await store.is_empty()
    finally:
        await store.close()


async def test_openers_racing_on_a_fresh_database_migrate_it_once(
    bare_database_url: str,
) -> None:
    opened = await asyncio.gather(
        *(open_store(bare_database_url) for _ in range(6)), return_exceptions=True
    )
    stores_ = [s for s in opened if isinstance(s, SqlStore)]
    try:
        assert len(stores_) == 6, [s for s in opened if isinstance(s, BaseException)]
        versions = [await s.schema_version() for s in stores_]
        assert versions == [LATEST_VERSION] * 6
    finally:
        for store in stores_:
            await store.close()


# --- all or nothing ---


async def test_a_write_failing_part_way_leaves_nothing(
    database_url: str, registry: Registry
) -> None:
    """A fleet whose last row breaks a constraint: none of its rows may remain."""
    fleet, account_id, _ = plan_registry(99, True, registry.anchor_us)
    # A registration id that already exists: the very last insert fails.
    fleet.registrations[-1].id = registry.fleet.registrations[0].id
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        await registry.store.insert_fleet(fleet)

    assert await registry.store.account_ids() == [registry.account_id]
    assert account_id != registry.account_id
    survivor = await registry.store.find_registration(account_id, fleet.registrations[0].id)
    assert survivor is None


# --- races on read-then-write operations ---


async def test_racing_initialisations_write_one_registry(database_url: str) -> None:
    async with stores(database_url, 3) as opened:
        results = await asyncio.gather(
            *(initialise(opened[n % 3], seed=n) for n in range(6)), return_exceptions=True
        )
        winners = [r for r in results if isinstance(r, InitResult)]
        assert len(winners) == 1, results
        assert all(isinstance(r, RegistryNotEmpty) for r in results if r is not winners[0])
        assert await opened[0].account_ids() == [winners[0].account_id]


async def test_racing_global_key_upserts_leave_one_admin(
    database_url: str, registry: Registry
) -> None:
    """Each call reads whether the admin exists, then inserts or updates it."""
    keys = [f"key-{n}" for n in range(12)]
    async with stores(database_url, 3) as opened:
        done = await asyncio.gather(*(
            opened[n % 3].create_global_key(f"admin-{n}", "ops@example.com",
                                            hash_secret(key), registry.account_id)
            for n, key in enumerate(keys)
        ))  # fmt: skip
        assert done == [True] * len(keys)

        accepted = []
        for key in keys:
            probe = GlobalKeyProbe("ops@example.com", hash_secret(key))
            if (await opened[0].access(probe, registry.account_id)).account_ok:
                accepted.append(key)
        # One admin row, holding whichever key was written last.
        assert len(accepted) == 1


async def test_racing_token_creations_all_land(database_url: str, registry: Registry) -> None:
    async with stores(database_url, 3) as opened:
        created = await asyncio.gather(*(
            opened[n % 3].create_token(f"00000000-0000-4000-8000-{n:012d}", f"t{n}",
                                       hash_secret(f"secret-{n}"), "read",
                                       [registry.account_id])
            for n in range(30)
        ))  # fmt: skip
        assert created == [True] * 30

        tokens = {t.name: t for t in await opened[1].list_tokens()}
        for n in range(30):
            assert tokens[f"t{n}"].account_ids == (registry.account_id,)
            access = await opened[2].access(BearerProbe(hash_secret(f"secret-{n}")),
                                            registry.account_id)  # fmt: skip
            assert access.account_ok and access.permission == "read"


async def test_racing_bulk_calls_are_serialisable(database_url: str, registry: Registry) -> None:
    ids = sorted(r.id for r in registry.fleet.registrations)
    before = {r.id: r.revoked_at is not None for r in registry.fleet.registrations}
    probe = BearerProbe(hash_secret(registry.token))
    calls = random_calls(random.Random(7), ids, 150, most_ids=12, delete_share=0.04)

    async with stores(database_url, 3) as opened:

        async def run(n: int, call: Call) -> None:
            store = opened[n % 3]
            operation = {
                "revoke": store.revoke_registrations,
                "unrevoke": store.unrevoke_registrations,
                "delete": store.delete_registrations,
            }[call.op]
            await operation(probe, registry.account_id, call.ids)

        await asyncio.gather(*(run(n, call) for n, call in enumerate(calls)))

        final: dict[str, bool | None] = {}
        for registration_id in ids:
            found = await opened[0].find_registration(registry.account_id, registration_id)
            final[registration_id] = None if found is None else found.revoked_at is not None
            if found is not None and found.revoked_at is not None:
                assert found.updated_at == found.revoked_at

    assert find_serial_order(before, calls, final) is not None


async def test_sqlite_writer_waits_for_another_processs_lock(tmp_path: Path) -> None:
    """A write lock held elsewhere for a while delays a write; it never fails it."""
    path = str(tmp_path / "locked.db")
    store = await open_store(path)
    try:
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # what another process's writer holds
        release = threading.Timer(1.0, lambda: other.execute("COMMIT"))
        release.start()

        created = await initialise(store, with_demo=False)

        release.join()
        other.close()
        assert await store.account_ids() == [created.account_id]
    finally:
        await store.close()


async def test_query_count_counts_statements(registry: Registry) -> None:
    db = registry.store.db
    before = db.query_count
    await registry.store.find_registration(registry.account_id, registry.fleet.registrations[0].id)
    assert db.query_count == before + 1


# --- PostgreSQL specifics ---


@pytest.mark.postgres
def test_placeholders_become_numbered_outside_quotes_and_comments() -> None:
    from warp_registry.store.postgres import to_dollar

    sql = "SELECT '?', \"a?\" FROM t -- why?\nWHERE a = ? AND b LIKE ? ESCAPE '\\' /* ? */ OR ?"
    assert to_dollar(sql) == (
        "SELECT '?', \"a?\" FROM t -- why?\nWHERE a = $1 AND b LIKE $2 ESCAPE '\\' /* ? */ OR $3"
    )
    assert to_dollar("SELECT 'it''s ?' , ?") == "SELECT 'it''s ?' , $1"


@pytest.mark.postgres
async def test_dropped_connections_are_replaced_unnoticed(postgres_url: str) -> None:
    store = await open_store(postgres_url)
    try:
        created = await initialise(store)
        probe = BearerProbe(hash_secret(created.api_token))
        registration_id = created.example_registration_id
        assert registration_id is not None
        # Several pooled connections, all of which the drop below kills.
        await asyncio.gather(*(
            store.find_registration(created.account_id, registration_id) for _ in range(8)
        ))  # fmt: skip

        assert pg.drop_connections(postgres_url) >= 2
        found = await store.find_registration(created.account_id, registration_id)
        assert found is not None and found.revoked_at is None

        assert pg.drop_connections(postgres_url) >= 1
        _, changed = await store.revoke_registrations(probe, created.account_id,
                                                      [registration_id])  # fmt: skip
        assert changed == 1
        found = await store.find_registration(created.account_id, registration_id)
        assert found is not None and found.revoked_at is not None
    finally:
        await store.close()


@pytest.mark.postgres
async def test_a_read_is_one_round_trip_and_an_aborted_write_leaves_no_transaction(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool must not send asyncpg's RESET ALL/UNLISTEN/... after every read."""
    import asyncpg

    resets: list[str] = []
    original = asyncpg.Connection.reset

    async def spy(self: asyncpg.Connection, *, timeout: float | None = None) -> None:
        resets.append("reset")
        await original(self, timeout=timeout)

    monkeypatch.setattr(asyncpg.Connection, "reset", spy)
    store = await open_store(postgres_url)
    try:
        created = await initialise(store)
        registration_id = created.example_registration_id
        assert registration_id is not None
        for _ in range(5):
            assert await store.find_registration(created.account_id, registration_id)

        async def fail(tx: Transaction) -> None:
            await tx.execute("UPDATE accounts SET name = 'x' WHERE id = ?", (created.account_id,))
            raise RuntimeError("abandoned")

        with pytest.raises(RuntimeError):
            await store.db.write(fail)
        account = await store.db.fetch_one(
            "SELECT name FROM accounts WHERE id = ?", (created.account_id,)
        )
        assert account is not None and account[0] != "x"
        assert resets == []
    finally:
        await store.close()


@pytest.mark.postgres
async def test_lost_database_is_a_503_envelope(postgres_url: str) -> None:
    store = await open_store(postgres_url)
    created = await initialise(store)
    app = RegistryApp(AppContext(store=store))
    path = (
        f"/client/v4/accounts/{created.account_id}/devices/registrations/"
        f"{created.example_registration_id}"
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {created.api_token}"},
    ) as client:
        assert (await client.get(path)).status_code == 200

        await asyncio.to_thread(pg.drop_database, postgres_url)  # closes our connections too
        for _ in range(2):  # the broken pooled connection, then a refused reconnect
            response = await client.get(path)
            assert response.status_code == 503
            assert_error_envelope(response.json(), 10002)
            write = await client.post(path.rsplit("/", 1)[0] + "/revoke",
                                      params={"id": created.example_registration_id})  # fmt: skip
            assert write.status_code == 503
            assert_error_envelope(write.json(), 10002)
    await store.close()


@pytest.mark.postgres
async def test_opening_a_missing_database_is_store_unavailable(postgres_url: str) -> None:
    missing = postgres_url.rsplit("/", 1)[0] + "/no_such_database_here"
    with pytest.raises(StoreUnavailable, match="no_such_database_here"):
        await open_store(missing)

    done = await asyncio.to_thread(cli, "token", "list", "--database", missing)
    assert done.returncode == 1
    assert "cannot open database" in done.stderr
    assert "Traceback" not in done.stderr

    # A password in the URL is never echoed (the test server trusts, so any will do).
    parts = urllib.parse.urlsplit(missing)
    user = parts.username or "postgres"
    netloc = f"{user}:hunter2-secret@{parts.hostname}:{parts.port or 5432}"
    with_password = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    done = await asyncio.to_thread(cli, "token", "list", "--database", with_password)
    assert done.returncode == 1
    assert "hunter2-secret" not in done.stderr + done.stdout
    assert ":***@" in done.stderr
