"""List physical devices: filters, sorts, keyset cursors, shapes and validation (docs/devices.md).

`GET /accounts/{account_id}/devices/physical-devices`, mostly through the official Python
SDK (`zero_trust.devices.devices.list`). Every expected answer is computed from the
seeded records (`tests/devices_expected.py`), never read back from the server.
"""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cloudflare import AsyncCloudflare
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import SEED, Registry
from tests.devices_expected import (
    ORDERS,
    SORTS,
    DeviceExpect,
    expected_device,
    expected_device_ids,
    list_params,
    sdk_kwargs,
)
from tests.expect import assert_error_envelope, assert_success_envelope
from warp_registry.bootstrap import initialise, plan_registry
from warp_registry.clock import now_us
from warp_registry.demo import DAY_US
from warp_registry.domain.devices import parse_device_list_query
from warp_registry.domain.listing import make_cursor
from warp_registry.domain.records import (
    DeviceRecord,
    FleetRecords,
    RegistrationRecord,
)
from warp_registry.errors import InvalidParameters
from warp_registry.secrets import hash_secret
from warp_registry.store import open_store
from warp_registry.store.devices import build_device_list_sql

DOCS = Path(__file__).parent.parent / "docs" / "devices.md"


def _path(registry: Registry) -> str:
    return f"/accounts/{registry.account_id}/devices/physical-devices"


async def _page(
    api: httpx.AsyncClient, registry: Registry, params: dict[str, Any]
) -> dict[str, Any]:
    response = await api.get(_path(registry), params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert_success_envelope(body)
    return body


async def _walk(api: httpx.AsyncClient, registry: Registry, params: dict[str, Any]) -> list[str]:
    """Follow `result_info.cursor` as the SDKs do; every id seen, in order."""
    seen: list[str] = []
    cursor = None
    while True:
        body = await _page(api, registry, {**params, **({"cursor": cursor} if cursor else {})})
        seen.extend(item["id"] for item in body["result"])
        cursor = body["result_info"]["cursor"]
        if not cursor or not body["result"]:
            return seen


async def _sdk_ids(sdk: AsyncCloudflare, registry: Registry, **params: Any) -> list[str]:
    """Every id the SDK's auto-paging iterator yields."""
    pages = sdk.zero_trust.devices.devices.list(account_id=registry.account_id, **params)
    return [device.id async for device in pages]


# --- the demo fleet, as the cases below pick from it ---


def _profile(fleet: FleetRecords, name: str) -> str:
    """A profile's id by name; the default profile has no name of its own."""
    return next(
        p.id for p in fleet.profiles if p.name == name or (p.is_default and name == "Default")
    )


def _median_seen(fleet: FleetRecords) -> int:
    seen = sorted(d.last_seen_at for d in fleet.devices if d.last_seen_at is not None)
    return seen[len(seen) // 2]


def _busy_user_email(fleet: FleetRecords) -> str:
    """The email of a user who was last seen on more than one device."""
    counts: dict[str, int] = {}
    for device in fleet.devices:
        if device.last_seen_user_id is not None:
            counts[device.last_seen_user_id] = counts.get(device.last_seen_user_id, 0) + 1
    user_id = max(counts, key=lambda u: (counts[u], u))
    assert counts[user_id] > 1
    return next(u.email for u in fleet.users if u.id == user_id) or ""


def _zero_active(fleet: FleetRecords) -> list[str]:
    active = {r.device_id for r in fleet.registrations if r.revoked_at is None}
    return [d.id for d in fleet.devices if d.id not in active]


def _hidden_device_policy(fleet: FleetRecords) -> str:
    """The profile a device without active registrations was last seen with."""
    hidden = next(d for d in fleet.devices if d.id in _zero_active(fleet))
    return next(r.policy_id for r in fleet.registrations
                if r.id == hidden.last_seen_registration_id)  # fmt: skip


FILTER_CASES: dict[str, Callable[[FleetRecords], DeviceExpect]] = {
    "active_registrations=only (default)": lambda f: DeviceExpect(),
    "active_registrations=include": lambda f: DeviceExpect(active_registrations="include"),
    "active_registrations=exclude": lambda f: DeviceExpect(active_registrations="exclude"),
    "id": lambda f: DeviceExpect(ids=[f.devices[3].id, f.devices[30].id]),
    "id of a device without active registrations": lambda f: DeviceExpect(
        ids=[_zero_active(f)[0], f.devices[0].id]
    ),
    "has_registration_type=browser_extension": lambda f: DeviceExpect(
        has_registration_type="browser_extension", active_registrations="include"
    ),
    "has_registration_type=warp": lambda f: DeviceExpect(has_registration_type="warp"),
    "last_seen_user.email": lambda f: DeviceExpect(last_seen_user_email=_busy_user_email(f)),
    "last_seen_user.email, other case": lambda f: DeviceExpect(
        last_seen_user_email=_busy_user_email(f).upper(), active_registrations="include"
    ),
    "last_seen_user.email, unknown": lambda f: DeviceExpect(last_seen_user_email="no@where"),
    "last_seen_registration.policy.id": lambda f: DeviceExpect(
        policy_id=_profile(f, "Engineering")
    ),
    "last_seen_registration.policy.id, default": lambda f: DeviceExpect(
        policy_id=_profile(f, "Default"), active_registrations="include"
    ),
    "search: model": lambda f: DeviceExpect(search="ThinkPad"),
    "search: name": lambda f: DeviceExpect(search="desktop-", active_registrations="include"),
    "search: manufacturer": lambda f: DeviceExpect(search="APPLE INC"),
    "search: serial number fragment": lambda f: DeviceExpect(
        search=(f.devices[5].serial_number or "")[3:11].lower()
    ),
    "search: mac address fragment": lambda f: DeviceExpect(
        search=(f.devices[7].mac_address or "")[3:11], active_registrations="include"
    ),
    "search: device id fragment": lambda f: DeviceExpect(
        search=f.devices[9].id[9:18].upper(), active_registrations="include"
    ),
    "search: last seen user's email": lambda f: DeviceExpect(search="@contractors."),
    "search: apostrophe": lambda f: DeviceExpect(search="'s iPhone"),
    "search: % is literal": lambda f: DeviceExpect(search="%"),
    "search: _ is literal": lambda f: DeviceExpect(search="example_com"),
    "seen_after": lambda f: DeviceExpect(seen_after=_median_seen(f)),
    "seen_before": lambda f: DeviceExpect(
        seen_before=_median_seen(f), active_registrations="include"
    ),
    "seen window": lambda f: DeviceExpect(
        seen_after=_median_seen(f) - 30 * DAY_US, seen_before=_median_seen(f)
    ),
    "tag": lambda f: DeviceExpect(tags=["site:berlin"]),
    "tags, all must match": lambda f: DeviceExpect(
        tags=["os:linux", "site:austin"], active_registrations="include"
    ),
    "tag compliance": lambda f: DeviceExpect(tags=["compliance:pci"]),
    "tag nobody has": lambda f: DeviceExpect(tags=["site:paris"]),
    "tag, same key twice": lambda f: DeviceExpect(tags=["site:berlin", "site:lisbon"]),
    # combined
    "tag + include + sort by name desc": lambda f: DeviceExpect(
        tags=["site:lisbon"], active_registrations="include", sort_by="name", sort_order="desc"
    ),
    "search + has_registration_type + sort by client_version": lambda f: DeviceExpect(
        search="e", has_registration_type="warp", sort_by="client_version"
    ),
    "email + seen_after + sort by last_seen_at desc": lambda f: DeviceExpect(
        last_seen_user_email=_busy_user_email(f), seen_after=_median_seen(f) - 60 * DAY_US,
        sort_by="last_seen_at", sort_order="desc",
    ),
    "policy + exclude": lambda f: DeviceExpect(
        policy_id=_hidden_device_policy(f), active_registrations="exclude"
    ),
    "everything at once": lambda f: DeviceExpect(
        ids=[d.id for d in f.devices[:30]], active_registrations="include",
        has_registration_type="warp", policy_id=_profile(f, "Default"), search="e",
        seen_after=_median_seen(f) - 60 * DAY_US, seen_before=_median_seen(f) + 20 * DAY_US,
        tags=["site:berlin"], sort_by="active_registrations", sort_order="desc",
    ),
}  # fmt: skip


def test_the_filter_cases_are_not_vacuous() -> None:
    """Most cases select some devices but not all, so an ignored filter gets caught."""
    fleet, _, _ = plan_registry(SEED, True, now_us())
    total = len(expected_device_ids(fleet, DeviceExpect(active_registrations="include")))
    sizes = {
        name: len(expected_device_ids(fleet, case(fleet))) for name, case in FILTER_CASES.items()
    }
    partial = [name for name, size in sizes.items() if 0 < size < total]
    assert len(partial) >= len(FILTER_CASES) - 6, sizes
    assert sizes["everything at once"] > 0, sizes


async def test_every_filter_alone_and_combined(
    sdk: AsyncCloudflare, registry: Registry, subtests: pytest.Subtests
) -> None:
    for name, case in FILTER_CASES.items():
        with subtests.test(case=name):
            expect = case(registry.fleet)
            # per_page 7: the filters must also hold across cursor pages.
            got = await _sdk_ids(sdk, registry, per_page=7, **sdk_kwargs(expect))
            assert got == expected_device_ids(registry.fleet, expect)


async def test_sdk_auto_paging_visits_every_device_once(
    sdk: AsyncCloudflare, registry: Registry, subtests: pytest.Subtests
) -> None:
    """cases.md R02: the SDK follows `result_info.cursor` and stops on the empty one."""
    every = expected_device_ids(registry.fleet, DeviceExpect(active_registrations="include"))
    for sort_by in SORTS:
        for sort_order in ORDERS:
            expect = DeviceExpect(
                active_registrations="include", sort_by=sort_by, sort_order=sort_order
            )
            want = expected_device_ids(registry.fleet, expect)
            assert sorted(want) == sorted(every)
            for per_page in (1, 7):
                with subtests.test(sort_by=sort_by, sort_order=sort_order, per_page=per_page):
                    got = await _sdk_ids(sdk, registry, per_page=per_page, **sdk_kwargs(expect))
                    assert got == want


async def test_every_sort_of_the_default_list_pages_through_it_once(
    api: httpx.AsyncClient, registry: Registry, subtests: pytest.Subtests
) -> None:
    for sort_by in SORTS:
        for sort_order in ORDERS:
            expect = DeviceExpect(sort_by=sort_by, sort_order=sort_order)
            with subtests.test(sort_by=sort_by, sort_order=sort_order):
                params = {**list_params(expect), "per_page": 5}
                assert await _walk(api, registry, params) == expected_device_ids(
                    registry.fleet, expect
                )


async def test_default_list_is_devices_with_active_registrations_by_creation(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    body = await _page(api, registry, {})
    want = expected_device_ids(registry.fleet, DeviceExpect())
    assert len(want) < len(registry.fleet.devices)  # some devices are hidden by default

    assert [item["id"] for item in body["result"]] == want
    assert body["result_info"] == {
        "count": len(want), "cursor": "", "per_page": 50, "total_count": None,
    }  # fmt: skip


async def test_items_are_full_device_objects(api: httpx.AsyncClient, registry: Registry) -> None:
    for include in (False, True):
        params: dict[str, Any] = {"active_registrations": "include", "per_page": 1000}
        if include:
            params["include"] = "last_seen_registration.policy"
        body = await _page(api, registry, params)
        assert len(body["result"]) == len(registry.fleet.devices)
        for item in body["result"]:
            want = expected_device(registry.fleet, item["id"], include_policy=include)
            assert item == want


async def test_sdk_reads_every_field(sdk: AsyncCloudflare, registry: Registry) -> None:
    devices = [
        device
        async for device in sdk.zero_trust.devices.devices.list(
            account_id=registry.account_id, include="last_seen_registration.policy",
            active_registrations="include", per_page=1000,
        )
    ]  # fmt: skip
    assert len(devices) == len(registry.fleet.devices)
    for device in devices:
        want = expected_device(registry.fleet, device.id, include_policy=True)
        assert device.to_dict(mode="json") == want


async def test_active_registrations_agrees_with_the_registrations_list(
    sdk: AsyncCloudflare, registry: Registry
) -> None:
    """The count of each device is what `registrations?device.id=` lists as active."""
    registrations = sdk.zero_trust.devices.registrations
    async for device in sdk.zero_trust.devices.devices.list(
        account_id=registry.account_id, active_registrations="include", per_page=1000
    ):
        listed = [
            reg.id
            async for reg in registrations.list(
                account_id=registry.account_id, device={"id": device.id}, per_page=1000
            )
        ]
        assert device.active_registrations == len(listed), device.id


# --- nulls and `include` (cases.md R05) ---


async def _add_records(registry: Registry, records: FleetRecords) -> None:
    """Write extra records into the registry and into the expected fleet alike."""
    assert await registry.store.insert_fleet(records)
    registry.fleet.devices.extend(records.devices)
    registry.fleet.registrations.extend(records.registrations)


def _extra_device(registry: Registry, name: str, **facts: Any) -> DeviceRecord:
    created = registry.anchor_us - 3 * DAY_US
    return DeviceRecord(
        id=str(uuid.uuid4()), account_id=registry.account_id, name=name, created_at=created,
        updated_at=created, **facts,
    )  # fmt: skip


def _wireguard_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def _service_token_registration(
    registry: Registry, device: DeviceRecord, policy_id: str, host: int
) -> RegistrationRecord:
    prefix = registry.fleet.accounts[0].ipv6_prefix
    seen = registry.anchor_us - DAY_US
    return RegistrationRecord(
        id=device.id, account_id=registry.account_id, device_id=device.id, user_id=None,
        user_email="", user_name="", policy_id=policy_id, policy_name="Retired kiosks",
        policy_assigned_at=device.created_at, key=_wireguard_key(),
        key_type="curve25519", tunnel_type="wireguard", registration_type="warp",
        virtual_ipv4=f"100.100.0.{host}", virtual_ipv6=f"{prefix}::ff{host:02x}",
        override_secret=secrets.token_hex(20), created_at=device.created_at,
        updated_at=device.created_at, last_seen_at=seen, service_token_id=str(uuid.uuid4()),
    )  # fmt: skip


@pytest.fixture
async def r05(registry: Registry) -> dict[str, str]:
    """A device never seen, and a kiosk last seen by a service token whose registration's
    profile has been deleted since (its id is in no profile row)."""
    never = _extra_device(registry, "never-seen-kiosk")
    kiosk = _extra_device(registry, "lobby-kiosk", client_version="2026.7.1377.0",
                          device_type="windows")  # fmt: skip
    registration = _service_token_registration(registry, kiosk, str(uuid.uuid4()), 7)
    kiosk.last_seen_at = registration.last_seen_at
    kiosk.last_seen_registration_id = registration.id
    await _add_records(registry, FleetRecords(devices=[never, kiosk], registrations=[registration]))
    return {"never": never.id, "kiosk": kiosk.id}


async def test_r05_nullable_fields_and_include_expansion(
    api: httpx.AsyncClient, registry: Registry, r05: dict[str, str]
) -> None:
    for include in (False, True):
        params = {"id": [r05["never"], r05["kiosk"]], "active_registrations": "include"}
        if include:
            params["include"] = "last_seen_registration.policy"
        body = await _page(api, registry, params)
        by_id = {item["id"]: item for item in body["result"]}

        never, kiosk = by_id[r05["never"]], by_id[r05["kiosk"]]
        assert never == expected_device(registry.fleet, r05["never"], include_policy=include)
        assert kiosk == expected_device(registry.fleet, r05["kiosk"], include_policy=include)
        assert never["last_seen_at"] is None and never["last_seen_user"] is None
        assert never["active_registrations"] == 0 and never["client_version"] is None
        assert kiosk["last_seen_user"] is None  # a service token is nobody
        if include:
            assert never["last_seen_registration"] is None
            policy = kiosk["last_seen_registration"]["policy"]
            assert policy["deleted"] is True and policy["name"] == "Retired kiosks"
        else:
            assert "last_seen_registration" not in never and "last_seen_registration" not in kiosk


async def test_r05_never_seen_device_sorts_first_ascending_and_last_descending(
    api: httpx.AsyncClient, registry: Registry, r05: dict[str, str]
) -> None:
    for sort_by in ("last_seen_at", "client_version", "last_seen_user.email"):
        for sort_order in ORDERS:
            expect = DeviceExpect(
                active_registrations="include", sort_by=sort_by, sort_order=sort_order
            )
            want = expected_device_ids(registry.fleet, expect)
            end = want[0] if sort_order == "asc" else want[-1]
            assert end == r05["never"] or sort_by == "last_seen_user.email"
            params = {**list_params(expect), "per_page": 3}
            assert await _walk(api, registry, params) == want, (sort_by, sort_order)


async def test_r05_never_seen_device_matches_no_seen_filter(
    api: httpx.AsyncClient, registry: Registry, r05: dict[str, str]
) -> None:
    for name, value in (("seen_after", "1970-01-01T00:00:00Z"),
                        ("seen_before", "2999-01-01T00:00:00Z")):  # fmt: skip
        body = await _page(api, registry, {name: value, "active_registrations": "exclude"})
        assert r05["never"] not in [item["id"] for item in body["result"]]


async def test_last_seen_registration_deleted_since_is_null(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    """The registration a device was last seen through is deleted: the device stays, its
    `last_seen_registration` becomes null, its last-seen time and user remain."""
    device = next(
        d for d in registry.fleet.devices
        if sum(r.device_id == d.id for r in registry.fleet.registrations) == 1
    )  # fmt: skip
    response = await api.delete(
        f"/accounts/{registry.account_id}/devices/registrations/{device.last_seen_registration_id}"
    )
    assert response.status_code == 200
    registry.fleet.registrations[:] = [
        r for r in registry.fleet.registrations if r.id != device.last_seen_registration_id
    ]

    response = await api.get(
        f"{_path(registry)}/{device.id}", params={"include": "last_seen_registration.policy"}
    )
    body = response.json()["result"]
    assert body == expected_device(registry.fleet, device.id, include_policy=True)
    assert body["last_seen_registration"] is None
    assert body["last_seen_user"] is not None and body["last_seen_at"] is not None
    assert body["active_registrations"] == 0


# --- cursors ---


async def test_last_page_has_empty_cursor_and_full_pages_do_not(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    total = len(expected_device_ids(registry.fleet, DeviceExpect()))
    body = await _page(api, registry, {"per_page": 10})
    assert body["result_info"]["count"] == 10 and body["result_info"]["cursor"] != ""
    assert body["result_info"]["total_count"] is None

    body = await _page(api, registry, {"per_page": total})
    assert body["result_info"]["count"] == total and body["result_info"]["cursor"] == ""


async def test_devices_changing_between_pages_are_neither_repeated_nor_skipped(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    want = expected_device_ids(registry.fleet, DeviceExpect())
    first = await _page(api, registry, {"per_page": 5})
    assert [item["id"] for item in first["result"]] == want[:5]

    # Between pages: delete a device already shown and one not shown yet, and revoke a
    # third one ahead, which leaves the default list.
    gone_seen, gone_ahead, revoked_ahead = want[1], want[8], want[12]
    for target in (gone_seen, gone_ahead):
        assert (await api.delete(f"{_path(registry)}/{target}")).status_code == 200
    assert (await api.post(f"{_path(registry)}/{revoked_ahead}/revoke")).status_code == 200

    rest = await _walk(api, registry, {"per_page": 5, "cursor": first["result_info"]["cursor"]})
    assert rest == [i for i in want[5:] if i not in (gone_ahead, revoked_ahead)]


async def test_per_page_may_change_between_pages(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    expect = DeviceExpect(sort_by="name")
    first = await _page(api, registry, {"sort_by": "name", "per_page": 3})
    rest = await _walk(api, registry, {"sort_by": "name", "per_page": 11,
                                       "cursor": first["result_info"]["cursor"]})  # fmt: skip
    assert [i["id"] for i in first["result"]] + rest == expected_device_ids(registry.fleet, expect)


OTHER_REQUESTS: list[tuple[dict[str, str], dict[str, str]]] = [
    # (the cursor was made with, it is used with)
    ({}, {"sort_by": "name"}),
    ({}, {"sort_order": "desc"}),
    ({}, {"active_registrations": "include"}),
    ({"tag": "site:berlin"}, {"tag": "site:lisbon"}),
    ({"search": "a"}, {}),
    ({"has_registration_type": "warp"}, {}),
]


async def test_cursor_for_other_sort_or_filters_is_refused(
    api: httpx.AsyncClient, registry: Registry, subtests: pytest.Subtests
) -> None:
    for made_with, used_with in OTHER_REQUESTS:
        with subtests.test(made_with=made_with, used_with=used_with):
            body = await _page(api, registry, {**made_with, "per_page": 1})
            cursor = body["result_info"]["cursor"]
            assert cursor
            response = await api.get(_path(registry), params={**used_with, "cursor": cursor})

            assert response.status_code == 400
            error = assert_error_envelope(response.json(), 6008)
            assert error["error_chain"][0]["code"] == 11004


async def test_a_registrations_cursor_is_refused_here(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    response = await api.get(
        f"/accounts/{registry.account_id}/devices/registrations", params={"per_page": 1}
    )
    cursor = response.json()["result_info"]["cursor"]
    response = await api.get(_path(registry), params={"cursor": cursor})
    assert response.status_code == 400
    assert assert_error_envelope(response.json(), 6008)["error_chain"][0]["code"] == 11004


def _encode(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


async def test_malformed_cursors_are_refused(api: httpx.AsyncClient, registry: Registry) -> None:
    fingerprint = parse_device_list_query({}).filters.fingerprint()
    bad = [
        "not a cursor!",
        _encode([1, "created_at", "asc", fingerprint, "text for a time", str(uuid.uuid4())]),
        _encode([1, "created_at", "asc", fingerprint, 2**70, str(uuid.uuid4())]),
        _encode([1, "created_at", "asc", fingerprint, 5, "not-a-uuid"]),
        _encode([1, "name", "asc", parse_device_list_query({"sort_by": ["name"]})
                 .filters.fingerprint(), 5, str(uuid.uuid4())]),
    ]  # fmt: skip
    for cursor in bad:
        params = {"cursor": cursor}
        if '"name"' in base64.urlsafe_b64decode(cursor + "==").decode(errors="replace"):
            params["sort_by"] = "name"
        response = await api.get(_path(registry), params=params)
        assert response.status_code == 400, cursor
        assert assert_error_envelope(response.json(), 6008)["error_chain"][0]["code"] == 11004


# --- bad input (cases.md R03: a 400 envelope for sort_by=bogus) ---

BAD_INPUT = [
    # (parameter, value, chain code, words the message must contain)
    ("sort_by", "bogus", 11001, ["sort_by", "active_registrations", "last_seen_user.email"]),
    ("sort_by", "user.email", 11001, ["sort_by"]),
    ("sort_order", "up", 11001, ["sort_order"]),
    ("active_registrations", "all", 11001, ["active_registrations", "only", "exclude"]),
    ("has_registration_type", "mobile", 11001, ["has_registration_type", "browser_extension"]),
    ("include", "policy", 11001, ["include", "last_seen_registration.policy"]),
    ("per_page", "0", 11000, ["per_page", "1 and 1000"]),
    ("per_page", "1001", 11000, ["per_page"]),
    ("per_page", "x", 11000, ["per_page"]),
    ("id", "12345", 11003, ["id", "UUID"]),
    ("last_seen_registration.policy.id", "nope", 11003, ["last_seen_registration.policy.id"]),
    ("seen_after", "yesterday", 11002, ["seen_after"]),
    ("seen_before", "2026-02-30T00:00:00Z", 11002, ["seen_before"]),
    ("search", "x" * 201, 11006, ["search"]),
    ("tag", "no-colon", 11021, ["tag", "key:value"]),
    ("tag", ":value-without-key", 11021, ["tag"]),
]


async def test_bad_input_is_a_400_naming_the_parameter(
    api: httpx.AsyncClient, registry: Registry, subtests: pytest.Subtests
) -> None:
    for name, value, chain, words in BAD_INPUT:
        with subtests.test(parameter=name, value=value[:40]):
            response = await api.get(_path(registry), params={name: value})

            assert response.status_code == 400, response.text
            error = assert_error_envelope(response.json(), 6008)
            link = error["error_chain"][0]
            assert link["code"] == chain
            for word in words:
                assert word in link["message"], link


async def test_at_most_ten_distinct_tags_per_request(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    ten = [f"k{n}:v" for n in range(10)]
    assert (await api.get(_path(registry), params={"tag": [*ten, ten[0]]})).status_code == 200
    response = await api.get(_path(registry), params={"tag": [*ten, "k10:v"]})
    assert response.status_code == 400
    assert assert_error_envelope(response.json(), 6008)["error_chain"][0]["code"] == 11021


async def test_an_empty_email_filter_is_no_filter(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    body = await _page(api, registry, {"last_seen_user.email": ""})
    assert [i["id"] for i in body["result"]] == expected_device_ids(registry.fleet, DeviceExpect())


LIST_PARAMETERS = ["id", "id[]", "active_registrations", "has_registration_type",
                   "last_seen_user.email", "last_seen_registration.policy.id", "search",
                   "seen_after", "seen_before", "tag", "tag[]", "include", "sort_by",
                   "sort_order", "per_page", "cursor", "unknown"]  # fmt: skip


@given(
    st.dictionaries(
        st.sampled_from(LIST_PARAMETERS), st.lists(st.text(max_size=80), min_size=1, max_size=3)
    )
)
@settings(max_examples=300, deadline=None)
def test_any_query_is_parsed_or_refused_as_invalid(query: dict[str, list[str]]) -> None:
    try:
        parsed = parse_device_list_query(query)
    except InvalidParameters as refused:
        assert refused.status == 400 and refused.chain
    else:
        assert 1 <= parsed.per_page <= 1000


NASTY_SEARCHES = ["'", "''; DROP TABLE devices; --", '"', "\\%", "%_%", "é", "ÉCOLE", "😀",
                  "\t", " ", "?", "$1", "NULL"]  # fmt: skip


async def test_any_search_text_is_answered(
    api: httpx.AsyncClient, registry: Registry, subtests: pytest.Subtests
) -> None:
    for text in NASTY_SEARCHES:
        with subtests.test(search=text):
            expect = DeviceExpect(search=text, active_registrations="include")
            body = await _page(api, registry, {**list_params(expect), "per_page": 1000})
            assert [i["id"] for i in body["result"]] == expected_device_ids(registry.fleet, expect)


# --- permissions ---


async def test_read_token_can_list_and_others_cannot(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, registry: Registry
) -> None:
    secret = "test-read-token-devices-abcdefghijklmnopqrstuvwxyz"
    assert await registry.store.create_token(
        str(uuid.uuid4()), "read", hash_secret(secret), "read", [registry.account_id]
    )
    response = await api.get(_path(registry), headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200
    assert [i["id"] for i in response.json()["result"]] == expected_device_ids(
        registry.fleet, DeviceExpect()
    )

    assert_error_envelope((await anon.get(_path(registry))).json(), 9106)
    other = f"/accounts/{'0' * 32}/devices/physical-devices"
    response = await api.get(other)
    assert response.status_code == 403
    assert_error_envelope(response.json(), 10000)


# --- cost: statements and query plans ---


async def test_a_page_costs_two_statements(api: httpx.AsyncClient, registry: Registry) -> None:
    """The credential lookup and the page; no count, no second query for "has more"."""
    db = registry.store.db
    for params in ({}, {"per_page": 1, "sort_by": "last_seen_user.email", "tag": "site:austin"}):
        before = db.query_count
        await _page(api, registry, params)
        assert db.query_count - before == 2


@pytest.fixture
async def sqlite_demo(tmp_path: Path) -> tuple[sqlite3.Connection, str]:
    path = str(tmp_path / "plans.db")
    store = await open_store(path)
    init = await initialise(store)
    await store.close()
    return sqlite3.connect(path), init.account_id


def _plan(conn: sqlite3.Connection, account_id: str, params: dict[str, list[str]]) -> list[str]:
    sql, values = build_device_list_sql(account_id, parse_device_list_query(params), "sqlite")
    return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, values)]


INT_SORTS = {"last_seen_at", "active_registrations", "created_at"}


@pytest.mark.parametrize("sort_by", SORTS)
def test_every_sort_and_every_cursor_is_an_index_range(
    sqlite_demo: tuple[sqlite3.Connection, str], sort_by: str
) -> None:
    """No sort reads the devices table without an index, and a deep page costs what the
    first one does: the keyset is part of the index search."""
    conn, account_id = sqlite_demo
    first = _plan(conn, account_id, {"sort_by": [sort_by]})
    assert first[0].startswith("SEARCH d USING INDEX devices_account_"), first
    assert not any("SCAN" in line or "TEMP B-TREE" in line for line in first), first

    fingerprint = parse_device_list_query({"sort_by": [sort_by]}).filters.fingerprint()
    value: int | str = 5 if sort_by in INT_SORTS else "x"
    cursor = make_cursor(sort_by, True, fingerprint, value, str(uuid.uuid4()))
    deep = _plan(conn, account_id, {"sort_by": [sort_by], "sort_order": ["desc"],
                                    "cursor": [cursor]})  # fmt: skip
    assert ",id)<(?,?)" in deep[0] or "id<?" in deep[0], deep


PLANNED: dict[str, dict[str, list[str]]] = {
    "default list": {},
    "last_seen_user.email filter": {"last_seen_user.email": ["alice@example.com"]},
    "tag filter": {"tag": ["site:berlin"]},
    "id filter": {"id": ["7b3f5a52-0d7e-4f7e-9a1c-3f1f6f3c2a11"]},
}


@pytest.mark.parametrize("name", PLANNED)
def test_documented_plans_are_the_ones_sqlite_chooses(
    sqlite_demo: tuple[sqlite3.Connection, str], name: str
) -> None:
    conn, account_id = sqlite_demo
    plan = _plan(conn, account_id, PLANNED[name])
    assert not any(line.startswith("SCAN d") for line in plan), plan
    documented = DOCS.read_text()
    for line in plan:
        assert line in documented, f"docs/devices.md lacks plan line {line!r}"


def test_docs_name_every_parameter() -> None:
    documented = DOCS.read_text()
    for name in LIST_PARAMETERS:
        if name not in ("id[]", "tag[]", "unknown"):
            assert f"| `{name}` |" in documented, name
    for sort_by in SORTS:
        assert f"`{sort_by}`" in documented
