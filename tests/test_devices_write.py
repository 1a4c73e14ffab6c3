"""Get, delete, revoke and tag one physical device, and keep every device's count of active
registrations true under mixed and concurrent writes (docs/devices.md).

`GET|PATCH|DELETE …/physical-devices/{device_id}`, `POST …/physical-devices/{device_id}/revoke`.
Effects are checked through the registrations API, which is what fleet scripts read.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import uuid
from collections import Counter
from typing import Any

import cloudflare
import httpx
import pytest
from cloudflare import AsyncCloudflare

from tests.conftest import Registry
from tests.devices_expected import DeviceExpect, expected_device, expected_device_ids
from tests.enroll_support import AccessRole, result_of
from tests.expect import assert_error_envelope, assert_success_envelope
from tests.warp_test_client import WarpTestClient
from warp_registry.domain.enrollment import VIRTUAL_IPV4_NETWORK, AddressPool
from warp_registry.domain.records import DeviceRecord, RegistrationRecord
from warp_registry.secrets import hash_secret
from warp_registry.store import open_store
from warp_registry.store.sql_store import BearerProbe

pytest_plugins = ["tests.enroll_fixtures"]  # the access, warp_http and warp fixtures

NULL_RESULT = {"success": True, "errors": [], "messages": [], "result": None}


def _devices(registry: Registry) -> str:
    return f"/accounts/{registry.account_id}/devices/physical-devices"


def _registrations(registry: Registry) -> str:
    return f"/accounts/{registry.account_id}/devices/registrations"


def _shared_device(registry: Registry) -> DeviceRecord:
    """A device with several registrations, some active."""
    counts = Counter(r.device_id for r in registry.fleet.registrations if r.revoked_at is None)
    device_id = max(counts, key=lambda d: (counts[d], d))
    assert counts[device_id] > 1
    return next(d for d in registry.fleet.devices if d.id == device_id)


def _registrations_of(registry: Registry, device_id: str) -> list[RegistrationRecord]:
    return [r for r in registry.fleet.registrations if r.device_id == device_id]


async def _listed(
    sdk: AsyncCloudflare, registry: Registry, device_id: str, status: str = "all"
) -> dict[str, Any]:
    """The device's registrations as the registrations API lists them, by id."""
    pages = sdk.zero_trust.devices.registrations.list(
        account_id=registry.account_id, device={"id": device_id}, status=status,  # type: ignore[arg-type]
        per_page=1000,
    )  # fmt: skip
    return {reg.id: reg async for reg in pages}


async def _device_ids(api: httpx.AsyncClient, registry: Registry, **params: str) -> list[str]:
    response = await api.get(_devices(registry), params={**params, "per_page": "1000"})
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["result"]]


async def _write_token(registry: Registry, permission: str) -> str:
    secret = f"test-{permission}-token-for-devices-abcdefghijklmnopqrstuvwxyz"
    assert await registry.store.create_token(
        str(uuid.uuid4()), permission, hash_secret(secret), permission, [registry.account_id]
    )
    return secret


# --- get ---


async def test_get_through_the_sdk(sdk: AsyncCloudflare, registry: Registry) -> None:
    for device in registry.fleet.devices[:5]:
        for include in (False, True):
            got = await sdk.zero_trust.devices.devices.get(
                device.id, account_id=registry.account_id,
                include="last_seen_registration.policy" if include else "",
            )  # fmt: skip
            want = expected_device(registry.fleet, device.id, include_policy=include)
            assert got is not None and got.to_dict(mode="json") == want


async def test_get_unknown_device_is_404(api: httpx.AsyncClient, registry: Registry) -> None:
    for device_id in (str(uuid.uuid4()), registry.fleet.devices[0].id.upper()):
        response = await api.get(f"{_devices(registry)}/{device_id}")
        if device_id.isupper():  # ids are accepted in any case
            assert response.status_code == 200
            continue
        assert response.status_code == 404
        assert_error_envelope(response.json(), 1101)

    other_account = f"/accounts/{'0' * 32}/devices/physical-devices/{registry.fleet.devices[0].id}"
    response = await api.get(other_account)
    assert response.status_code == 403
    assert_error_envelope(response.json(), 10000)


# --- delete ---


async def test_delete_removes_the_device_and_all_its_registrations(
    sdk: AsyncCloudflare, api: httpx.AsyncClient, registry: Registry
) -> None:
    device = _shared_device(registry)
    registrations = _registrations_of(registry, device.id)
    assert len(await _listed(sdk, registry, device.id)) == len(registrations)

    assert (
        await sdk.zero_trust.devices.devices.delete(device.id, account_id=registry.account_id)
        is None
    )

    assert await _listed(sdk, registry, device.id) == {}
    for reg in registrations:
        with pytest.raises(cloudflare.NotFoundError):
            await sdk.zero_trust.devices.registrations.get(reg.id, account_id=registry.account_id)
    with pytest.raises(cloudflare.NotFoundError):
        await sdk.zero_trust.devices.devices.get(device.id, account_id=registry.account_id)
    assert device.id not in await _device_ids(api, registry, active_registrations="include")

    # Nothing else changed.
    registry.fleet.devices.remove(device)
    registry.fleet.registrations[:] = [r for r in registry.fleet.registrations
                                       if r.device_id != device.id]  # fmt: skip
    expect = DeviceExpect(active_registrations="include")
    assert await _device_ids(api, registry, active_registrations="include") == (
        expected_device_ids(registry.fleet, expect)
    )

    response = await api.delete(f"{_devices(registry)}/{device.id}")
    assert response.status_code == 404  # already gone
    assert_error_envelope(response.json(), 1101)


async def test_delete_frees_the_virtual_ips(
    sdk: AsyncCloudflare, warp: WarpTestClient, access: AccessRole, registry: Registry
) -> None:
    """The lowest addresses of the pool belong to the first demo device. Once it is
    deleted they are free, but enrollment goes on upwards (docs/enrollment.md); only when
    the pool's top is reached does it wrap to them."""
    first = min(registry.fleet.registrations,
                key=lambda r: int(str(r.virtual_ipv4).rsplit(".", 1)[1]))  # fmt: skip
    await sdk.zero_trust.devices.devices.delete(first.device_id, account_id=registry.account_id)
    freed = {r.virtual_ipv4 for r in _registrations_of(registry, first.device_id)}

    enrolled = await warp.register_wireguard(access.identity("newcomer@example.com"))
    got = await sdk.zero_trust.devices.registrations.get(
        enrolled.id, account_id=registry.account_id
    )
    highest = max(_host(str(r.virtual_ipv4)) for r in registry.fleet.registrations)
    assert _host(str(got.virtual_ipv4)) == highest + 1

    registry.store.enrollment.pool = AddressPool(last_host=highest + 1)
    again = await WarpTestClient(warp.http).register_wireguard(access.identity("x@example.com"))
    got = await sdk.zero_trust.devices.registrations.get(again.id, account_id=registry.account_id)
    assert got.virtual_ipv4 == min(freed, key=lambda ip: _host(str(ip)))


def _host(ipv4: str) -> int:
    return int(ipaddress.IPv4Address(ipv4)) - int(VIRTUAL_IPV4_NETWORK.network_address)


async def test_deleting_registrations_never_deletes_their_device(
    sdk: AsyncCloudflare, api: httpx.AsyncClient, registry: Registry
) -> None:
    device = _shared_device(registry)
    ids = [r.id for r in _registrations_of(registry, device.id)]
    await sdk.zero_trust.devices.registrations.bulk_delete(account_id=registry.account_id, id=ids)

    got = await sdk.zero_trust.devices.devices.get(device.id, account_id=registry.account_id)
    assert got is not None and got.active_registrations == 0
    assert device.id not in await _device_ids(api, registry)
    assert device.id in await _device_ids(api, registry, active_registrations="exclude")


# --- revoke ---


async def test_revoke_revokes_every_active_registration_and_keeps_earlier_revocations(
    sdk: AsyncCloudflare, api: httpx.AsyncClient, registry: Registry
) -> None:
    device = next(
        d for d in registry.fleet.devices
        if {r.revoked_at is None for r in _registrations_of(registry, d.id)} == {True, False}
    )  # fmt: skip
    before = await _listed(sdk, registry, device.id)
    revoked_before = {i: reg.revoked_at for i, reg in before.items() if reg.revoked_at}
    assert revoked_before and len(revoked_before) < len(before)

    with pytest.deprecated_call():  # the SDK marks device revoke deprecated
        result = await sdk.zero_trust.devices.devices.revoke(
            device.id, account_id=registry.account_id
        )
    assert result is None

    after = await _listed(sdk, registry, device.id)
    assert set(after) == set(before)  # revoking deletes nothing
    assert await _listed(sdk, registry, device.id, status="active") == {}
    for reg_id, reg in after.items():
        assert reg.revoked_at is not None and reg.updated_at == reg.revoked_at
        if reg_id in revoked_before:
            assert reg.revoked_at == revoked_before[reg_id]
        assert (reg.virtual_ipv4, reg.virtual_ipv6) == (before[reg_id].virtual_ipv4,
                                                        before[reg_id].virtual_ipv6)  # fmt: skip

    # A device without active registrations leaves the default list, stays with 0 under
    # `include`, and an unrevoke brings it back.
    assert device.id not in await _device_ids(api, registry)
    response = await api.get(f"{_devices(registry)}/{device.id}")
    assert response.json()["result"]["active_registrations"] == 0
    assert device.id in await _device_ids(api, registry, active_registrations="include")

    one = next(iter(after))
    with pytest.deprecated_call():
        await sdk.zero_trust.devices.registrations.unrevoke(
            account_id=registry.account_id, id=[one]
        )
    assert device.id in await _device_ids(api, registry)
    response = await api.get(f"{_devices(registry)}/{device.id}")
    assert response.json()["result"]["active_registrations"] == 1


async def test_revoking_the_last_active_registration_hides_the_device(
    sdk: AsyncCloudflare, api: httpx.AsyncClient, registry: Registry
) -> None:
    """Issue 7, consistency: the registrations API's revoke and unrevoke move the device
    out of the default list and back."""
    device = next(
        d for d in registry.fleet.devices
        if [r.revoked_at for r in _registrations_of(registry, d.id)] == [None]
    )  # fmt: skip
    registrations = sdk.zero_trust.devices.registrations
    with pytest.deprecated_call():
        await registrations.revoke(account_id=registry.account_id, id=[device.id])
    assert device.id not in await _device_ids(api, registry)
    assert device.id in await _device_ids(api, registry, active_registrations="exclude")
    zero = await sdk.zero_trust.devices.devices.get(device.id, account_id=registry.account_id)
    assert zero is not None and zero.active_registrations == 0

    with pytest.deprecated_call():
        await registrations.unrevoke(account_id=registry.account_id, id=[device.id])
    assert device.id in await _device_ids(api, registry)
    assert device.id not in await _device_ids(api, registry, active_registrations="exclude")


async def test_revoke_unknown_device_is_404_and_revoke_twice_is_fine(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    response = await api.post(f"{_devices(registry)}/{uuid.uuid4()}/revoke")
    assert response.status_code == 404
    assert_error_envelope(response.json(), 1101)

    device = _shared_device(registry)
    first = await api.post(f"{_devices(registry)}/{device.id}/revoke")
    assert first.json() == NULL_RESULT
    listed = await api.get(_registrations(registry), params={"device.id": device.id,
                                                             "status": "all"})  # fmt: skip
    second = await api.post(f"{_devices(registry)}/{device.id}/revoke")
    assert second.json() == NULL_RESULT
    again = await api.get(_registrations(registry), params={"device.id": device.id,
                                                            "status": "all"})  # fmt: skip
    assert again.json()["result"] == listed.json()["result"]


# --- tags (PATCH) ---


async def _patch(api: httpx.AsyncClient, registry: Registry, device_id: str,
                 body: Any, **kwargs: Any) -> httpx.Response:  # fmt: skip
    content = body if isinstance(body, bytes) else None
    json_body = None if isinstance(body, bytes) else body
    return await api.patch(f"{_devices(registry)}/{device_id}", content=content, json=json_body,
                           **kwargs)  # fmt: skip


async def test_patch_replaces_all_tags_and_empty_object_clears_them(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    device = registry.fleet.devices[0]
    before = (await api.get(f"{_devices(registry)}/{device.id}")).json()["result"]
    assert before["tags"]

    response = await _patch(api, registry, device.id, {"tags": {"owner": "it", "floor": "3"}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert_success_envelope(body)
    assert body["result"]["tags"] == {"owner": "it", "floor": "3"}  # replaced, not merged
    assert body["result"]["updated_at"] > before["updated_at"]
    fetched = (await api.get(f"{_devices(registry)}/{device.id}")).json()["result"]
    assert fetched == body["result"]

    # The tag filter follows: old tags no longer match, new ones do.
    assert device.id in await _device_ids(api, registry, tag="owner:it")
    old_key, old_value = next(iter(before["tags"].items()))
    assert device.id not in await _device_ids(api, registry, tag=f"{old_key}:{old_value}")

    response = await _patch(api, registry, device.id, {"tags": {}})
    assert response.json()["result"]["tags"] == {}
    assert device.id not in await _device_ids(api, registry, tag="owner:it")


async def test_patch_limits(api: httpx.AsyncClient, registry: Registry) -> None:
    device = registry.fleet.devices[1]
    ten = {f"key{n}": "v" for n in range(10)}
    long_value = {"note": "é" * 1024}
    for tags in (ten, long_value, {"empty": ""}, {"k" * 256: "v"}):
        response = await _patch(api, registry, device.id, {"tags": tags})
        assert response.status_code == 200, response.text
        assert response.json()["result"]["tags"] == tags


BAD_BODIES: list[tuple[str, Any, str]] = [
    # (case, body, words the error must contain)
    ("eleven tags", {"tags": {f"key{n}": "v" for n in range(11)}}, "at most 10"),
    ("value of 1025 characters", {"tags": {"note": "x" * 1025}}, "tags.note"),
    ("another field", {"tags": {}, "name": "renamed"}, "name"),
    ("only another field", {"colour": "blue"}, "colour"),
    ("tags not an object", {"tags": ["a:b"]}, "tags"),
    ("tags null", {"tags": None}, "tags"),
    ("value not a string", {"tags": {"floor": 3}}, "tags.floor"),
    ("value null", {"tags": {"floor": None}}, "tags.floor"),
    ("empty key", {"tags": {"": "v"}}, "key"),
    ("key of 257 characters", {"tags": {"k" * 257: "v"}}, "key"),
    ("key with a colon", {"tags": {"a:b": "v"}}, "':'"),
    ("NUL in a value", {"tags": {"a": "x\x00y"}}, "NUL"),
    ("a JSON array", ["tags"], "object"),
]


async def test_patch_refuses_bad_bodies_and_changes_nothing(
    api: httpx.AsyncClient, registry: Registry, subtests: pytest.Subtests
) -> None:
    device = registry.fleet.devices[2]
    path = f"{_devices(registry)}/{device.id}"
    before = (await api.get(path)).json()["result"]
    for case, body, words in BAD_BODIES:
        with subtests.test(case=case):
            response = await _patch(api, registry, device.id, body)
            assert response.status_code == 400, response.text
            error = assert_error_envelope(response.json(), 2003)
            assert error["error_chain"][0]["code"] == 11022
            assert words in error["error_chain"][0]["message"]

    for raw in (b"{not json", b"", b"\xff\xfe", b'{"tags": {"a": "b"}'):
        with subtests.test(raw=raw):
            response = await _patch(api, registry, device.id, raw)
            assert response.status_code == 400
            assert "error_chain" not in assert_error_envelope(response.json(), 2003)

    assert (await api.get(path)).json()["result"] == before


async def test_patch_without_tags_changes_nothing(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    device = registry.fleet.devices[4]
    path = f"{_devices(registry)}/{device.id}"
    before = (await api.get(path)).json()["result"]
    response = await _patch(api, registry, device.id, {})
    assert response.status_code == 200
    assert response.json()["result"] == before


async def test_patch_unknown_device_is_404(api: httpx.AsyncClient, registry: Registry) -> None:
    response = await _patch(api, registry, str(uuid.uuid4()), {"tags": {"a": "b"}})
    assert response.status_code == 404
    assert_error_envelope(response.json(), 1101)


async def test_read_token_cannot_write(api: httpx.AsyncClient, registry: Registry) -> None:
    """cases.md R08: a Zero Trust Read token lists but gets 403 / 10000 on every write,
    and nothing changes."""
    headers = {"Authorization": f"Bearer {await _write_token(registry, 'read')}"}
    device = _shared_device(registry)
    path = f"{_devices(registry)}/{device.id}"
    before = (await api.get(path)).json()["result"]
    registrations_before = (
        await api.get(_registrations(registry), params={"status": "all", "per_page": 1000})
    ).json()

    writes = [
        api.delete(path, headers=headers),
        api.post(f"{path}/revoke", headers=headers),
        api.patch(path, json={"tags": {"a": "b"}}, headers=headers),
    ]
    for response in await asyncio.gather(*writes):
        assert response.status_code == 403
        assert_error_envelope(response.json(), 10000)

    assert (await api.get(path, headers=headers)).json()["result"] == before
    assert (await api.get(_registrations(registry),
                          params={"status": "all", "per_page": 1000})).json() == (
        registrations_before
    )  # fmt: skip


# --- the count of active registrations stays true ---


async def _check_counts(api: httpx.AsyncClient, registry: Registry) -> None:
    """Every device's `active_registrations` equals what the registrations list shows as
    active on it, and the store finds no derived column out of step."""
    response = await api.get(_registrations(registry), params={"per_page": 1000})
    active = Counter(item["device"]["id"] for item in response.json()["result"])
    response = await api.get(
        _devices(registry), params={"active_registrations": "include", "per_page": 1000}
    )
    shown = {item["id"]: item["active_registrations"] for item in response.json()["result"]}
    assert shown == {device_id: active.get(device_id, 0) for device_id in shown}
    assert set(active) <= set(shown)
    assert await registry.store.devices.out_of_step(registry.account_id) == []


async def test_counts_stay_true_through_every_kind_of_write(
    api: httpx.AsyncClient, warp_http: httpx.AsyncClient, access: AccessRole, registry: Registry
) -> None:
    await _check_counts(api, registry)

    # Enrollment: two users on one new machine, then one of them leaves by itself.
    laptop = WarpTestClient(warp_http)
    alice = await laptop.register_wireguard(access.identity("alice.new@example.com"))
    bob = await laptop.register_wireguard(access.identity("bob.new@example.com"))
    await _check_counts(api, registry)
    result_of(await laptop.get(bob))  # a client call marks the device seen
    await _check_counts(api, registry)
    assert (await laptop.delete(bob)).status_code == 204
    await _check_counts(api, registry)

    # Revoke, re-enroll (a new registration beside the revoked one), unrevoke.
    await api.post(f"{_registrations(registry)}/revoke", params={"id": alice.id})
    await _check_counts(api, registry)
    again = await laptop.register_wireguard(access.identity("alice.new@example.com"))
    assert again.id != alice.id
    await api.post(f"{_registrations(registry)}/unrevoke", params={"id": alice.id})
    await _check_counts(api, registry)

    # Bulk delete across devices, device revoke, device delete, legacy revoke/unrevoke.
    demo = registry.fleet.registrations
    await api.delete(_registrations(registry), params={"id": [again.id, demo[0].id, demo[5].id]})
    await _check_counts(api, registry)
    shared = _shared_device(registry)
    await api.post(f"{_devices(registry)}/{shared.id}/revoke")
    await _check_counts(api, registry)
    await api.delete(f"{_devices(registry)}/{registry.fleet.devices[10].id}")
    await _check_counts(api, registry)
    legacy = f"/accounts/{registry.account_id}/devices"
    ids = [r.id for r in demo[10:20]]
    assert (await api.post(f"{legacy}/revoke", json=ids)).status_code == 200
    await _check_counts(api, registry)
    assert (await api.post(f"{legacy}/unrevoke", json=ids[:5])).status_code == 200
    await _check_counts(api, registry)
    await api.post(
        f"{_registrations(registry)}/unrevoke",
        params={"id": [r.id for r in _registrations_of(registry, shared.id)]},
    )
    await _check_counts(api, registry)


async def test_counts_stay_true_under_concurrent_writes(
    api: httpx.AsyncClient, registry: Registry, database_url: str
) -> None:
    """Revokes, unrevokes, deletes and device revokes race on the same devices, from two
    stores (two processes' worth of connections); every count ends equal to a COUNT."""
    second = await open_store(database_url)
    try:
        probe = BearerProbe(hash_secret(registry.token))
        stores = [registry.store, second]
        busy = sorted({r.device_id for r in registry.fleet.registrations
                       if len(_registrations_of(registry, r.device_id)) > 1})  # fmt: skip
        targets = [r.id for r in registry.fleet.registrations if r.device_id in busy]
        rng = random.Random(7)

        async def one(n: int) -> None:
            store = stores[n % 2]
            ids = rng.sample(targets, 3)
            kind = n % 5
            if kind == 0:
                await store.revoke_registrations(probe, registry.account_id, ids)
            elif kind == 1:
                await store.unrevoke_registrations(probe, registry.account_id, ids)
            elif kind == 2:
                await store.devices.revoke_device(registry.account_id, rng.choice(busy))
            elif kind == 3 and n % 3 == 0:
                await store.delete_registrations(probe, registry.account_id, ids[:1])
            else:
                await store.revoke_registrations(probe, registry.account_id, ids[:1])

        await asyncio.gather(*(one(n) for n in range(60)))
    finally:
        await second.close()

    await _check_counts(api, registry)
