"""Device settings profiles through the official Python SDK (docs/profiles.md).

`client.zero_trust.devices.policies.custom` and `.default`, with their `excludes`,
`includes` and `fallback_domains` sub-resources, on both stores. The expected defaults are
the reference's (api-semantics.md §2.4; the lists as recorded in cases.md R14), written
out here rather than read from the server.
"""

from __future__ import annotations

from typing import Any

import cloudflare
import httpx
import pytest
from cloudflare import AsyncCloudflare

from tests.conftest import Registry

DEFAULT_EXCLUDE = [
    {"address": "10.0.0.0/8"},
    {"address": "100.64.0.0/10"},
    {"address": "169.254.0.0/16", "description": "DHCP Unspecified"},
    {"address": "172.16.0.0/12"},
    {"address": "192.0.0.0/24"},
    {"address": "192.168.0.0/16"},
    {"address": "224.0.0.0/24"},
    {"address": "240.0.0.0/4"},
    {"address": "255.255.255.255/32", "description": "DHCP Broadcast"},
    {"address": "fe80::/10", "description": "IPv6 Link Local"},
    {"address": "fd00::/8"},
    {"address": "ff01::/16"},
    {"address": "ff02::/16"},
    {"address": "ff03::/16"},
    {"address": "ff04::/16"},
    {"address": "ff05::/16"},
]
DEFAULT_SUFFIXES = [
    "home.arpa", "intranet", "internal", "private", "localdomain", "domain", "lan", "home",
    "host", "corp", "local", "localhost", "invalid", "test",
]  # fmt: skip
DEFAULT_SCALARS: dict[str, Any] = {
    "allow_mode_switch": False,
    "allow_updates": False,
    "allowed_to_leave": True,
    "auto_connect": 0,
    "captive_portal": 180,
    "disable_auto_fallback": False,
    "exclude_office_ips": False,
    "register_interface_ip_with_dns": True,
    "sccm_vpn_boundary_support": False,
    "switch_locked": False,
    "uninstall_protection": False,
    "support_url": "",
    "tunnel_protocol": "",
    "enabled": True,
    "profile_type": "warp",
}
SPLIT_TUNNEL = [
    {"host": "example.internal", "description": "the intranet"},
    {"address": "192.0.2.0/24"},
    {"address": "2001:db8::/32", "description": "documentation"},
]


def _dump(model: Any) -> dict[str, Any]:
    """An SDK model as the JSON it came from (unset fields left out)."""
    dumped: dict[str, Any] = model.to_dict()
    return dumped


def _demo_custom(registry: Registry) -> list[Any]:
    """The demo's custom warp profiles, by precedence: the expected list."""
    customs = [p for p in registry.fleet.profiles if not p.is_default]
    return sorted(customs, key=lambda p: p.precedence or 0)


async def test_created_profile_reads_back_complete_and_equal(
    sdk: AsyncCloudflare, registry: Registry
) -> None:
    custom = sdk.zero_trust.devices.policies.custom
    created = await custom.create(
        account_id=registry.account_id,
        name="Laptops",
        match='os.name in {"windows" "mac"}',
        precedence=100,
    )
    assert created is not None and created.policy_id is not None

    body = _dump(created)
    assert {k: body[k] for k in DEFAULT_SCALARS} == DEFAULT_SCALARS
    assert body["exclude"] == DEFAULT_EXCLUDE and "include" not in body
    assert [d["suffix"] for d in body["fallback_domains"]] == DEFAULT_SUFFIXES
    assert body["service_mode_v2"] == {"mode": "warp"}
    assert body["dns_search_suffixes"] == []
    assert (body["name"], body["match"], body["precedence"]) == (
        "Laptops",
        'os.name in {"windows" "mac"}',
        100,
    )
    assert (body["default"], body["description"]) == (False, "")
    assert body["gateway_unique_id"] == registry.account_id

    fetched = await custom.get(created.policy_id, account_id=registry.account_id)
    assert fetched == created
    listed = [p async for p in custom.list(account_id=registry.account_id)]
    assert [p for p in listed if p.policy_id == created.policy_id] == [created]


async def test_create_with_the_name_alone_goes_after_the_last_profile(
    sdk: AsyncCloudflare, registry: Registry
) -> None:
    custom = sdk.zero_trust.devices.policies.custom
    created = await custom.create(account_id=registry.account_id, name="No rules yet")
    assert created is not None
    highest = max(p.precedence or 0 for p in registry.fleet.profiles if not p.is_default)
    assert created.precedence == highest + 1
    assert created.match == ""


async def test_writing_back_what_was_read_changes_nothing(
    api: httpx.AsyncClient, sdk: AsyncCloudflare, registry: Registry
) -> None:
    custom = sdk.zero_trust.devices.policies.custom
    created = await custom.create(account_id=registry.account_id, name="Round trip",
                                  match='identity.email == "a@example.com"', precedence=101,
                                  include=SPLIT_TUNNEL, lan_allow_minutes=30)  # fmt: skip
    assert created is not None
    base = f"/accounts/{registry.account_id}/devices/policy"

    for path in (f"{base}/{created.policy_id}", base):
        read = (await api.get(path)).json()["result"]
        written = await api.patch(path, json=read)
        assert written.status_code == 200, written.text
        assert written.json()["result"] == read
        assert (await api.get(path)).json()["result"] == read


async def test_edit_changes_the_given_fields_only(sdk: AsyncCloudflare, registry: Registry) -> None:
    custom = sdk.zero_trust.devices.policies.custom
    created = await custom.create(account_id=registry.account_id, name="Before", precedence=102)
    assert created is not None

    edited = await custom.edit(
        created.policy_id,
        account_id=registry.account_id,
        name="After",
        switch_locked=True,
        captive_portal=300,
        include=SPLIT_TUNNEL,
        service_mode_v2={"mode": "proxy", "port": 3000},
    )
    assert edited is not None
    before, after = _dump(created), _dump(edited)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed == {"name", "switch_locked", "captive_portal", "exclude", "include",
                       "service_mode_v2"}  # fmt: skip
    assert after["include"] == SPLIT_TUNNEL and "exclude" not in after
    assert after["service_mode_v2"] == {"mode": "proxy", "port": 3000}


async def test_delete_answers_with_the_remaining_profiles(
    sdk: AsyncCloudflare, registry: Registry
) -> None:
    custom = sdk.zero_trust.devices.policies.custom
    kept = await custom.create(account_id=registry.account_id, name="Kept", precedence=1)
    gone = await custom.create(account_id=registry.account_id, name="Gone", precedence=2)
    assert kept is not None and gone is not None

    remaining = [p async for p in custom.delete(gone.policy_id, account_id=registry.account_id)]

    expected = ["Kept", *(p.name for p in _demo_custom(registry))]
    assert [p.name for p in remaining] == expected
    assert gone.policy_id not in {p.policy_id for p in remaining}
    with pytest.raises(cloudflare.NotFoundError):
        await custom.get(gone.policy_id, account_id=registry.account_id)
    with pytest.raises(cloudflare.NotFoundError):
        await custom.delete(gone.policy_id, account_id=registry.account_id)


async def test_list_is_by_precedence_and_by_type(sdk: AsyncCloudflare, registry: Registry) -> None:
    custom = sdk.zero_trust.devices.policies.custom
    extension = await custom.create(
        account_id=registry.account_id, name="Extension", precedence=3,
        profile_type="browser_extension",
        browser_extension_config={"proxy_enabled": True, "proxy_control": "locked"},
    )  # fmt: skip
    assert extension is not None

    warp = [p async for p in custom.list(account_id=registry.account_id)]
    assert [(p.name, p.precedence) for p in warp] == [
        (p.name, p.precedence) for p in _demo_custom(registry)
    ]
    assert all(p.default is False for p in warp)

    others = [p async for p in custom.list(account_id=registry.account_id,
                                           profile_type="browser_extension")]  # fmt: skip
    assert [p.policy_id for p in others] == [extension.policy_id]
    assert others[0].browser_extension_config is not None
    assert others[0].browser_extension_config.proxy_control == "locked"


async def test_default_profile_get_and_edit(sdk: AsyncCloudflare, registry: Registry) -> None:
    default = sdk.zero_trust.devices.policies.default
    before = await default.get(account_id=registry.account_id)
    assert before is not None
    body = _dump(before)
    assert body["default"] is True and body["enabled"] is True
    assert not {"name", "match", "precedence", "description"} & body.keys()
    assert body["policy_id"] == next(p.id for p in registry.fleet.profiles if p.is_default)
    assert body["exclude"] == DEFAULT_EXCLUDE

    edited = await default.edit(
        account_id=registry.account_id, auto_connect=600, allow_updates=True,
        include=SPLIT_TUNNEL, tunnel_protocol="wireguard", service_mode_v2={"mode": "warp"},
    )  # fmt: skip
    assert edited is not None
    after = _dump(edited)
    assert (after["auto_connect"], after["allow_updates"]) == (600, True)
    assert after["include"] == SPLIT_TUNNEL and "exclude" not in after
    assert _dump(await default.get(account_id=registry.account_id)) == after


@pytest.mark.parametrize("target", ["default", "custom"])
async def test_lists_are_read_and_replaced_whole(
    sdk: AsyncCloudflare, registry: Registry, target: str
) -> None:
    policies = sdk.zero_trust.devices.policies
    account = registry.account_id
    if target == "default":
        resources: Any = policies.default
        where: dict[str, Any] = {"account_id": account}
        args: tuple[str, ...] = ()
    else:
        created = await policies.custom.create(account_id=account, name="Lists", precedence=7)
        assert created is not None and created.policy_id is not None
        resources, where, args = policies.custom, {"account_id": account}, (created.policy_id,)

    excluded = [e.to_dict() async for e in resources.excludes.get(*args, **where)]
    assert excluded == DEFAULT_EXCLUDE
    domains = [d.to_dict() async for d in resources.fallback_domains.get(*args, **where)]
    assert [d["suffix"] for d in domains] == DEFAULT_SUFFIXES

    new_domains = [{"suffix": "corp.example.com", "description": "HQ",
                    "dns_server": ["10.0.0.53", "2001:db8::53"]}, {"suffix": "lab"}]  # fmt: skip
    put = resources.fallback_domains.update(*args, domains=new_domains, **where)
    assert [d.to_dict() async for d in put] == new_domains
    got = resources.fallback_domains.get(*args, **where)
    assert [d.to_dict() async for d in got] == new_domains

    exclude = [{"address": "198.51.100.0/24"}, {"host": "*.example.org"}]
    put_exclude = resources.excludes.update(*args, body=exclude, **where)
    assert [e.to_dict() async for e in put_exclude] == exclude
    assert [e.to_dict() async for e in resources.includes.get(*args, **where)] == []

    # Setting the include list switches the profile to include mode.
    put_include = resources.includes.update(*args, body=SPLIT_TUNNEL, **where)
    assert [e.to_dict() async for e in put_include] == SPLIT_TUNNEL
    assert [e.to_dict() async for e in resources.excludes.get(*args, **where)] == []
    profile = await (policies.default.get(**where) if target == "default"
                     else policies.custom.get(*args, **where))  # fmt: skip
    assert profile is not None
    shown = _dump(profile)
    assert shown["include"] == SPLIT_TUNNEL and "exclude" not in shown
    assert shown["fallback_domains"] == new_domains


async def test_the_sdk_sees_refusals_as_exceptions(
    sdk: AsyncCloudflare, registry: Registry
) -> None:
    custom = sdk.zero_trust.devices.policies.custom
    with pytest.raises(cloudflare.BadRequestError) as refused:
        await custom.create(account_id=registry.account_id, name="Bad", precedence=8,
                            match='user.identity == "jdoe@example.com"')  # fmt: skip
    assert refused.value.status_code == 400
    with pytest.raises(cloudflare.BadRequestError):
        await custom.create(account_id=registry.account_id, name="Bad", precedence=8,
                            exclude=[{"address": "10.0.0.1/8"}])  # fmt: skip
    names = [p.name async for p in custom.list(account_id=registry.account_id)]
    assert "Bad" not in names
