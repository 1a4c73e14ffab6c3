"""Which profile a registration gets, through the WARP client protocol (docs/profiles.md).

Users enroll with Access JWTs (and a service token) the way real clients do; an admin
creates, reorders, disables and deletes profiles through the API; each test checks what
`include=policy` shows before and after the client checks in (`GET /reg/{id}`), since at
Cloudflare admin changes reach a registration only then.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Registry
from tests.enroll_support import AccessRole, result_of
from tests.warp_test_client import Identity, Registered, WarpTestClient
from warp_registry.domain.enrollment import ServiceToken
from warp_registry.secrets import hash_secret

pytest_plugins = ["tests.enroll_fixtures"]  # the access, warp_http and warp fixtures


def _base(registry: Registry) -> str:
    return f"/accounts/{registry.account_id}/devices"


def _default_id(registry: Registry) -> str:
    return next(p.id for p in registry.fleet.profiles if p.is_default)


async def _create(api: httpx.AsyncClient, registry: Registry, **body: Any) -> str:
    response = await api.post(f"{_base(registry)}/policy", json=body)
    assert response.status_code == 200, response.text
    policy_id: str = response.json()["result"]["policy_id"]
    return policy_id


async def _patch(api: httpx.AsyncClient, registry: Registry, policy_id: str, **body: Any) -> None:
    response = await api.patch(f"{_base(registry)}/policy/{policy_id}", json=body)
    assert response.status_code == 200, response.text


async def _policy(api: httpx.AsyncClient, registry: Registry, reg: Registered) -> dict[str, Any]:
    """What the admin API shows under `include=policy`."""
    response = await api.get(
        f"{_base(registry)}/registrations/{reg.id}", params={"include": "policy"}
    )
    assert response.status_code == 200, response.text
    policy: dict[str, Any] = response.json()["result"]["policy"]
    return policy


async def _check_in(warp: WarpTestClient, reg: Registered) -> str:
    """The client's `GET /reg/{id}`; returns the profile id its answer carries."""
    policy_id: str = result_of(await warp.get(reg))["policy"]["policy_id"]
    return policy_id


async def _filtered(api: httpx.AsyncClient, registry: Registry, policy_id: str) -> set[str]:
    """Ids of the registrations the list's `policy.id` filter selects."""
    params = {"policy.id": policy_id, "status": "all", "per_page": 1000}
    response = await api.get(f"{_base(registry)}/registrations", params=params)
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["result"]}


def _client(warp_http: httpx.AsyncClient) -> WarpTestClient:
    """Another WARP installation (its own device)."""
    return WarpTestClient(warp_http)


async def test_enrollment_assigns_the_first_matching_profile(
    api: httpx.AsyncClient, warp_http: httpx.AsyncClient, access: AccessRole,
    registry: Registry,
) -> None:  # fmt: skip
    qa = await _create(api, registry, name="QA", precedence=1,
                       match='any(identity.groups.name[*] == "qa")')  # fmt: skip
    phones = await _create(api, registry, name="Phones", precedence=2,
                           match='os.name == "android"')  # fmt: skip

    # wgcf enrolls as an Android client: every one here matches "Phones".
    tester = await _client(warp_http).register_wireguard(
        access.identity("quinn@example.com", groups=["qa"])
    )
    other = await _client(warp_http).register_wireguard(access.identity("omar@example.com"))
    # usque sends no platform: no OS, so only the default profile is left.
    bare = await _client(warp_http).register_usque(access.identity("bea@example.com"))

    for reg, expected in ((tester, qa), (other, phones), (bare, _default_id(registry))):
        assert reg.result["policy"]["policy_id"] == expected
        shown = await _policy(api, registry, reg)
        assert shown["id"] == expected and shown["deleted"] is False
        assert shown["updated_at"] == reg.result["created"]
    assert (await _policy(api, registry, tester))["name"] == "QA"
    assert (await _policy(api, registry, bare))["name"] == "Default"
    assert (await _policy(api, registry, bare))["default"] is True


async def test_a_new_precedence_reaches_a_registration_at_its_check_in(
    api: httpx.AsyncClient, warp: WarpTestClient, access: AccessRole, registry: Registry
) -> None:
    qa = await _create(api, registry, name="QA", precedence=1,
                       match='any(identity.groups.name[*] == "qa")')  # fmt: skip
    phones = await _create(api, registry, name="Phones", precedence=2,
                           match='os.name == "android"')  # fmt: skip
    reg = await warp.register_wireguard(access.identity("quinn@example.com", groups=["qa"]))
    enrolled = await _policy(api, registry, reg)
    assert enrolled["id"] == qa

    await _patch(api, registry, qa, precedence=3)  # now Phones comes first

    assert await _policy(api, registry, reg) == enrolled  # not before the client checks in
    assert reg.id in await _filtered(api, registry, qa)
    assert await _check_in(warp, reg) == phones
    moved = await _policy(api, registry, reg)
    assert (moved["id"], moved["name"]) == (phones, "Phones")
    assert moved["updated_at"] > enrolled["updated_at"]
    assert reg.id in await _filtered(api, registry, phones)
    assert reg.id not in await _filtered(api, registry, qa)

    # Checking in again with nothing changed keeps the assignment and its time.
    assert await _check_in(warp, reg) == phones
    assert await _policy(api, registry, reg) == moved


async def test_a_disabled_profile_is_skipped_from_the_next_check_in(
    api: httpx.AsyncClient, warp: WarpTestClient, access: AccessRole, registry: Registry
) -> None:
    ops = await _create(api, registry, name="Ops", precedence=1,
                        match='identity.email matches "^ops\\."')  # fmt: skip
    reg = await warp.register_wireguard(access.identity("ops.olga@example.com"))
    assert (await _policy(api, registry, reg))["id"] == ops

    await _patch(api, registry, ops, enabled=False)
    assert (await _policy(api, registry, reg))["id"] == ops
    assert await _check_in(warp, reg) == _default_id(registry)
    assert (await _policy(api, registry, reg))["default"] is True

    await _patch(api, registry, ops, enabled=True)
    assert await _check_in(warp, reg) == ops


async def test_a_deleted_profile_shows_deleted_until_the_check_in(
    api: httpx.AsyncClient, warp: WarpTestClient, access: AccessRole, registry: Registry
) -> None:
    qa = await _create(api, registry, name="QA team", precedence=1,
                       match='any(identity.groups.id[*] == "qa")')  # fmt: skip
    reg = await warp.register_wireguard(access.identity("quinn@example.com", groups=["qa"]))
    before = await _policy(api, registry, reg)

    deleted = await api.delete(f"{_base(registry)}/policy/{qa}")
    assert deleted.status_code == 200

    gone = await _policy(api, registry, reg)
    assert gone == {**before, "deleted": True}
    assert gone["name"] == "QA team"
    assert reg.id in await _filtered(api, registry, qa)

    assert await _check_in(warp, reg) == _default_id(registry)
    after = await _policy(api, registry, reg)
    assert (after["id"], after["deleted"], after["default"]) == (_default_id(registry), False, True)
    assert after["updated_at"] > before["updated_at"]
    assert reg.id not in await _filtered(api, registry, qa)
    assert reg.id in await _filtered(api, registry, _default_id(registry))


async def test_a_new_or_changed_profile_and_new_groups_reach_the_client(
    api: httpx.AsyncClient, warp: WarpTestClient, access: AccessRole, registry: Registry
) -> None:
    reg = await warp.register_wireguard(access.identity("sam@example.com"))
    assert (await _policy(api, registry, reg))["id"] == _default_id(registry)

    # A profile created afterwards: the client gets it, with its settings, at check-in.
    sam = await _create(api, registry, name="Sam", precedence=1, captive_portal=42,
                        match='identity.email == "nobody@example.com"')  # fmt: skip
    assert await _check_in(warp, reg) == _default_id(registry)
    await _patch(api, registry, sam, match='identity.email == "sam@example.com"')
    answer = result_of(await warp.get(reg))
    assert answer["policy"]["policy_id"] == sam
    assert answer["policy"]["captive_portal"] == 42 and answer["policy"]["default"] is False

    # The user's groups come from the JWT at enrollment: a re-enrollment with a group.
    admins = await _create(api, registry, name="Admins", precedence=0,
                           match='any(identity.groups.name[*] == "admins")')  # fmt: skip
    again = await warp.register_wireguard(access.identity("sam@example.com", groups=["admins"]))
    assert again.result["policy"]["policy_id"] == admins


async def test_service_tokens_and_profile_types(
    api: httpx.AsyncClient, warp: WarpTestClient, registry: Registry
) -> None:
    token = ServiceToken("0c3d2f5e-8a6b-4c1d-9e7f-1a2b3c4d5e6f", registry.account_id, "kiosk",
                         "d4e5f6.access", hash_secret("k10sk"), None)  # fmt: skip
    assert await registry.store.enrollment.create_service_token(token)
    kiosks = await _create(api, registry, name="Kiosks", precedence=1,
                           match=f'identity.service_token_uuid == "{token.id}"')  # fmt: skip
    # A browser-extension profile matching everything never applies to a WARP client.
    config = {"proxy_enabled": True, "proxy_control": "locked"}
    await _create(api, registry, name="Extension", precedence=0, match='not identity.email == "x"',
                  profile_type="browser_extension", browser_extension_config=config)  # fmt: skip

    reg = await warp.register_wireguard(Identity(client_id="d4e5f6.access", client_secret="k10sk"))
    assert (await _policy(api, registry, reg))["id"] == kiosks
    assert await _check_in(warp, reg) == kiosks
