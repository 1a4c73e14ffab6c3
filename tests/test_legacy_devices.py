"""The deprecated v1 `/devices` endpoints (docs/devices.md, "Legacy v1 endpoints").

`GET /devices`, `GET /devices/{id}`, `GET /devices/{id}/override_codes`,
`POST /devices/revoke`, `POST /devices/unrevoke`, through the official SDK methods that
call them (`zero_trust.devices.list`, `get`, `override_codes.list`, `revoke.create`,
`unrevoke.create`, all marked deprecated by the SDK) and as raw HTTP. A v1 device id is a
registration id.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import cloudflare
import httpx
import pytest
from cloudflare import AsyncCloudflare

from tests.conftest import SEED, Registry
from tests.devices_expected import expected_legacy_item, legacy_order
from tests.expect import assert_error_envelope, assert_success_envelope, rfc3339
from warp_registry.bootstrap import plan_registry
from warp_registry.clock import now_us
from warp_registry.demo import DemoSize, build_demo_fleet
from warp_registry.domain.override_codes import override_codes
from warp_registry.domain.records import FleetRecords, TokenRecord
from warp_registry.http.app import RegistryApp
from warp_registry.http.context import AppContext
from warp_registry.secrets import hash_secret, new_api_token
from warp_registry.store.sql_store import SqlStore

DEPRECATION = "@1762819200"
NULL_RESULT = {"success": True, "errors": [], "messages": [], "result": None}


def _legacy(account_id: str) -> str:
    return f"/accounts/{account_id}/devices"


def _unknown(n: int) -> str:
    """A well-formed registration id the demo fleet does not hold."""
    return f"00000000-0000-4000-8000-{n:012x}"


async def _statuses(api: httpx.AsyncClient, registry: Registry) -> dict[str, str | None]:
    """Every registration's `revoked_at`, as the registrations API lists them."""
    response = await api.get(
        f"/accounts/{registry.account_id}/devices/registrations",
        params={"status": "all", "per_page": 1000},
    )
    return {item["id"]: item["revoked_at"] for item in response.json()["result"]}


def _active(registry: Registry) -> list[str]:
    return [r.id for r in registry.fleet.registrations if r.revoked_at is None]


# --- list (cases.md R01, R04) ---


async def test_r01_stock_sdk_returns_the_first_page_of_twenty(
    sdk: AsyncCloudflare, registry: Registry
) -> None:
    """The SDK types this list as a single page: it never asks for page 2."""
    with pytest.deprecated_call():
        pages = sdk.zero_trust.devices.list(account_id=registry.account_id)
    devices = [device async for device in pages]

    want = legacy_order(registry.fleet)
    assert len(want) > 20
    assert [d.id for d in devices] == want[:20]
    first = devices[0]
    record = next(r for r in registry.fleet.registrations if r.id == first.id)
    assert isinstance(first.created, datetime) and isinstance(first.last_seen, datetime)
    assert first.created.isoformat().startswith(rfc3339(record.created_at)[:19])
    assert first.deleted is False


async def test_r04_items_carry_every_documented_field(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    """Every registration, revoked ones included, with all v1 keys (null when unknown)."""
    response = await api.get(_legacy(registry.account_id), params={"per_page": 1000})
    assert response.status_code == 200
    body = response.json()
    assert_success_envelope(body)

    want = legacy_order(registry.fleet)
    assert [item["id"] for item in body["result"]] == want
    for item in body["result"]:
        assert item == expected_legacy_item(registry.fleet, item["id"])
    revoked = [item for item in body["result"] if item["revoked_at"] is not None]
    assert len(revoked) == sum(r.revoked_at is not None for r in registry.fleet.registrations)
    assert any(item["user"] == {"id": None, "email": None, "name": None}
               for item in body["result"])  # the service-token registration  # fmt: skip


async def test_pages_by_number(api: httpx.AsyncClient, registry: Registry) -> None:
    want = legacy_order(registry.fleet)
    seen: list[str] = []
    pages = math.ceil(len(want) / 20)
    for page in range(1, pages + 2):
        response = await api.get(_legacy(registry.account_id), params={"page": page})
        body = response.json()
        count = len(want[(page - 1) * 20 : page * 20])
        assert body["result_info"] == {
            "page": page, "per_page": 20, "count": count, "total_count": len(want),
            "total_pages": pages,
        }  # fmt: skip
        seen.extend(item["id"] for item in body["result"])
    assert seen == want


# A registry holding 91 registrations, as in the report behind cases.md R01.


@pytest.fixture
async def fleet91(store: SqlStore) -> AsyncIterator[tuple[httpx.AsyncClient, AsyncCloudflare,
                                                           FleetRecords, str]]:  # fmt: skip
    anchor = now_us()
    fleet, account_id, _ = plan_registry(SEED, False, anchor)
    size = DemoSize(users=24, devices=90, shared_devices=0, revoked=3, browser_extensions=2)
    demo = build_demo_fleet(SEED, anchor, account_id, fleet.accounts[0].ipv6_prefix,
                            fleet.profiles[0].id, size)  # fmt: skip
    fleet.profiles.extend(demo.profiles)
    fleet.users.extend(demo.users)
    fleet.devices.extend(demo.devices)
    fleet.registrations.extend(demo.registrations)
    token = new_api_token()
    fleet.tokens.append(TokenRecord(str(uuid.uuid4()), "t", hash_secret(token), "write",
                                    [account_id], anchor))  # fmt: skip
    assert await store.insert_fleet(fleet)
    assert len(fleet.registrations) == 91

    transport = httpx.ASGITransport(app=RegistryApp(AppContext(store=store)))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver/client/v4",
        headers={"Authorization": f"Bearer {token}"},
    ) as raw:  # fmt: skip
        client = AsyncCloudflare(
            api_token=token, base_url="http://testserver/client/v4",
            http_client=httpx.AsyncClient(transport=transport), max_retries=0,
        )  # fmt: skip
        yield raw, client, fleet, account_id
        await client.close()


async def test_r01_ninety_one_devices_page_five_holds_the_last_eleven(
    fleet91: tuple[httpx.AsyncClient, AsyncCloudflare, FleetRecords, str],
) -> None:
    raw, client, fleet, account_id = fleet91
    want = legacy_order(fleet)

    response = await raw.get(_legacy(account_id), params={"page": 5})
    body = response.json()
    assert [item["id"] for item in body["result"]] == want[80:]
    assert body["result_info"] == {
        "page": 5, "per_page": 20, "count": 11, "total_count": 91, "total_pages": 5,
    }  # fmt: skip

    with pytest.deprecated_call():
        stock = [device.id async for device in client.zero_trust.devices.list(
            account_id=account_id)]  # fmt: skip
    assert stock == want[:20]  # the stock SDK loop still stops at 20


# --- get and override codes ---


def _expected_detail(registry: Registry, registration_id: str) -> dict[str, Any]:
    item = expected_legacy_item(registry.fleet, registration_id)
    reg = next(r for r in registry.fleet.registrations if r.id == registration_id)
    account = registry.fleet.accounts[0]
    for key in ("manufacturer", "os_distro_name", "os_distro_revision", "os_version_extra",
                "revoked_at"):  # fmt: skip
        del item[key]
    item.update({
        "account": {"id": account.id, "account_type": None, "name": account.name},
        "gateway_device_id": reg.device_id,
        "key_type": reg.key_type,
        "tunnel_type": reg.tunnel_type,
    })  # fmt: skip
    return item


async def test_get_through_the_sdk(
    sdk: AsyncCloudflare, api: httpx.AsyncClient, registry: Registry
) -> None:
    shared = next(r for r in registry.fleet.registrations if r.id != r.device_id)
    for reg in (registry.fleet.registrations[0], shared):
        with pytest.deprecated_call():
            got = await sdk.zero_trust.devices.get(reg.id, account_id=registry.account_id)
        assert got is not None and got.id == reg.id and got.key == reg.key
        assert got.account is not None and got.account.id == registry.account_id

        response = await api.get(f"{_legacy(registry.account_id)}/{reg.id}")
        assert response.json()["result"] == _expected_detail(registry, reg.id)


async def test_get_unknown_is_404(sdk: AsyncCloudflare, registry: Registry) -> None:
    with pytest.deprecated_call(), pytest.raises(cloudflare.NotFoundError) as raised:
        await sdk.zero_trust.devices.get(_unknown(1), account_id=registry.account_id)
    assert raised.value.response.headers["deprecation"] == DEPRECATION
    assert_error_envelope(raised.value.response.json(), 1101)


async def test_override_codes_through_the_sdk(sdk: AsyncCloudflare, registry: Registry) -> None:
    target = registry.fleet.registrations[3]
    before = now_us()
    with pytest.deprecated_call():
        got = await sdk.zero_trust.devices.override_codes.list(
            target.id, account_id=registry.account_id
        )
    after = now_us()
    assert got is not None and got.disable_for_time is not None
    codes = got.disable_for_time.to_dict()  # keyed by the API's names: "1", "3"...
    possible = [override_codes(target.override_secret, t)["disable_for_time"]
                for t in (before, after)]  # fmt: skip
    assert codes in possible

    with pytest.deprecated_call(), pytest.raises(cloudflare.NotFoundError):
        await sdk.zero_trust.devices.override_codes.list(
            _unknown(2), account_id=registry.account_id
        )


# --- revoke and unrevoke (cases.md R07) ---


async def test_r07_revoke_accepts_200_ids_and_refuses_201(
    sdk: AsyncCloudflare, api: httpx.AsyncClient, registry: Registry
) -> None:
    targets = _active(registry)[:3]
    ids = [*targets, *(_unknown(n) for n in range(197))]  # unknown ids are ignored
    assert len(ids) == 200
    before = await _statuses(api, registry)

    with pytest.deprecated_call(), pytest.raises(cloudflare.BadRequestError) as raised:
        await sdk.zero_trust.devices.revoke.create(
            account_id=registry.account_id, body=[*ids, _unknown(500)]
        )
    error = assert_error_envelope(raised.value.response.json(), 2003)
    assert error["error_chain"][0]["code"] == 11005 and "200" in error["error_chain"][0]["message"]
    assert await _statuses(api, registry) == before  # nothing changed

    with pytest.deprecated_call():
        assert await sdk.zero_trust.devices.revoke.create(
            account_id=registry.account_id, body=ids
        ) is None  # fmt: skip
    after = await _statuses(api, registry)
    assert {i for i in after if after[i] != before[i]} == set(targets)
    assert all(after[i] is not None for i in targets)

    # Revoking again changes nothing: the first revocation stays.
    with pytest.deprecated_call():
        await sdk.zero_trust.devices.revoke.create(account_id=registry.account_id, body=targets)
    assert await _statuses(api, registry) == after

    with pytest.deprecated_call():
        assert await sdk.zero_trust.devices.unrevoke.create(
            account_id=registry.account_id, body=ids
        ) is None  # fmt: skip
    assert await _statuses(api, registry) == before

    with pytest.deprecated_call(), pytest.raises(cloudflare.BadRequestError):
        await sdk.zero_trust.devices.unrevoke.create(
            account_id=registry.account_id, body=[*ids, _unknown(501)]
        )


async def test_revoke_answers_a_null_result(api: httpx.AsyncClient, registry: Registry) -> None:
    for operation in ("revoke", "unrevoke"):
        response = await api.post(
            f"{_legacy(registry.account_id)}/{operation}", json=[_active(registry)[0]]
        )
        assert response.json() == NULL_RESULT


BAD_BODIES: list[tuple[str, bytes, int | None]] = [
    # (case, body, chain code; None: no chain, the body is not JSON at all)
    ("not JSON", b"[not json", None),
    ("empty body", b"", None),
    ("not UTF-8", b"\xff\xfe", None),
    ("an object", b'{"id": ["00000000-0000-4000-8000-000000000001"]}', 11022),
    ("a string", b'"00000000-0000-4000-8000-000000000001"', 11022),
    ("an empty array", b"[]", 11005),
    ("not a UUID", b'["00000000-0000-4000-8000-000000000001", "nope"]', 11003),
    ("a number", b"[1]", 11003),
]


async def test_bad_bodies_are_400_and_change_nothing(
    api: httpx.AsyncClient, registry: Registry, subtests: pytest.Subtests
) -> None:
    before = await _statuses(api, registry)
    for operation in ("revoke", "unrevoke"):
        for case, body, chain in BAD_BODIES:
            with subtests.test(operation=operation, case=case):
                response = await api.post(
                    f"{_legacy(registry.account_id)}/{operation}", content=body
                )
                assert response.status_code == 400, response.text
                assert response.headers["deprecation"] == DEPRECATION
                error = assert_error_envelope(response.json(), 2003)
                if chain is None:
                    assert "error_chain" not in error
                else:
                    assert error["error_chain"][0]["code"] == chain
    assert await _statuses(api, registry) == before


async def test_duplicates_count_toward_the_limit_but_act_once(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    target = _active(registry)[0]
    response = await api.post(
        f"{_legacy(registry.account_id)}/revoke", json=[target, target.upper()] * 100
    )
    assert response.status_code == 200
    assert (await _statuses(api, registry))[target] is not None


# --- validation, headers, permissions ---


async def test_page_and_per_page_are_validated(api: httpx.AsyncClient, registry: Registry) -> None:
    cases = [("page", "0", 11020), ("page", "x", 11020), ("page", "-1", 11020),
             ("page", "10000000", 11020), ("per_page", "0", 11000),
             ("per_page", "1001", 11000)]  # fmt: skip
    for name, value, chain in cases:
        response = await api.get(_legacy(registry.account_id), params={name: value})
        assert response.status_code == 400, (name, value)
        assert assert_error_envelope(response.json(), 6008)["error_chain"][0]["code"] == chain
    response = await api.get(_legacy(registry.account_id), params={"page": 1000000})
    assert response.status_code == 200 and response.json()["result"] == []


async def test_every_answer_carries_the_deprecation_header(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, registry: Registry
) -> None:
    base = _legacy(registry.account_id)
    reg = registry.fleet.registrations[0].id
    answers = [
        await api.get(base),
        await api.get(f"{base}/{reg}"),
        await api.get(f"{base}/{reg}/override_codes"),
        await api.post(f"{base}/revoke", json=[reg]),
        await api.post(f"{base}/unrevoke", json=[reg]),
        await api.get(f"{base}/{_unknown(3)}"),  # 404
        await anon.get(base),  # 400, no credentials
        await api.get(base, headers={"Authorization": "Bearer unknown-token-0123456789"}),
    ]
    for response in answers:
        assert response.headers["deprecation"] == DEPRECATION, response.request.url
        assert 'rel="deprecation"' in response.headers["link"]
    assert [r.status_code for r in answers] == [200] * 5 + [404, 400, 403]

    # The current endpoints are not deprecated.
    current = await api.get(f"{base}/physical-devices")
    assert "deprecation" not in current.headers


async def test_read_token_reads_but_cannot_revoke(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    secret = "test-read-token-legacy-abcdefghijklmnopqrstuvwxyz"
    assert await registry.store.create_token(
        str(uuid.uuid4()), "read", hash_secret(secret), "read", [registry.account_id]
    )
    headers = {"Authorization": f"Bearer {secret}"}
    base = _legacy(registry.account_id)
    reg = _active(registry)[0]
    for path in (base, f"{base}/{reg}", f"{base}/{reg}/override_codes"):
        assert (await api.get(path, headers=headers)).status_code == 200
    for operation in ("revoke", "unrevoke"):
        response = await api.post(f"{base}/{operation}", json=[reg], headers=headers)
        assert response.status_code == 403
        assert_error_envelope(response.json(), 10000)
    assert (await _statuses(api, registry))[reg] is None


# --- multi-user mode ---


async def test_multi_user_accounts_get_400_from_every_v1_endpoint(
    sdk: AsyncCloudflare, api: httpx.AsyncClient, registry: Registry
) -> None:
    base = _legacy(registry.account_id)
    reg = _active(registry)[0]
    calls = [("GET", base, None), ("GET", f"{base}/{reg}", None),
             ("GET", f"{base}/{reg}/override_codes", None), ("POST", f"{base}/revoke", [reg]),
             ("POST", f"{base}/unrevoke", [reg])]  # fmt: skip
    assert await registry.store.devices.set_multi_user(registry.account_id, True)

    for method, path, body in calls:
        response = await api.request(method, path, json=body)
        assert response.status_code == 400, path
        assert response.headers["deprecation"] == DEPRECATION
        error = assert_error_envelope(response.json(), 1110)
        assert "multi-user mode" in error["message"]
    assert (await _statuses(api, registry))[reg] is None  # the revoke did nothing

    with pytest.deprecated_call(), pytest.raises(cloudflare.BadRequestError):
        await sdk.zero_trust.devices.get(reg, account_id=registry.account_id)

    # Credentials are still checked first, and the current endpoints still work.
    response = await api.get(base, headers={"Authorization": "Bearer unknown-token-0123456789"})
    assert response.status_code == 403
    assert (await api.get(f"{base}/physical-devices")).status_code == 200
    assert (await api.get(f"{base}/registrations/{reg}")).status_code == 200

    assert await registry.store.devices.set_multi_user(registry.account_id, False)
    for method, path, body in calls:
        assert (await api.request(method, path, json=body)).status_code == 200, path


async def test_multi_user_switch_on_unknown_account(registry: Registry) -> None:
    assert not await registry.store.devices.set_multi_user("0" * 32, True)
    assert await registry.store.devices.multi_user("0" * 32) is None
    assert await registry.store.devices.multi_user(registry.account_id) is False
