"""Checks that a registry is consistent, and that concurrent bulk calls were serialisable.

Used by the concurrency, multi-process and crash tests, on either store:

- `find_serial_order`: given the state before, the bulk revoke / unrevoke / delete calls
  that ran concurrently, and the state after, find an order in which running the calls
  one at a time gives exactly that state (None if there is none).
- `registry_state`: read the whole registry through the HTTP API and check it agrees with
  itself: every listed registration is fetchable with the same body, `status=active` and
  `status=revoked` split `status=all` exactly, revoked ones have `updated_at ==
  revoked_at`, and no id is listed twice.
- `fleet_seed`: a fleet of any size with a known API token, for tests that need more than
  the demo fleet's registrations.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from warp_registry.bootstrap import plan_registry
from warp_registry.demo import DemoSize, build_demo_fleet
from warp_registry.domain.records import FleetRecords, TokenRecord
from warp_registry.ids import new_uuid
from warp_registry.secrets import hash_secret, new_api_token

Op = Literal["revoke", "unrevoke", "delete"]
GONE = None  # the final state of a deleted registration


@dataclass(frozen=True)
class Call:
    """One bulk call: an operation on a set of registration ids."""

    op: Op
    ids: tuple[str, ...]


def find_serial_order(
    initial: Mapping[str, bool],
    calls: Sequence[Call],
    final: Mapping[str, bool | None],
) -> list[int] | None:
    """Indexes of `calls` in an order that, run one by one, turns `initial` into `final`.

    States map a registration id to True (revoked), False (active) or, in `final` only,
    None (deleted). Returns None when no serial order explains `final`.

    Deletes are permanent and later revokes of a deleted id change nothing, so an id is
    deleted at the end exactly when some delete named it, wherever the deletes fall. For
    the other ids the state is that of the last revoke or unrevoke naming it. Such an
    order is found backwards: a call may go last if every id it names whose state is not
    yet explained by a later call ended as that call leaves it. Taking such a call never
    makes another one impossible, so a greedy choice finds an order whenever one exists.
    """
    deleted = {i for call in calls if call.op == "delete" for i in call.ids}
    if {i for i, state in final.items() if state is GONE} != deleted:
        return None
    if set(final) != set(initial):
        return None

    toggles = [n for n, call in enumerate(calls) if call.op != "delete"]
    unexplained = {i for n in toggles for i in calls[n].ids} - deleted
    untouched = set(final) - unexplained - deleted
    if any(final[i] != initial[i] for i in untouched):
        return None

    backwards: list[int] = []
    while toggles:
        last = next((n for n in toggles if _may_go_last(calls[n], unexplained, final)), None)
        if last is None:
            return None
        toggles.remove(last)
        backwards.append(last)
        unexplained -= set(calls[last].ids)

    deletes = [n for n, call in enumerate(calls) if call.op == "delete"]
    return deletes + backwards[::-1]


def random_calls(
    rng: random.Random, ids: Sequence[str], count: int, *, most_ids: int, delete_share: float
) -> list[Call]:
    """`count` bulk calls on overlapping random subsets of `ids`; deletes name one id."""
    calls = []
    for _ in range(count):
        if rng.random() < delete_share:
            calls.append(Call("delete", (rng.choice(ids),)))
            continue
        op: Op = "revoke" if rng.random() < 0.5 else "unrevoke"
        calls.append(Call(op, tuple(rng.sample(ids, rng.randint(1, most_ids)))))
    return calls


def _may_go_last(call: Call, unexplained: set[str], final: Mapping[str, bool | None]) -> bool:
    leaves_revoked = call.op == "revoke"
    return all(final[i] == leaves_revoked for i in call.ids if i in unexplained)


def apply_serially(initial: Mapping[str, bool], calls: Iterable[Call]) -> dict[str, bool | None]:
    """The state after running `calls` one by one (what `find_serial_order` inverts)."""
    state: dict[str, bool | None] = dict(initial)
    for call in calls:
        for registration_id in call.ids:
            if state[registration_id] is GONE:
                continue
            state[registration_id] = None if call.op == "delete" else call.op == "revoke"
    return state


# --- reading a registry through the API ---


async def send_call(client: httpx.AsyncClient, account_id: str, call: Call) -> httpx.Response:
    """Run one bulk call the way the SDKs send it: the ids in the query, an empty body."""
    base = f"/accounts/{account_id}/devices/registrations"
    params = [("id", i) for i in call.ids]
    if call.op == "delete":
        return await client.delete(base, params=params)
    return await client.post(f"{base}/{call.op}", params=params)


async def list_all(client: httpx.AsyncClient, account_id: str, status: str) -> list[dict[str, Any]]:
    """Every registration with `status`, following cursors to the last page."""
    items: list[dict[str, Any]] = []
    cursor = ""
    while True:
        params = {"status": status, "per_page": "1000", "cursor": cursor}
        response = await client.get(f"/accounts/{account_id}/devices/registrations", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["result"])
        cursor = body["result_info"]["cursor"]
        if not cursor:
            return items


async def registry_state(
    client: httpx.AsyncClient,
    account_id: str,
    *,
    fetch: Iterable[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """All registrations by id, after checking the registry agrees with itself.

    Every listed registration is fetched, unless `fetch` names the ones to fetch.
    """
    everything = await list_all(client, account_id, "all")
    active = await list_all(client, account_id, "active")
    revoked = await list_all(client, account_id, "revoked")

    by_id = {item["id"]: item for item in everything}
    assert len(by_id) == len(everything), "a registration is listed twice"
    active_ids = {item["id"] for item in active}
    revoked_ids = {item["id"] for item in revoked}
    assert len(active_ids) + len(revoked_ids) == len(by_id)
    assert active_ids | revoked_ids == set(by_id)
    assert all(item["revoked_at"] is None for item in active)
    assert all(item["revoked_at"] is not None for item in revoked)
    # A revoke sets both to one instant; a repeated revoke changes neither.
    assert all(item["updated_at"] == item["revoked_at"] for item in revoked)

    wanted = list(by_id) if fetch is None else [i for i in fetch if i in by_id]
    fetched = await _fetch_each(client, account_id, wanted)
    for registration_id, body in fetched.items():
        assert body == by_id[registration_id], f"{registration_id}: get and list disagree"
    return by_id


async def assert_deleted(client: httpx.AsyncClient, account_id: str, ids: Iterable[str]) -> None:
    """Each id answers 404 to a get."""
    for registration_id in ids:
        response = await client.get(
            f"/accounts/{account_id}/devices/registrations/{registration_id}"
        )
        assert response.status_code == 404, f"{registration_id}: {response.status_code}"


async def _fetch_each(
    client: httpx.AsyncClient, account_id: str, ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    semaphore = asyncio.Semaphore(16)

    async def get(registration_id: str) -> tuple[str, dict[str, Any]]:
        async with semaphore:
            response = await client.get(
                f"/accounts/{account_id}/devices/registrations/{registration_id}"
            )
        assert response.status_code == 200, f"{registration_id} listed but {response.text}"
        return registration_id, response.json()["result"]

    return dict(await asyncio.gather(*(get(i) for i in ids)))


def revoked_map(state: Mapping[str, Mapping[str, Any]]) -> dict[str, bool]:
    """id -> revoked?, from `registry_state`'s answer."""
    return {i: item["revoked_at"] is not None for i, item in state.items()}


# --- fleets of any size ---


@dataclass
class Seed:
    fleet: FleetRecords
    account_id: str
    token: str


def fleet_seed(seed: int, anchor_us: int, devices: int) -> Seed:
    """An account, its profiles, `devices` devices with their registrations, and a token."""
    fleet, account_id, _ = plan_registry(seed, False, anchor_us)
    account, default_profile = fleet.accounts[0], fleet.profiles[0]
    size = DemoSize(
        users=24,  # the demo generator has names for a few dozen distinct users
        devices=devices,
        shared_devices=devices // 5,
        revoked=devices // 10,
        browser_extensions=devices // 20,
    )
    demo = build_demo_fleet(
        seed, anchor_us, account_id, account.ipv6_prefix, default_profile.id, size
    )
    fleet.profiles.extend(demo.profiles)
    fleet.users.extend(demo.users)
    fleet.devices.extend(demo.devices)
    fleet.registrations.extend(demo.registrations)

    token = new_api_token()
    fleet.tokens.append(
        TokenRecord(new_uuid(), "test", hash_secret(token), "write", [account_id], anchor_us)
    )
    return Seed(fleet, account_id, token)
