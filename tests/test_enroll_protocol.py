"""The WARP client protocol end to end: what a client does, and what the admin API then shows.

A protocol-level client (tests/warp_test_client.py, written from the reference) enrolls
and changes its registration; every change is checked through the official `cloudflare`
SDK's `registrations.get`, i.e. through the admin API a fleet script would use.
"""

from __future__ import annotations

import base64
from datetime import datetime

import httpx
import jwt
import pytest
from cloudflare import AsyncCloudflare, NotFoundError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import Registry
from tests.enroll_support import (
    AccessRole,
    admin_get,
    assert_error,
    device_row,
    result_of,
    user_groups,
)
from tests.warp_test_client import Identity, Registered, WarpTestClient, wireguard_key_pair

pytest_plugins = ["tests.enroll_fixtures"]  # the access, warp_http and warp fixtures


def _when(value: str | datetime) -> datetime:
    """An RFC3339 timestamp as the SDK or the client API gives it, comparable."""
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _microseconds(value: str | datetime) -> int:
    moment = _when(value)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def _default_profile_id(registry: Registry) -> str:
    return next(p.id for p in registry.fleet.profiles if p.is_default)


async def test_wgcf_then_usque_as_the_admin_api_sees_it(
    warp: WarpTestClient, access: AccessRole, sdk: AsyncCloudflare, registry: Registry
) -> None:
    identity = access.identity("Nova.Quinn@example.com", name="Nova Quinn", groups=["eng"])
    reg = await warp.register_wireguard(identity)
    sent_key = reg.result["key"]

    seen = await admin_get(sdk, registry, reg.id)
    assert (seen.key, seen.key_type, seen.tunnel_type) == (sent_key, "curve25519", "wireguard")
    assert seen.user is not None
    assert (seen.user.email, seen.user.name) == ("nova.quinn@example.com", "Nova Quinn")
    assert seen.device.id == reg.id  # a new device: the registration id is the device id
    assert seen.device.name == "Pixel 7 Pro"  # no name sent: the model
    assert seen.device.client_version == "a-6.3-1922"
    addresses = reg.result["config"]["interface"]["addresses"]
    assert (seen.virtual_ipv4, seen.virtual_ipv6) == (addresses["v4"], addresses["v6"])
    assert _when(seen.created_at) == _when(seen.updated_at) == _when(reg.result["created"])
    assert seen.revoked_at is None
    assert seen.policy is not None and seen.policy.id == _default_profile_id(registry)

    # usque's step 2 on the same registration: a P-256 key, the MASQUE tunnel, a name.
    switched = result_of(await warp.enroll_masque(reg, name="nova-laptop"))
    masque_key = reg.extra["masque_public_key"]
    assert switched["key"] == masque_key and "token" not in switched

    after = await admin_get(sdk, registry, reg.id)
    assert (after.key, after.key_type, after.tunnel_type) == (masque_key, "secp256r1", "masque")
    assert after.device.name == "nova-laptop"
    assert after.device.id == seen.device.id and after.user == seen.user
    assert (after.virtual_ipv4, after.virtual_ipv6) == (seen.virtual_ipv4, seen.virtual_ipv6)
    assert after.created_at == seen.created_at
    assert _when(after.updated_at) > _when(seen.updated_at)
    assert _when(after.updated_at) == _when(switched["updated"])
    assert _when(after.last_seen_at) >= _when(after.updated_at)


async def test_peer_keys_are_wireguard_base64_then_masque_pem(
    warp: WarpTestClient, access: AccessRole
) -> None:
    reg = await warp.register_usque(access.identity("peer.keys@example.com"))
    wireguard_peer = reg.result["config"]["peers"][0]["public_key"]
    assert len(base64.b64decode(wireguard_peer, validate=True)) == 32

    result = result_of(await warp.enroll_masque(reg))
    pem = result["config"]["peers"][0]["public_key"]
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    peer = serialization.load_pem_public_key(pem.encode())
    assert isinstance(peer, ec.EllipticCurvePublicKey) and isinstance(peer.curve, ec.SECP256R1)

    endpoint = result["config"]["peers"][0]["endpoint"]
    assert set(endpoint) == {"v4", "v6", "host", "ports"}
    assert 443 in endpoint["ports"]


async def test_response_carries_what_clients_read(
    warp: WarpTestClient, access: AccessRole, registry: Registry
) -> None:
    reg = await warp.register_wireguard(access.identity("shape@example.com"))
    result = reg.result

    assert set(result) >= {"id", "token", "key", "key_type", "tunnel_type", "account",
                           "config", "created", "updated", "policy"}  # fmt: skip
    assert result["account"]["account_type"] == "team"
    assert result["account"]["id"] == registry.account_id
    assert len(base64.b64decode(result["config"]["client_id"], validate=True)) == 3
    assert result["locale"] == "en-US"  # echoed as Cloudflare does, with a hyphen
    assert result["tos"] == "2026-01-02T01:04:05.678000Z"
    assert result["policy"]["policy_id"] == _default_profile_id(registry)
    assert result["policy"]["captive_portal"] == 180

    fetched = result_of(await warp.get(reg))
    assert "token" not in fetched
    assert fetched["config"] == result["config"] and fetched["key"] == result["key"]


async def test_an_empty_body_enrolls_without_a_key_until_one_is_sent(
    warp: WarpTestClient, access: AccessRole, sdk: AsyncCloudflare, registry: Registry
) -> None:
    result = result_of(await warp.post_reg(access.identity("keyless@example.com"), {}))
    assert (result["key"], result["key_type"], result["tunnel_type"]) == ("", None, None)
    reg = Registered(result["id"], result["token"], result)

    _, key = wireguard_key_pair()
    assert result_of(await warp.patch(reg, {"key": key}))["key"] == key
    seen = await admin_get(sdk, registry, reg.id)
    assert (seen.key, seen.key_type, seen.tunnel_type) == (key, "curve25519", "wireguard")


@pytest.mark.parametrize("version", ["v0", "v0a4616", "v0i2308311933", "v0a745"])
async def test_every_build_prefix_is_served(
    warp_http: httpx.AsyncClient, access: AccessRole, version: str
) -> None:
    client = WarpTestClient(warp_http, version=version)
    reg = await client.register_wireguard(access.identity(f"{version}@example.com"))
    assert result_of(await client.get(reg))["id"] == reg.id


@pytest.mark.parametrize("version", ["v1", "v0x", "v0a", "v00a12", "V0"])
async def test_other_prefixes_are_not_routed(warp_http: httpx.AsyncClient, version: str) -> None:
    assert_error(await warp_http.post(f"/{version}/reg", json={}), 404, 7003)


async def test_zero_trust_ids_with_t_prefix_are_accepted(
    warp: WarpTestClient, warp_http: httpx.AsyncClient, access: AccessRole
) -> None:
    reg = await warp.register_wireguard(access.identity("tee@example.com"))
    response = await warp_http.get(f"/v0/reg/t.{reg.id}", headers=reg.auth)
    assert result_of(response)["id"] == reg.id


async def test_put_rotates_the_key_like_patch(
    warp: WarpTestClient,
    warp_http: httpx.AsyncClient,
    access: AccessRole,
    sdk: AsyncCloudflare,
    registry: Registry,
) -> None:
    reg = await warp.register_wireguard(access.identity("ios.user@example.com"))
    before = await admin_get(sdk, registry, reg.id)
    _, new_key = wireguard_key_pair()

    response = await warp_http.put(warp.path(f"/{reg.id}"), json={"key": new_key}, headers=reg.auth)
    assert result_of(response)["key"] == new_key
    after = await admin_get(sdk, registry, reg.id)
    assert (after.key, after.key_type, after.tunnel_type) == (new_key, "curve25519", "wireguard")
    assert _when(after.updated_at) > _when(before.updated_at)


async def test_resending_the_same_key_changes_nothing(
    warp: WarpTestClient, access: AccessRole, sdk: AsyncCloudflare, registry: Registry
) -> None:
    reg = await warp.register_wireguard(access.identity("same.key@example.com"))
    before = await admin_get(sdk, registry, reg.id)

    body = {"key": reg.result["key"], "key_type": "curve25519", "tunnel_type": "wireguard"}
    result_of(await warp.patch(reg, body))
    after = await admin_get(sdk, registry, reg.id)
    assert after.updated_at == before.updated_at and after.key == before.key


async def test_rename_and_warp_switch(
    warp: WarpTestClient, access: AccessRole, sdk: AsyncCloudflare, registry: Registry
) -> None:
    reg = await warp.register_wireguard(access.identity("rename@example.com"))

    result = result_of(await warp.patch(reg, {"name": "  Office Pixel  "}))
    assert result["name"] == "Office Pixel"
    assert (await admin_get(sdk, registry, reg.id)).device.name == "Office Pixel"

    assert result_of(await warp.patch(reg, {"warp_enabled": False}))["warp_enabled"] is False
    assert result_of(await warp.get(reg))["warp_enabled"] is False


async def test_client_delete_removes_the_registration(
    warp: WarpTestClient, access: AccessRole, sdk: AsyncCloudflare, registry: Registry
) -> None:
    reg = await warp.register_wireguard(access.identity("leaving@example.com"))

    response = await warp.delete(reg)
    assert response.status_code == 204 and response.content == b""
    assert_error(await warp.get(reg), 401, 1021)
    with pytest.raises(NotFoundError):
        await admin_get(sdk, registry, reg.id)
    device = await device_row(registry.store, reg.id)
    assert device["last_seen_registration_id"] is None


# --- devices and users ---


async def test_second_user_on_a_device_shares_the_device(
    warp: WarpTestClient, access: AccessRole, sdk: AsyncCloudflare, registry: Registry
) -> None:
    first = await warp.register_wireguard(access.identity("first@example.com"))
    second = await warp.register_wireguard(access.identity("second@example.com"))

    assert second.id != first.id
    one, two = await admin_get(sdk, registry, first.id), await admin_get(sdk, registry, second.id)
    assert one.device.id == two.device.id == first.id
    assert one.user is not None and two.user is not None and one.user.id != two.user.id
    assert {one.virtual_ipv4} != {two.virtual_ipv4}
    assert result_of(await warp.get(first))["id"] == first.id  # both stay usable


async def test_same_user_again_replaces_the_registration(
    warp: WarpTestClient, access: AccessRole, sdk: AsyncCloudflare, registry: Registry
) -> None:
    old = await warp.register_wireguard(access.identity("again@example.com"))
    new = await warp.register_wireguard(access.identity("again@example.com"))

    assert new.id != old.id
    with pytest.raises(NotFoundError):
        await admin_get(sdk, registry, old.id)
    assert_error(await warp.get(old), 401, 1021)
    replacement = await admin_get(sdk, registry, new.id)
    assert replacement.device.id == old.id  # same device, new registration id


async def test_install_id_identifies_the_device_without_serial(
    warp_http: httpx.AsyncClient, access: AccessRole, sdk: AsyncCloudflare, registry: Registry
) -> None:
    phone = WarpTestClient(warp_http, serial_number="", install_id="abcdefghijklmnopqrstuv")
    first = await phone.register_wireguard(access.identity("install.a@example.com"))
    second = await phone.register_wireguard(access.identity("install.b@example.com"))
    stranger = WarpTestClient(warp_http, serial_number="", install_id="")
    third = await stranger.register_wireguard(access.identity("install.c@example.com"))

    devices = [(await admin_get(sdk, registry, r.id)).device.id for r in (first, second, third)]
    assert devices[0] == devices[1] != devices[2]


async def test_client_version_and_model_follow_the_latest_enrollment(
    warp_http: httpx.AsyncClient, access: AccessRole, sdk: AsyncCloudflare, registry: Registry
) -> None:
    old_app = WarpTestClient(warp_http, client_version="a-6.10-2158", serial_number="SER-1")
    first = await old_app.register_wireguard(access.identity("upgrader@example.com"))
    new_app = WarpTestClient(warp_http, client_version="a-6.81-4616", serial_number="SER-1")
    second = await new_app.register_wireguard(access.identity("other.user@example.com"))

    assert (await admin_get(sdk, registry, second.id)).device.client_version == "a-6.81-4616"
    assert (await admin_get(sdk, registry, first.id)).device.client_version == "a-6.81-4616"


async def test_users_follow_the_jwt_claims(
    warp_http: httpx.AsyncClient, access: AccessRole, sdk: AsyncCloudflare, registry: Registry
) -> None:
    laptop, phone = WarpTestClient(warp_http), WarpTestClient(warp_http)
    first = await laptop.register_wireguard(
        access.identity("claims@example.com", name="Old Name", groups=["sales"])
    )
    user = (await admin_get(sdk, registry, first.id)).user
    assert user is not None and user.name == "Old Name"
    assert user.id is not None
    assert await user_groups(registry.store, user.id) == [{"id": "sales", "name": "sales"}]

    second = await phone.register_wireguard(
        access.identity("CLAIMS@example.com", name="New Name", groups=["sales", "eng"])
    )
    again = (await admin_get(sdk, registry, second.id)).user
    assert again is not None and again.id == user.id and again.name == "New Name"
    # The first registration's copy of the user's name follows too.
    earlier = (await admin_get(sdk, registry, first.id)).user
    assert earlier is not None and earlier.name == "New Name"
    assert [g["name"] for g in await user_groups(registry.store, user.id)] == ["sales", "eng"]


async def test_a_known_user_enrolls_as_themselves(
    warp: WarpTestClient, access: AccessRole, sdk: AsyncCloudflare, registry: Registry
) -> None:
    known = registry.fleet.users[3]
    assert known.email is not None
    reg = await warp.register_wireguard(access.identity(known.email))

    user = (await admin_get(sdk, registry, reg.id)).user
    assert user is not None
    assert (user.id, user.email, user.name) == (known.id, known.email, known.name)


async def test_service_token_enrollment_has_no_user(
    warp: WarpTestClient, sdk: AsyncCloudflare, registry: Registry
) -> None:
    from warp_registry.domain.enrollment import ServiceToken
    from warp_registry.secrets import hash_secret

    token = ServiceToken("6d1c1a52-3c5e-4c39-9a53-2a1d8a3f5b10", registry.account_id, "kiosks",
                         "a1b2c3.access", hash_secret("s3cret"), None)  # fmt: skip
    assert await registry.store.enrollment.create_service_token(token)
    identity = Identity(client_id="a1b2c3.access", client_secret="s3cret")

    first = await warp.register_wireguard(identity)
    seen = await admin_get(sdk, registry, first.id)
    assert seen.user is not None and (seen.user.id, seen.user.email) == (None, None)

    again = await warp.register_wireguard(identity)  # the same token again: replaces
    with pytest.raises(NotFoundError):
        await admin_get(sdk, registry, first.id)
    assert (await admin_get(sdk, registry, again.id)).device.id == first.id


# --- liveness and keys ---


async def test_client_calls_count_as_seen(
    warp: WarpTestClient, access: AccessRole, sdk: AsyncCloudflare, registry: Registry
) -> None:
    reg = await warp.register_wireguard(access.identity("alive@example.com"))
    enrolled = await admin_get(sdk, registry, reg.id)

    result_of(await warp.get(reg))
    after_get = await admin_get(sdk, registry, reg.id)
    assert _when(after_get.last_seen_at) > _when(enrolled.last_seen_at)
    assert after_get.updated_at == enrolled.updated_at  # being seen is not a change

    device = await device_row(registry.store, reg.id)
    assert device["last_seen_at"] == _microseconds(after_get.last_seen_at)
    assert enrolled.user is not None
    assert device["last_seen_user_id"] == enrolled.user.id
    assert device["last_seen_registration_id"] == reg.id


async def test_published_keys_verify_the_jwts(
    warp_http: httpx.AsyncClient, access: AccessRole
) -> None:
    response = await warp_http.get("/cdn-cgi/access/certs")
    assert response.status_code == 200
    keys = jwt.PyJWKSet.from_dict(response.json())
    token = access.jwt("verify@example.com")

    kid = jwt.get_unverified_header(token)["kid"]
    matching = [k for k in keys.keys if k.key_id == kid]
    assert len(matching) == 1
    claims = jwt.decode(token, matching[0].key, algorithms=["RS256"], audience=access.key.audience)
    assert claims["email"] == "verify@example.com" and claims["exp"] - claims["iat"] == 60
