"""The per-credential rate limit (`serve --rate-limit`), in process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import cloudflare
import httpx
import pytest
from cloudflare import AsyncCloudflare

from tests.conftest import Registry
from warp_registry.control import actions
from warp_registry.control.ratelimit import RateLimit, parse_rate_limit
from warp_registry.http.app import RegistryApp
from warp_registry.http.context import AppContext
from warp_registry.ids import new_uuid
from warp_registry.secrets import hash_secret, new_api_token

LIMIT = RateLimit(limit=3, window_s=300)


@pytest.fixture
def limited_app(registry: Registry) -> RegistryApp:
    return RegistryApp(AppContext(store=registry.store, rate_limit=LIMIT))


@pytest.fixture
async def client(limited_app: RegistryApp) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=limited_app), base_url="http://testserver"
    ) as http:
        yield http


def _path(registry: Registry) -> str:
    return f"/client/v4/accounts/{registry.account_id}/devices/registrations"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_option_parses_cloudflare_and_pairs() -> None:
    assert parse_rate_limit("cloudflare") == RateLimit(1200, 300)
    assert parse_rate_limit("1200/300") == RateLimit(1200, 300)
    for bad in ("", "1200", "a/b", "0/300", "5/0", "5/-1", "1/100000"):
        with pytest.raises(ValueError):
            parse_rate_limit(bad)


async def test_past_the_budget_every_call_gets_429_971_with_retry_after(
    client: httpx.AsyncClient, registry: Registry
) -> None:
    responses = [
        await client.get(_path(registry), headers=_bearer(registry.token)) for _ in range(5)
    ]
    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429]

    remaining = [r.headers["ratelimit"].split(";")[1] for r in responses]
    assert remaining == ["r=2", "r=1", "r=0", "r=0", "r=0"]
    for response in responses:
        assert response.headers["ratelimit-policy"] == '"default";q=3;w=300'

    limited = responses[3]
    assert limited.json() == {
        "success": False,
        "errors": [
            {"code": 971, "message": "Please wait and consider throttling your request speed"}
        ],
        "messages": [],
        "result": None,
    }
    retry_after = int(limited.headers["retry-after"])
    reset = int(limited.headers["ratelimit"].rsplit("t=", 1)[1])
    assert 1 <= retry_after <= 300
    assert retry_after == reset
    assert "retry-after" not in responses[0].headers


async def test_each_credential_has_its_own_budget(
    client: httpx.AsyncClient, registry: Registry
) -> None:
    other = new_api_token()
    assert await registry.store.create_token(
        new_uuid(), "second", hash_secret(other), "read", [registry.account_id]
    )
    for _ in range(4):
        await client.get(_path(registry), headers=_bearer(registry.token))
    assert (await client.get(_path(registry), headers=_bearer(registry.token))).status_code == 429
    fresh = await client.get(_path(registry), headers=_bearer(other))
    assert fresh.status_code == 200
    assert fresh.headers["ratelimit"].startswith('"default";r=2;')


async def test_the_control_plane_is_not_counted_and_resets_the_counts(
    client: httpx.AsyncClient, registry: Registry
) -> None:
    admin = _bearer(await actions.rotate_admin_token(registry.store))
    for _ in range(5):
        status = await client.get("/_warp-registry/rate-limit", headers=admin)
        assert status.status_code == 200
        assert "ratelimit" not in status.headers
    assert status.json()["result"] == {"limit": 3, "window_s": 300}

    for _ in range(4):
        await client.get(_path(registry), headers=_bearer(registry.token))
    assert (await client.get(_path(registry), headers=_bearer(registry.token))).status_code == 429
    assert (await client.delete("/_warp-registry/rate-limit", headers=admin)).status_code == 200
    assert (await client.get(_path(registry), headers=_bearer(registry.token))).status_code == 200


async def test_the_sdk_sees_a_rate_limit_error(
    limited_app: RegistryApp, registry: Registry
) -> None:
    sdk = AsyncCloudflare(
        api_token=registry.token,
        base_url="http://testserver/client/v4",
        http_client=httpx.AsyncClient(transport=httpx.ASGITransport(app=limited_app)),
        max_retries=0,
    )
    target = registry.fleet.registrations[0].id
    for _ in range(3):
        await sdk.zero_trust.devices.registrations.get(target, account_id=registry.account_id)
    with pytest.raises(cloudflare.RateLimitError) as raised:
        await sdk.zero_trust.devices.registrations.get(target, account_id=registry.account_id)
    assert raised.value.status_code == 429
    await sdk.close()


async def test_off_by_default_no_headers(api: httpx.AsyncClient, registry: Registry) -> None:
    for _ in range(5):
        response = await api.get(f"/accounts/{registry.account_id}/devices/registrations")
        assert response.status_code == 200
        assert "ratelimit" not in response.headers
