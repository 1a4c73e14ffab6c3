"""Fault rules: deterministic failures and latency, and the official SDK's retries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import cloudflare
import httpx
import pytest
from cloudflare import AsyncCloudflare

from tests.conftest import Registry
from warp_registry.control import actions
from warp_registry.http.app import RegistryApp


@pytest.fixture
async def control(app: RegistryApp, registry: Registry) -> AsyncIterator[httpx.AsyncClient]:
    admin_token = await actions.rotate_admin_token(registry.store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver/_warp-registry",
        headers={"Authorization": f"Bearer {admin_token}"},
    ) as client:
        yield client


@pytest.fixture
async def retrying_sdk(app: RegistryApp, registry: Registry) -> AsyncIterator[AsyncCloudflare]:
    """The async SDK with its default retry budget (2 retries)."""
    client = AsyncCloudflare(
        api_token=registry.token,
        base_url="http://testserver/client/v4",
        http_client=httpx.AsyncClient(transport=httpx.ASGITransport(app=app)),
    )
    assert client.max_retries == 2
    yield client
    await client.close()


async def _add(control: httpx.AsyncClient, **rule: Any) -> dict[str, Any]:
    response = await control.post("/faults", json=rule)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


async def _rule(control: httpx.AsyncClient, rule_id: str) -> dict[str, Any]:
    result: dict[str, Any] = (await control.get(f"/faults/{rule_id}")).json()["result"]
    return result


REGISTRATIONS = "/client/v4/accounts/*/devices/registrations*"


async def test_the_sdk_retries_through_a_429_with_retry_after(
    control: httpx.AsyncClient, retrying_sdk: AsyncCloudflare, registry: Registry
) -> None:
    await control.put("/journal", json={"size": 10})
    rule = await _add(control, method="GET", path=REGISTRATIONS, status=429, retry_after=1,
                      times=1)  # fmt: skip
    assert rule["code"] == 971

    target = registry.fleet.registrations[0]
    got = await retrying_sdk.zero_trust.devices.registrations.get(
        target.id, account_id=registry.account_id
    )
    assert got is not None and got.id == target.id
    assert (await _rule(control, rule["id"]))["fired"] == 1

    # Two requests reached the server: the SDK's first try, then its retry.
    entries = (await control.get("/journal")).json()["result"]
    assert [e["status"] for e in entries] == [200, 429]
    assert [e["request"]["headers"]["x-stainless-retry-count"] for e in entries] == ["1", "0"]
    assert entries[1]["note"] == f"fault {rule['id']}"


async def test_x_should_retry_false_stops_the_sdk_retrying(
    control: httpx.AsyncClient, retrying_sdk: AsyncCloudflare, registry: Registry
) -> None:
    rule = await _add(control, method="GET", path=REGISTRATIONS, status=429, retry_after=1,
                      times=3, headers={"x-should-retry": "false"})  # fmt: skip
    with pytest.raises(cloudflare.RateLimitError) as raised:
        await retrying_sdk.zero_trust.devices.registrations.get(
            registry.fleet.registrations[0].id, account_id=registry.account_id
        )
    assert raised.value.response.headers["retry-after"] == "1"
    assert raised.value.response.json()["errors"][0]["code"] == 971
    after = await _rule(control, rule["id"])
    assert (after["fired"], after["remaining"]) == (1, 2), "one request, no retry"


async def test_a_counted_rule_fires_n_times_then_stops(
    control: httpx.AsyncClient, api: httpx.AsyncClient, registry: Registry
) -> None:
    rule = await _add(control, path=REGISTRATIONS, status=503, times=2, code=12345,
                      message="try later")  # fmt: skip
    path = f"/accounts/{registry.account_id}/devices/registrations"
    statuses = [(await api.get(path)).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    listed = (await control.get("/faults")).json()["result"]
    assert [(r["id"], r["remaining"], r["fired"]) for r in listed] == [(rule["id"], 0, 2)]


async def test_rules_match_method_and_path(
    control: httpx.AsyncClient, api: httpx.AsyncClient, registry: Registry
) -> None:
    await _add(control, method="POST", path="*/registrations/revoke", status=500)
    base = f"/accounts/{registry.account_id}/devices/registrations"
    assert (await api.get(base)).status_code == 200
    target = registry.fleet.registrations[0].id
    unrevoke = await api.post(f"{base}/unrevoke", params={"id": [target]})
    assert unrevoke.status_code == 200
    revoke = await api.post(f"{base}/revoke", params={"id": [target]})
    assert (revoke.status_code, revoke.json()["errors"][0]["code"]) == (500, 10001)
    # The registration was not revoked: the fault answered before the handler ran.
    got = (await api.get(f"{base}/{target}")).json()["result"]
    assert got["revoked_at"] is None


async def test_probability_rules_repeat_with_their_seed(
    control: httpx.AsyncClient, api: httpx.AsyncClient, registry: Registry
) -> None:
    path = f"/accounts/{registry.account_id}/devices/registrations"

    async def run() -> list[int]:
        await control.delete("/faults")
        await _add(control, path=REGISTRATIONS, status=503, probability=0.5, seed=42)
        return [(await api.get(path)).status_code for _ in range(24)]

    first, second = await run(), await run()
    assert first == second
    assert set(first) == {200, 503}, "half the requests fail, not all or none"


async def test_a_latency_only_rule_passes_through(
    control: httpx.AsyncClient, api: httpx.AsyncClient, registry: Registry
) -> None:
    rule = await _add(control, path=REGISTRATIONS, latency_ms=20, times=1)
    assert rule["status"] is None
    response = await api.get(f"/accounts/{registry.account_id}/devices/registrations")
    assert response.status_code == 200
    assert (await _rule(control, rule["id"]))["fired"] == 1


async def test_rules_are_listed_and_deleted_one_by_one(control: httpx.AsyncClient) -> None:
    first = await _add(control, status=500)
    second = await _add(control, status=429, retry_after=3)
    listed = (await control.get("/faults")).json()["result"]
    assert [r["id"] for r in listed] == [first["id"], second["id"]]

    assert (await control.delete(f"/faults/{first['id']}")).status_code == 200
    again = await control.delete(f"/faults/{first['id']}")
    assert (again.status_code, again.json()["errors"][0]["code"]) == (404, 1202)
    listed = (await control.get("/faults")).json()["result"]
    assert [r["id"] for r in listed] == [second["id"]]
    assert (await control.delete("/faults")).json()["result"] == {"deleted": 1}


@pytest.mark.parametrize(
    "rule",
    [
        {},
        {"status": 99},
        {"status": 500, "method": "BREW"},
        {"status": 500, "times": 0},
        {"status": 500, "probability": 1.5},
        {"status": 500, "probability": 0.5, "times": 2},
        {"status": 500, "headers": {"bad header": "x"}},
        {"status": 500, "headers": {"x-ok": "line\nbreak"}},
        {"status": 500, "colour": "red"},
        {"status": "500"},
        [],
    ],
)
async def test_bad_rules_are_refused(control: httpx.AsyncClient, rule: Any) -> None:
    response = await control.post("/faults", json=rule)
    assert (response.status_code, response.json()["errors"][0]["code"]) == (400, 1203)
    assert (await control.get("/faults")).json()["result"] == []
