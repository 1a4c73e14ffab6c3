"""Bulk seeding (`warp-registry seed-registrations`, store/seeding.py) on both stores."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from tests.conftest import Registry, cli
from warp_registry.store import seeding
from warp_registry.store.database import Transaction
from warp_registry.store.devices import refresh_devices
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


def test_the_cli_seeds_an_initialised_registry(tmp_path: Path) -> None:
    database = str(tmp_path / "r.db")
    assert cli("init", "--database", database, "--json").returncode == 0

    done = cli("seed-registrations", "--database", database, "--registrations", "1000")
    assert done.returncode == 0, done.stderr
    assert "seeded 1,000 registrations, 900 devices and 450 users" in done.stdout
    assert "seeding registrations" in done.stderr

    empty = str(tmp_path / "empty.db")
    refused = cli("seed-registrations", "--database", empty, "--registrations", "5")
    assert refused.returncode != 0
