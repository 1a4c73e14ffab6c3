"""Bulk seeding (`warp-registry seed --registrations`, store/seeding.py) on both stores."""

from __future__ import annotations

import ipaddress
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tests.conftest import Registry, cli
from warp_registry.store import open_store, seeding
from warp_registry.store.database import Transaction
from warp_registry.store.devices import refresh_devices
from warp_registry.store.enrollment import set_address_marks
from warp_registry.store.seed_exclusive import seed_sqlite_exclusively
from warp_registry.store.seeding import SeedError

DERIVED = (
    "SELECT id, active_registrations, sort_client_version, sort_last_seen_at, "
    "sort_last_seen_email, last_seen_registration_id FROM devices ORDER BY id"
)


async def test_seeded_devices_carry_the_derived_columns_a_refresh_computes(
    registry: Registry,
) -> None:
    store = registry.store
    result = await store.seeding.seed(registry.account_id, 300, seed=7)
    assert (result.registrations, result.devices, result.users) == (300, 270, 135)

    before = await store.db.fetch_all(DERIVED)
    ids = [row[0] for row in before]

    async def refresh(tx: Transaction) -> None:
        await refresh_devices(tx, ids)

    await store.db.write(refresh)
    assert await store.db.fetch_all(DERIVED) == before


async def test_seeded_rows_are_unique_and_in_the_pool(registry: Registry) -> None:
    store = registry.store
    await store.seeding.seed(registry.account_id, 250, seed=1)
    await store.seeding.seed(registry.account_id, 250, seed=1)  # a second run adds more

    rows = await store.db.fetch_all(
        "SELECT id, virtual_ipv4, virtual_ipv6, key FROM registrations WHERE account_id = ?",
        (registry.account_id,),
    )
    assert len(rows) == len(registry.fleet.registrations) + 500
    for column in range(4):
        assert len({row[column] for row in rows}) == len(rows)
    pool = ipaddress.IPv4Network("100.96.0.0/12")
    assert all(ipaddress.IPv4Address(row[1]) in pool for row in rows)

    # Every seeded registration reads back through the API path, with its policy.
    seeded = [row[0] for row in rows][-3:]
    for reg_id in seeded:
        found = await store.find_registration(registry.account_id, reg_id)
        assert found is not None and found.policy is not None and found.policy.is_default


async def test_a_seed_moves_the_address_marks_past_its_hosts(registry: Registry) -> None:
    store = registry.store
    network = ipaddress.IPv4Network("100.96.0.0/12")
    await store.seeding.seed(registry.account_id, 120, seed=3)

    rows = await store.db.fetch_all(
        "SELECT virtual_ipv4 FROM registrations WHERE account_id = ?", (registry.account_id,)
    )
    highest = max(int(ipaddress.IPv4Address(row[0])) - int(network.network_address)
                  for row in rows)  # fmt: skip
    marks = await store.db.fetch_one(
        "SELECT next_ipv4_host, next_ipv6_host FROM accounts WHERE id = ?",
        (registry.account_id,),
    )
    assert marks is not None and tuple(marks) == (highest + 1, highest + 1)

    # The next seed goes on from the marks, as enrollment would: not into the gap a
    # deleted registration left, and from a mark set higher, from there.
    deleted = rows[0][0]
    await store.db.write(
        lambda tx: tx.execute("DELETE FROM registrations WHERE virtual_ipv4 = ?", (deleted,))
    )

    async def raise_marks(tx: Transaction) -> None:
        await set_address_marks(tx, registry.account_id, highest + 500, highest + 700)

    await store.db.write(raise_marks)
    await store.seeding.seed(registry.account_id, 10, seed=4)
    after = await store.db.fetch_all(
        "SELECT virtual_ipv4 FROM registrations WHERE account_id = ?", (registry.account_id,)
    )
    hosts = {int(ipaddress.IPv4Address(row[0])) - int(network.network_address) for row in after}
    assert set(range(highest + 700, highest + 710)) <= hosts
    assert deleted not in {row[0] for row in after}
    marks = await store.db.fetch_one(
        "SELECT next_ipv4_host, next_ipv6_host FROM accounts WHERE id = ?",
        (registry.account_id,),
    )
    assert marks is not None and tuple(marks) == (highest + 710, highest + 710)


async def test_seeding_again_after_deleting_seeded_registrations(registry: Registry) -> None:
    """Back at the same registration count, with the first seed's users still there, the
    same --seed must not make the same (colliding) ids."""
    store = registry.store
    count = await store.db.fetch_one("SELECT COUNT(*) FROM registrations")
    first = await store.seeding.seed(registry.account_id, 10, seed=5)
    assert first.registrations == 10
    rows = await store.db.fetch_all(
        "SELECT id FROM registrations ORDER BY created_at DESC, id LIMIT 10"
    )

    async def delete(tx: Transaction) -> None:
        for (reg_id,) in rows:
            await tx.execute("DELETE FROM registrations WHERE id = ?", (reg_id,))

    await store.db.write(delete)
    assert await store.db.fetch_one("SELECT COUNT(*) FROM registrations") == count
    second = await store.seeding.seed(registry.account_id, 10, seed=5)
    assert second.registrations == 10


async def test_a_seed_larger_than_the_free_pool_writes_nothing(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = registry.store
    free = 40
    monkeypatch.setattr(seeding, "POOL_HOSTS", len(registry.fleet.registrations) + free)
    before = await store.db.fetch_one("SELECT COUNT(*) FROM registrations")

    with pytest.raises(SeedError, match="40 free addresses"):
        await store.seeding.seed(registry.account_id, free + 1)

    assert await store.db.fetch_one("SELECT COUNT(*) FROM registrations") == before
    assert (await store.seeding.seed(registry.account_id, free)).registrations == free


def test_the_cli_seeds_an_initialised_registry(database_url: str, tmp_path: Path) -> None:
    database = database_url  # SQLite takes the exclusive path, PostgreSQL the shared one
    assert cli("init", "--database", database, "--json").returncode == 0

    done = cli("seed", "--database", database, "--registrations", "1000")
    assert done.returncode == 0, done.stderr
    assert "seeded 1,000 registrations, 900 devices and 450 users" in done.stdout
    assert "seeding registrations" in done.stderr
    assert "deprecated" not in done.stderr

    empty = str(tmp_path / "empty.db")
    refused = cli("seed", "--database", empty, "--registrations", "5")
    assert refused.returncode != 0


def test_seed_registrations_is_a_deprecated_alias(tmp_path: Path) -> None:
    database = str(tmp_path / "r.db")
    assert cli("init", "--database", database, "--json").returncode == 0

    done = cli("seed-registrations", "--database", database, "--registrations", "100")
    assert done.returncode == 0, done.stderr
    assert "seeded 100 registrations" in done.stdout
    notices = [line for line in done.stderr.splitlines() if "deprecated" in line]
    assert notices == [
        "warp-registry: `seed-registrations` is deprecated; use `seed --registrations N`"
    ]
    assert "seed-registrations" not in cli("--help").stdout


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ((), {}, "give either --devices N"),
        (("--devices", "3", "--registrations", "5"), {}, "not both"),
        (("--devices", "3", "--account", "0" * 32), {}, "--account goes with --registrations"),
        ((), {"WARP_REGISTRY_DEVICES": "3", "WARP_REGISTRY_REGISTRATIONS": "5"}, "not both"),
    ],
)
def test_seed_takes_exactly_one_of_devices_and_registrations(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    database = str(tmp_path / "r.db")
    assert cli("init", "--database", database, "--json").returncode == 0
    initial = _registration_ids(database)

    refused = cli("seed", "--database", database, *args, env=env)
    assert refused.returncode == 2
    assert message in refused.stderr
    assert len(_registration_ids(database)) == len(initial)


def test_a_flag_on_the_command_line_beats_the_other_sizes_variable(tmp_path: Path) -> None:
    database = str(tmp_path / "r.db")
    assert cli("init", "--database", database, "--json").returncode == 0
    before = len(_registration_ids(database))

    added = cli("seed", "--database", database, "--registrations", "50",
                env={"WARP_REGISTRY_DEVICES": "3"})  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert len(_registration_ids(database)) == before + 50


def _registration_ids(database: str) -> list[str]:
    with closing(sqlite3.connect(database)) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM registrations ORDER BY id")]


def _index_names(conn: sqlite3.Connection) -> list[str]:
    return [row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name"
    )]  # fmt: skip


async def test_the_exclusive_sqlite_seed_writes_what_the_shared_one_writes(
    tmp_path: Path,
) -> None:
    """Alone on the file the seed takes the rollback-journal path; beside another
    connection it returns None and the store's WAL path writes the same fleet."""
    alone, shared = str(tmp_path / "alone.db"), str(tmp_path / "shared.db")
    for database in (alone, shared):
        assert cli("init", "--database", database, "--json").returncode == 0
    with closing(sqlite3.connect(alone)) as conn:
        (account_id,) = conn.execute("SELECT id FROM accounts").fetchone()
        indexes = _index_names(conn)

    result = await seed_sqlite_exclusively(alone, account_id, 700, seed=3)
    assert result is not None and result.registrations == 700
    conn = sqlite3.connect(alone)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert _index_names(conn) == indexes
    finally:
        conn.close()
    assert not Path(alone + "-journal").exists()

    holder = sqlite3.connect(shared, isolation_level=None)  # e.g. a running server
    try:
        holder.execute("SELECT COUNT(*) FROM accounts").fetchone()
        before = _registration_ids(shared)
        assert await seed_sqlite_exclusively(shared, account_id, 700, seed=3) is None
        assert _registration_ids(shared) == before
        store = await open_store(shared)
        try:
            await store.seeding.seed(account_id, 700, seed=3)
        finally:
            await store.close()
    finally:
        holder.close()

    columns = "SELECT id, device_id, user_id, key, virtual_ipv4, virtual_ipv6 FROM registrations"
    with closing(sqlite3.connect(alone)) as a, closing(sqlite3.connect(shared)) as b:
        assert (
            a.execute(columns + " ORDER BY id").fetchall()
            == b.execute(columns + " ORDER BY id").fetchall()
        )


def test_a_seed_rebuilds_indexes_only_when_it_adds_a_third_of_the_registry() -> None:
    assert seeding._rebuild_pays(1_000_000, 0)
    assert seeding._rebuild_pays(100, 300)
    assert not seeding._rebuild_pays(99, 300)
    assert not seeding._rebuild_pays(1_000, 300_000)


async def test_a_small_seed_onto_a_larger_registry_inserts_into_the_indexes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Both ways of writing (indexes rebuilt, indexes kept) leave a consistent file."""
    database = str(tmp_path / "grow.db")
    assert cli("init", "--database", database, "--json").returncode == 0
    with closing(sqlite3.connect(database)) as conn:
        (account_id,) = conn.execute("SELECT id FROM accounts").fetchone()
        indexes = _index_names(conn)

    caplog.set_level("INFO", logger="warp_registry.store.seeding")
    for wanted, rebuilt in ((900, True), (60, False)):
        caplog.clear()
        result = await seed_sqlite_exclusively(database, account_id, wanted, seed=4)
        assert result is not None and result.registrations == wanted
        phases = [r.getMessage() for r in caplog.records if "rebuild" in r.getMessage()]
        assert len(phases) == 1
        assert phases[0].startswith("seed phase: rebuild 0 indexes") is not rebuilt

    with closing(sqlite3.connect(database)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert _index_names(conn) == indexes
        (count,) = conn.execute(
            "SELECT COUNT(*) FROM registrations INDEXED BY reg_account_created "
            "WHERE account_id = ?", (account_id,)
        ).fetchone()
    assert count == len(_registration_ids(database))
