"""An admin's revoke, unrevoke and delete, through the official SDK, as the client sees them.

Revoke refuses the client (403) without counting its calls as seen and keeps its
addresses; unrevoke lets it back; delete makes its token unknown (401) and frees its
addresses, handed out again once the pool wraps.
"""

from __future__ import annotations

import ipaddress

import httpx
import pytest
from cloudflare import AsyncCloudflare

from tests.conftest import Registry
from tests.enroll_support import AccessRole, admin_get, assert_error, device_row, result_of
from tests.warp_test_client import WarpTestClient
from warp_registry.domain.enrollment import VIRTUAL_IPV4_NETWORK, AddressPool

pytest_plugins = ["tests.enroll_fixtures"]

# The SDK marks revoke/unrevoke deprecated ("prefer delete"); they still work.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def revoke(sdk: AsyncCloudflare, registry: Registry, registration_id: str) -> None:
    await sdk.zero_trust.devices.registrations.revoke(
        account_id=registry.account_id, id=[registration_id]
    )


async def unrevoke(sdk: AsyncCloudflare, registry: Registry, registration_id: str) -> None:
    await sdk.zero_trust.devices.registrations.unrevoke(
        account_id=registry.account_id, id=[registration_id]
    )


async def test_revoke_refuses_the_client_and_unrevoke_lets_it_back(
    warp: WarpTestClient, access: AccessRole, sdk: AsyncCloudflare, registry: Registry
) -> None:
    reg = await warp.register_wireguard(access.identity("revoked@example.com"))
    result_of(await warp.get(reg))
    await revoke(sdk, registry, reg.id)
    revoked = await admin_get(sdk, registry, reg.id)
    assert revoked.revoked_at is not None
    device_before = await device_row(registry.store, reg.id)

    assert_error(await warp.get(reg), 403, 1022)
    assert_error(await warp.patch(reg, {"name": "sneaky"}), 403, 1022)
    assert_error(await warp.delete(reg), 403, 1022)

    still = await admin_get(sdk, registry, reg.id)
    assert still.last_seen_at == revoked.last_seen_at  # refused calls are not "seen"
    assert (still.device.name, still.key) == (revoked.device.name, revoked.key)
    assert await device_row(registry.store, reg.id) == device_before

    await unrevoke(sdk, registry, reg.id)
    assert result_of(await warp.get(reg))["id"] == reg.id
    back = await admin_get(sdk, registry, reg.id)
    assert back.revoked_at is None
    assert back.last_seen_at > revoked.last_seen_at


async def test_revoke_keeps_the_addresses(
    warp_http: httpx.AsyncClient, access: AccessRole, sdk: AsyncCloudflare, registry: Registry
) -> None:
    first = await WarpTestClient(warp_http).register_wireguard(access.identity("k1@example.com"))
    await revoke(sdk, registry, first.id)

    second = await WarpTestClient(warp_http).register_wireguard(access.identity("k2@example.com"))
    kept = await admin_get(sdk, registry, first.id)
    assert (kept.virtual_ipv4, kept.virtual_ipv6) == (
        first.result["config"]["interface"]["addresses"]["v4"],
        first.result["config"]["interface"]["addresses"]["v6"],
    )
    assert second.result["config"]["interface"] != first.result["config"]["interface"]


async def test_a_revoked_user_enrolling_again_gets_a_new_registration(
    warp: WarpTestClient, access: AccessRole, sdk: AsyncCloudflare, registry: Registry
) -> None:
    old = await warp.register_wireguard(access.identity("comeback@example.com"))
    await revoke(sdk, registry, old.id)

    new = await warp.register_wireguard(access.identity("comeback@example.com"))
    assert new.id != old.id
    # Our choice: the revoked registration stays (an admin's revoke is not erased).
    assert (await admin_get(sdk, registry, old.id)).revoked_at is not None
    assert (await admin_get(sdk, registry, new.id)).device.id == old.id
    assert_error(await warp.get(old), 403, 1022)
    assert result_of(await warp.get(new))["id"] == new.id


async def test_delete_rejects_the_token_and_frees_the_addresses(
    warp_http: httpx.AsyncClient, access: AccessRole, sdk: AsyncCloudflare, registry: Registry
) -> None:
    gone = WarpTestClient(warp_http)
    reg = await gone.register_wireguard(access.identity("deleted@example.com"))
    addresses = reg.result["config"]["interface"]["addresses"]

    await sdk.zero_trust.devices.registrations.delete(reg.id, account_id=registry.account_id)
    assert_error(await gone.get(reg), 401, 1021)
    assert_error(await gone.patch(reg, {"name": "ghost"}), 401, 1021)

    # Freed, but not handed out again before the pool has gone round (docs/enrollment.md).
    successor = await WarpTestClient(warp_http).register_wireguard(
        access.identity("successor@example.com")
    )
    got = successor.result["config"]["interface"]["addresses"]
    assert _host(got["v4"]) == _host(addresses["v4"]) + 1
    assert ipaddress.IPv6Address(got["v6"]) == ipaddress.IPv6Address(addresses["v6"]) + 1
    seen = await admin_get(sdk, registry, successor.id)
    assert (seen.virtual_ipv4, seen.virtual_ipv6) == (got["v4"], got["v6"])

    # With the successor at the top of the pool, the next enrollment wraps to the gap.
    registry.store.enrollment.pool = AddressPool(last_host=_host(got["v4"]))
    heir = await WarpTestClient(warp_http).register_wireguard(access.identity("heir@example.com"))
    assert heir.result["config"]["interface"]["addresses"] == addresses


def _host(ipv4: str) -> int:
    return int(ipaddress.IPv4Address(ipv4)) - int(VIRTUAL_IPV4_NETWORK.network_address)
