"""The demo account's profiles: realistic match expressions, varied assignments, and an
assignment that is exactly what a client check-in would leave in place.
"""

from __future__ import annotations

import json
from collections import Counter

import httpx
import pytest

from tests.conftest import Registry
from warp_registry.bootstrap import plan_registry
from warp_registry.clock import now_us
from warp_registry.domain.match import parse
from warp_registry.domain.records import FleetRecords, RegistrationRecord
from warp_registry.store.database import Transaction
from warp_registry.store.profiles import assign_profile

ANCHOR_US = 1_796_000_000_000_000
SEEDS = [1, 2, 3, 42, 2026]


def _expected_name(record: RegistrationRecord, fleet: FleetRecords) -> str:
    """The demo profiles' rules, written out by hand from their expressions (docs/profiles.md
    lists them), to check the evaluator's answers against."""
    if record.registration_type != "warp":
        return "Default"  # the demo has no browser_extension profiles
    user = next((u for u in fleet.users if u.id == record.user_id), None)
    device = next(d for d in fleet.devices if d.id == record.device_id)
    groups = json.loads(user.groups_json) if user else []
    email = (user.email or "") if user else ""
    rules = [  # by precedence; "Support (paused)" is disabled
        ("Service tokens", record.service_token_id is not None),
        ("Engineering", any(g["name"] == "engineering" for g in groups)),
        ("Finance laptops", any(g["id"] == "group-finance" for g in groups)
         and device.device_type in ("windows", "mac")),
        ("Contractors", "@contractors.example.com" in email),
        ("Linux workstations", device.device_type == "linux"),
        ("iPhones on iOS 18", device.device_type == "ios"
         and (device.os_version or "").startswith("18.")),
    ]  # fmt: skip
    return next((name for name, holds in rules if holds), "Default")


def _name_of(fleet: FleetRecords, profile_id: str) -> str:
    profile = next(p for p in fleet.profiles if p.id == profile_id)
    return profile.name or "Default"


@pytest.mark.parametrize("seed", SEEDS)
def test_demo_assignments_follow_the_profiles_rules(seed: int) -> None:
    fleet, _, _ = plan_registry(seed, True, ANCHOR_US)
    for record in fleet.registrations:
        assert _name_of(fleet, record.policy_id) == _expected_name(record, fleet), record.id


@pytest.mark.parametrize("seed", SEEDS)
def test_demo_profiles_parse_and_assignments_vary(seed: int) -> None:
    fleet, _, _ = plan_registry(seed, True, ANCHOR_US)
    customs = [p for p in fleet.profiles if not p.is_default]
    for profile in customs:
        assert profile.match is not None
        parse(profile.match)
    assert len({p.precedence for p in customs}) == len(customs)
    assert any(not p.enabled for p in customs)

    in_use = Counter(_name_of(fleet, r.policy_id) for r in fleet.registrations)
    assert len(in_use) >= 5, in_use
    assert in_use["Default"] > 0


async def test_a_check_in_would_change_no_demo_assignment(registry: Registry) -> None:
    """The stored demo assignment is a fixed point of the server's own assignment step."""
    store = registry.store
    before = {r.id: await store.find_registration(registry.account_id, r.id)
              for r in registry.fleet.registrations}  # fmt: skip

    async def check_in_all(tx: Transaction) -> None:
        now = now_us()
        for reg_id in before:
            await assign_profile(tx, reg_id, now)

    await store.db.write(check_in_all)
    for reg_id, registration in before.items():
        assert await store.find_registration(registry.account_id, reg_id) == registration


async def test_include_policy_shows_the_demo_assignments(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    params = {"include": "policy", "status": "all", "per_page": 1000}
    response = await api.get(
        f"/accounts/{registry.account_id}/devices/registrations", params=params
    )
    shown = {item["id"]: item["policy"]["name"] for item in response.json()["result"]}
    fleet = registry.fleet
    assert shown == {r.id: _expected_name(r, fleet) for r in fleet.registrations}
