"""Fifty enrollments at once: fifty registrations, fifty distinct IPv4 and IPv6 addresses.

Three ways: through one app; split across two apps, each with its own store on the same
database (so their transactions really overlap, as two processes' would); and split
across two real server processes sharing one database (marked `server`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cloudflare import AsyncCloudflare

from tests.conftest import Registry, cli, start_server, stop_server
from tests.enroll_support import AccessRole, admin_get
from tests.warp_test_client import Identity, Registered, WarpTestClient
from warp_registry.bootstrap import DEFAULT_SEED, plan_registry
from warp_registry.http.app import RegistryApp
from warp_registry.http.context import AppContext
from warp_registry.store import open_store

pytest_plugins = ["tests.enroll_fixtures"]

ENROLLMENTS = 50


async def enroll_all(
    https: list[httpx.AsyncClient], identities: list[Identity]
) -> list[Registered]:
    """Enroll every identity at once, each from its own device, spread over `https`."""
    clients = [WarpTestClient(https[i % len(https)]) for i in range(len(identities))]
    return list(
        await asyncio.gather(
            *(client.register_wireguard(identity)
              for client, identity in zip(clients, identities, strict=True))
        )
    )  # fmt: skip


def assert_all_distinct(registrations: list[Registered], taken_v4: set[str]) -> None:
    ids = {reg.id for reg in registrations}
    v4 = {reg.result["config"]["interface"]["addresses"]["v4"] for reg in registrations}
    v6 = {reg.result["config"]["interface"]["addresses"]["v6"] for reg in registrations}
    assert len(ids) == len(v4) == len(v6) == ENROLLMENTS
    assert not v4 & taken_v4
    assert all(ipaddress.IPv4Address(a) in ipaddress.IPv4Network("100.96.0.0/12") for a in v4)


async def assert_admin_api_agrees(
    sdk: AsyncCloudflare, registry: Registry, registrations: list[Registered]
) -> None:
    for reg in registrations:
        seen = await admin_get(sdk, registry, reg.id)
        addresses = reg.result["config"]["interface"]["addresses"]
        assert (seen.virtual_ipv4, seen.virtual_ipv6) == (addresses["v4"], addresses["v6"])


def fleet_v4(registry: Registry) -> set[str]:
    return {r.virtual_ipv4 for r in registry.fleet.registrations if r.virtual_ipv4}


async def test_fifty_concurrent_enrollments_through_one_app(
    warp_http: httpx.AsyncClient, access: AccessRole, sdk: AsyncCloudflare, registry: Registry
) -> None:
    identities = [access.identity(f"one.app.{i}@example.com") for i in range(ENROLLMENTS)]
    registrations = await enroll_all([warp_http], identities)

    assert_all_distinct(registrations, fleet_v4(registry))
    await assert_admin_api_agrees(sdk, registry, registrations)


async def test_fifty_concurrent_enrollments_through_two_stores(
    warp_http: httpx.AsyncClient,
    access: AccessRole,
    sdk: AsyncCloudflare,
    registry: Registry,
    database_url: str,
) -> None:
    second_store = await open_store(database_url)
    try:
        app = RegistryApp(AppContext(store=second_store))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as second_http:
            identities = [access.identity(f"two.apps.{i}@example.com") for i in range(ENROLLMENTS)]
            registrations = await enroll_all([warp_http, second_http], identities)
    finally:
        await second_store.close()

    assert_all_distinct(registrations, fleet_v4(registry))
    await assert_admin_api_agrees(sdk, registry, registrations)


@pytest.fixture
def two_servers(database_url: str, tmp_path: Path) -> Iterator[tuple[list[str], dict[str, str]]]:
    """Two `warp-registry serve` processes on one database: their root URLs and the init."""
    done = cli("init", "--json", "--database", database_url)
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    processes = []
    try:
        for name in ("a", "b"):
            process, base_url = start_server(database_url, log_path=tmp_path / f"{name}.log")
            processes.append((process, base_url.removesuffix("/client/v4")))
        yield [url for _, url in processes], created
    finally:
        for process, _ in processes:
            stop_server(process)


@pytest.mark.server
async def test_fifty_concurrent_enrollments_across_two_servers(
    two_servers: tuple[list[str], dict[str, str]], database_url: str
) -> None:
    urls, created = two_servers
    store = await open_store(database_url)
    try:
        key = await store.enrollment.signing_key(created["account_id"])
    finally:
        await store.close()
    assert key is not None
    role = AccessRole(key)
    identities = [role.identity(f"servers.{i}@example.com") for i in range(ENROLLMENTS)]

    https = [httpx.AsyncClient(base_url=url, timeout=60) for url in urls]
    try:
        registrations = await enroll_all(https, identities)
    finally:
        for http in https:
            await http.aclose()
    # `init` made the demo fleet of the default seed; its addresses do not depend on time.
    demo, _, _ = plan_registry(DEFAULT_SEED, True, 0)
    taken = {r.virtual_ipv4 for r in demo.registrations if r.virtual_ipv4}
    assert_all_distinct(registrations, taken)

    sdk = AsyncCloudflare(api_token=created["api_token"], base_url=urls[1] + "/client/v4",
                          max_retries=0)  # fmt: skip
    try:
        for reg in registrations:
            seen = await sdk.zero_trust.devices.registrations.get(
                reg.id, account_id=created["account_id"]
            )
            addresses = reg.result["config"]["interface"]["addresses"]
            assert (seen.virtual_ipv4, seen.virtual_ipv6) == (addresses["v4"], addresses["v6"])
    finally:
        await sdk.close()
