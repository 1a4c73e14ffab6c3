"""Racing requests on both stores, through the official SDK and the CLI.

Two apps, each with its own store on one database, stand in for two servers; the CLI
test runs real processes side by side. The serial-order checker they rely on is tested
first, so that a passing race test means something.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator

import httpx
import pytest
from cloudflare import AsyncCloudflare

from tests.conftest import Registry, cli
from tests.consistency import Call, apply_serially, find_serial_order, random_calls
from warp_registry.http.app import RegistryApp
from warp_registry.http.context import AppContext
from warp_registry.secrets import hash_secret
from warp_registry.store import open_store
from warp_registry.store.sql_store import BearerProbe

# --- the checker ---


def test_serial_order_is_found_for_any_serial_run() -> None:
    rng = random.Random(3)
    ids = [f"r{n}" for n in range(8)]
    for _ in range(200):
        initial = {i: rng.random() < 0.3 for i in ids}
        calls = random_calls(rng, ids, 12, most_ids=4, delete_share=0.1)
        order = rng.sample(range(len(calls)), len(calls))
        final = apply_serially(initial, [calls[n] for n in order])

        found = find_serial_order(initial, calls, final)
        assert found is not None
        assert apply_serially(initial, [calls[n] for n in found]) == final


def test_interleaved_states_are_rejected() -> None:
    revoke, unrevoke = Call("revoke", ("a", "b")), Call("unrevoke", ("a", "b"))
    both_active = {"a": False, "b": False}
    # Half of each call won: no serial order gives that.
    assert find_serial_order(both_active, [revoke, unrevoke], {"a": True, "b": False}) is None
    # A lost delete, or a delete that never ran but shows, is caught too.
    delete = Call("delete", ("a",))
    assert find_serial_order(both_active, [delete], {"a": False, "b": False}) is None
    assert find_serial_order(both_active, [], {"a": None, "b": False}) is None
    # An id no call named must keep its state.
    assert find_serial_order(both_active, [Call("revoke", ("a",))], {"a": True, "b": True}) is None


def test_every_order_of_a_small_race_is_accepted() -> None:
    calls = [Call("revoke", ("a", "b")), Call("unrevoke", ("b", "c")), Call("revoke", ("c",))]
    initial = {"a": False, "b": True, "c": False}
    for order in itertools.permutations(calls):
        assert find_serial_order(initial, calls, apply_serially(initial, order)) is not None


# --- races through the API ---


@pytest.fixture
async def second_sdk(database_url: str, registry: Registry) -> AsyncIterator[AsyncCloudflare]:
    """The SDK on a second app with its own store on the same database: a second server."""
    store = await open_store(database_url)
    app = RegistryApp(AppContext(store=store))
    client = AsyncCloudflare(
        api_token=registry.token,
        base_url="http://testserver/client/v4",
        http_client=httpx.AsyncClient(transport=httpx.ASGITransport(app=app)),
        max_retries=0,
    )
    yield client
    await client.close()
    await store.close()


# The SDKs mark registration revoke/unrevoke deprecated ("prefer delete"); still served.
@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
async def test_racing_sdk_revokes_and_unrevokes_are_serialisable(
    sdk: AsyncCloudflare, second_sdk: AsyncCloudflare, registry: Registry
) -> None:
    ids = sorted(r.id for r in registry.fleet.registrations)
    before = {r.id: r.revoked_at is not None for r in registry.fleet.registrations}
    calls = random_calls(random.Random(21), ids, 80, most_ids=15, delete_share=0)
    clients = [sdk, second_sdk]

    async def send(n: int, call: Call) -> object:
        resource = clients[n % 2].zero_trust.devices.registrations
        method = resource.revoke if call.op == "revoke" else resource.unrevoke
        return await method(account_id=registry.account_id, id=list(call.ids))

    assert await asyncio.gather(*(send(n, c) for n, c in enumerate(calls))) == [None] * 80

    listed = sdk.zero_trust.devices.registrations.list(
        account_id=registry.account_id, status="all", per_page=7
    )
    final: dict[str, bool | None] = {reg.id: reg.revoked_at is not None async for reg in listed}
    assert set(final) == set(before)
    assert find_serial_order(before, calls, final) is not None


async def test_tokens_created_by_racing_cli_processes_all_work(
    database_url: str, registry: Registry
) -> None:
    """Separate processes writing at once: on SQLite, never "database is locked"."""
    runs = await asyncio.gather(*(
        asyncio.to_thread(cli, "token", "create", "--database", database_url,
                          "--account", registry.account_id, "--permission", "read",
                          "--name", f"racer {n}")
        for n in range(6)
    ))  # fmt: skip
    assert [run.returncode for run in runs] == [0] * 6, [run.stderr for run in runs]

    for run in runs:
        access = await registry.store.access(
            BearerProbe(hash_secret(run.stdout.strip())), registry.account_id
        )
        assert access.account_ok and access.permission == "read"
    names = {token.name for token in await registry.store.list_tokens()}
    assert {f"racer {n}" for n in range(6)} <= names
