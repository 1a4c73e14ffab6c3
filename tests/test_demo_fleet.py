"""The demo fleet `init` and a first `serve` create: what it must cover, for any seed.

The records checked here are exactly what the API serves: test_get_registration.py
compares every registration the server returns with these records.
"""

from __future__ import annotations

import base64
import ipaddress
from collections import defaultdict
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from warp_registry.bootstrap import initialise, plan_registry
from warp_registry.domain.records import FleetRecords
from warp_registry.ids import is_account_id, is_uuid
from warp_registry.store import open_store

DAY_US = 86_400 * 1_000_000
ANCHOR_US = 1_796_000_000_000_000  # a fixed "now" in late 2026
SEEDS = [1, 2, 3, 42, 2026]
VIRTUAL_IPV4_POOL = ipaddress.IPv4Network("100.96.0.0/12")


def _fleet(seed: int) -> FleetRecords:
    fleet, _, _ = plan_registry(seed, True, ANCHOR_US)
    return fleet


@pytest.mark.parametrize("seed", SEEDS)
def test_size(seed: int) -> None:
    fleet = _fleet(seed)
    assert len(fleet.devices) >= 30
    assert len(fleet.registrations) >= 50
    assert len(fleet.accounts) == 1
    assert is_account_id(fleet.accounts[0].id)


@pytest.mark.parametrize("seed", SEEDS)
def test_wireguard_and_masque_keys_are_real(seed: int) -> None:
    kinds: dict[str | None, int] = defaultdict(int)
    for reg in _fleet(seed).registrations:
        raw = base64.b64decode(reg.key, validate=True)
        kinds[reg.key_type] += 1
        if reg.key_type == "curve25519":
            assert reg.tunnel_type == "wireguard"
            assert len(raw) == 32
        else:
            assert (reg.key_type, reg.tunnel_type) == ("secp256r1", "masque")
            key = load_der_public_key(raw)
            assert isinstance(key, ec.EllipticCurvePublicKey)
            assert isinstance(key.curve, ec.SECP256R1)
    assert kinds["curve25519"] > 0 and kinds["secp256r1"] > 0


@pytest.mark.parametrize("seed", SEEDS)
def test_some_devices_are_shared_by_several_users(seed: int) -> None:
    users_by_device: dict[str, set[str]] = defaultdict(set)
    registrations_by_device: dict[str, set[str]] = defaultdict(set)
    for reg in _fleet(seed).registrations:
        registrations_by_device[reg.device_id].add(reg.id)
        if reg.user_id is not None:
            users_by_device[reg.device_id].add(reg.user_id)
    shared = [d for d, users in users_by_device.items() if len(users) >= 2]
    assert shared
    for device_id in shared:
        assert len(registrations_by_device[device_id]) >= 2


@pytest.mark.parametrize("seed", SEEDS)
def test_revoked_and_service_token_registrations(seed: int) -> None:
    registrations = _fleet(seed).registrations
    revoked = [r for r in registrations if r.revoked_at is not None]
    assert revoked
    for reg in revoked:
        assert reg.revoked_at is not None and reg.created_at <= reg.revoked_at <= ANCHOR_US
        assert reg.updated_at == reg.revoked_at

    by_service_token = [r for r in registrations if r.user_id is None]
    assert by_service_token
    for reg in by_service_token:
        assert reg.service_token_id is not None and is_uuid(reg.service_token_id)
        assert reg.user_email == "" and reg.user_name == ""


@pytest.mark.parametrize("seed", SEEDS)
def test_registration_types(seed: int) -> None:
    types = {r.registration_type for r in _fleet(seed).registrations}
    assert types == {"warp", "browser_extension"}


@pytest.mark.parametrize("seed", SEEDS)
def test_virtual_ips_are_in_the_pools_and_unique(seed: int) -> None:
    registrations = _fleet(seed).registrations
    ipv4 = [r.virtual_ipv4 for r in registrations]
    ipv6 = [r.virtual_ipv6 for r in registrations]
    assert None not in ipv4 and None not in ipv6
    assert len(set(ipv4)) == len(ipv4)
    assert len(set(ipv6)) == len(ipv6)
    for address in ipv4:
        assert ipaddress.IPv4Address(address) in VIRTUAL_IPV4_POOL
    for address in ipv6:
        assert isinstance(ipaddress.ip_address(str(address)), ipaddress.IPv6Address)


@pytest.mark.parametrize("seed", SEEDS)
def test_last_seen_spreads_over_the_last_90_days(seed: int) -> None:
    registrations = _fleet(seed).registrations
    for reg in registrations:
        assert ANCHOR_US - 90 * DAY_US <= reg.last_seen_at <= ANCHOR_US
        assert reg.created_at <= reg.last_seen_at
        assert reg.created_at <= reg.updated_at
    ages = sorted(ANCHOR_US - r.last_seen_at for r in registrations)
    # Spread, not bunched: both the last week and the last month's far side are present.
    assert ages[0] < 7 * DAY_US and ages[-1] > 60 * DAY_US


@pytest.mark.parametrize("seed", SEEDS)
def test_several_profiles_are_in_use(seed: int) -> None:
    fleet = _fleet(seed)
    in_use = {r.policy_id for r in fleet.registrations}
    assert len(in_use) > 1
    assert in_use <= {p.id for p in fleet.profiles}
    defaults = [p for p in fleet.profiles if p.is_default]
    assert len(defaults) == 1 and defaults[0].id in in_use


@pytest.mark.parametrize("seed", SEEDS)
def test_references_hold(seed: int) -> None:
    fleet = _fleet(seed)
    account_id = fleet.accounts[0].id
    device_ids = {d.id for d in fleet.devices}
    user_ids = {u.id for u in fleet.users}
    for reg in fleet.registrations:
        assert reg.account_id == account_id
        assert reg.device_id in device_ids
        assert reg.user_id is None or reg.user_id in user_ids
        assert is_uuid(reg.id)
    assert len({r.id for r in fleet.registrations}) == len(fleet.registrations)
    # Outside multi-user mode a device's first registration has the device's id.
    assert device_ids <= {r.id for r in fleet.registrations}


def test_same_seed_same_fleet_and_different_seed_different() -> None:
    first, first_account, first_example = plan_registry(5, True, ANCHOR_US)
    again, again_account, again_example = plan_registry(5, True, ANCHOR_US)
    other, other_account, _ = plan_registry(6, True, ANCHOR_US)

    assert first == again
    assert (first_account, first_example) == (again_account, again_example)
    assert other_account != first_account
    assert {r.key for r in other.registrations}.isdisjoint({r.key for r in first.registrations})


async def test_same_seed_stores_the_same_registrations(tmp_path: Path) -> None:
    stores = [await open_store(str(tmp_path / f"{name}.db")) for name in ("a", "b")]
    try:
        results = [await initialise(s, seed=9, anchor_us=ANCHOR_US) for s in stores]
        assert results[0].account_id == results[1].account_id
        assert results[0].api_token != results[1].api_token  # tokens are always fresh

        fleet, account_id, _ = plan_registry(9, True, ANCHOR_US)
        for reg in fleet.registrations:
            left = await stores[0].find_registration(account_id, reg.id)
            right = await stores[1].find_registration(account_id, reg.id)
            assert left is not None and left == right
    finally:
        for s in stores:
            await s.close()


def test_no_demo_plans_an_empty_account() -> None:
    fleet, account_id, example = plan_registry(1, False, ANCHOR_US)
    assert example is None
    assert [a.id for a in fleet.accounts] == [account_id]
    assert [p.is_default for p in fleet.profiles] == [True]
    assert fleet.devices == [] and fleet.registrations == [] and fleet.users == []


async def test_no_demo_stores_an_empty_account(tmp_path: Path) -> None:
    store = await open_store(str(tmp_path / "registry.db"))
    try:
        created = await initialise(store, with_demo=False)
        assert created.example_registration_id is None
        assert await store.account_ids() == [created.account_id]
        assert await store.first_registration_id(created.account_id) is None
    finally:
        await store.close()
