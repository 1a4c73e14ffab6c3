"""What the profile endpoints refuse, how, and that a refusal changes nothing.

Raw HTTP, to see the exact envelope: `400` with code `2003` "invalid json request" and an
`error_chain` entry naming the field (`11022`, or `11030` for a match expression); `404`
/ `1102`, `400` / `1103` and `1104` for the profile-level refusals; the usual
credential errors. Cases R12-R17 of the reference are here.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Registry
from tests.expect import assert_error_envelope
from warp_registry.ids import new_uuid
from warp_registry.secrets import hash_secret, new_api_token

FIELD_CHAIN = 11022
MATCH_CHAIN = 11030


def _base(registry: Registry) -> str:
    return f"/accounts/{registry.account_id}/devices"


def _default_id(registry: Registry) -> str:
    return next(p.id for p in registry.fleet.profiles if p.is_default)


def _field_error(response: httpx.Response, chain: int = FIELD_CHAIN) -> str:
    """The message of a 400 / 2003 whose chain has one entry of code `chain`."""
    assert response.status_code == 400, response.text
    error = assert_error_envelope(response.json(), 2003)
    assert error["message"] == "invalid json request"
    assert [link["code"] for link in error["error_chain"]] == [chain], error
    message: str = error["error_chain"][0]["message"]
    return message


async def _everything(api: httpx.AsyncClient, registry: Registry) -> list[Any]:
    """Every profile as the API shows it, to prove that a refusal changed nothing."""
    base = _base(registry)
    warp = (await api.get(f"{base}/policies")).json()["result"]
    extensions = (await api.get(f"{base}/policies?profile_type=browser_extension")).json()
    default = (await api.get(f"{base}/policy")).json()["result"]
    return [warp, extensions["result"], default]


async def _create(api: httpx.AsyncClient, registry: Registry, **body: Any) -> dict[str, Any]:
    response = await api.post(f"{_base(registry)}/policy", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


# --- bodies refused, naming the field ---

CUSTOM_BODIES: list[tuple[dict[str, Any], str]] = [
    # (body of a create, start of the message naming the field)
    ({"name": "x", "precedence": 500, "exclude": [], "include": []}, "include: cannot be set"),
    ({"name": "x", "exclude": [{"address": "10.0.0.0/8", "host": "a.example"}]},
     "exclude[0]: needs exactly one of address and host"),
    ({"name": "x", "include": [{"host": "a.example"}, {"description": "neither"}]},
     "include[1]: needs exactly one"),
    ({"name": "x", "exclude": [{"address": "10.0.0.1/8"}]}, "exclude[0].address: not a valid"),
    ({"name": "x", "exclude": [{"address": "300.0.0.0/8"}]}, "exclude[0].address: not a valid"),
    ({"name": "x", "exclude": [{"address": "10.0.0.0/33"}]}, "exclude[0].address: not a valid"),
    ({"name": "x", "exclude": [{"address": "intranet"}]}, "exclude[0].address: must be an IP"),
    ({"name": "x", "exclude": [{"address": "10.0.0.0/255.0.0.0"}]},
     "exclude[0].address: must be an IP"),
    ({"name": "x", "exclude": [{"host": "bad host"}]}, "exclude[0].host: must be a host"),
    ({"name": "x", "exclude": [{"address": "10.0.0.0/8", "port": 80}]},
     "exclude[0].port: unknown field"),
    ({"name": "x", "exclude": "10.0.0.0/8"}, "exclude: must be a JSON array"),
    ({"name": "x" * 101}, "name: at most 100 characters"),
    ({"name": "   "}, "name: must not be empty"),
    ({"name": "x", "description": "d" * 501}, "description: at most 500 characters"),
    ({"name": "x", "match": 'os.name == "' + "a" * 490 + '"'}, "match: at most 500 characters"),
    ({"name": "x", "include": [{"host": "a.example", "description": "d" * 101}]},
     "include[0].description: at most 100 characters"),
    ({"name": "x", "support_url": "u" * 2049}, "support_url: at most 2048 characters"),
    ({"name": "nul\u0000"}, "name: must not contain control characters"),
    ({"name": "x", "enabled": "yes"}, "enabled: must be true or false"),
    ({"name": "x", "auto_connect": "5"}, "auto_connect: must be a number"),
    ({"name": "x", "captive_portal": -1}, "captive_portal: must be between 0 and 86400"),
    ({"name": "x", "precedence": 1.5}, "precedence: must be a whole number"),
    ({"name": "x", "precedence": True}, "precedence: must be a number"),
    ({"name": "x", "tunnel_protocol": "ipsec"}, "tunnel_protocol: must be one of"),
    ({"name": "x", "service_mode_v2": {"mode": "bogus"}}, "service_mode_v2.mode: must be one"),
    ({"name": "x", "service_mode_v2": {"mode": "proxy", "port": 0}},
     "service_mode_v2.port: must be between 1 and 65535"),
    ({"name": "x", "fallback_domains": [{"suffix": "corp", "dns_server": ["10.0.0.300"]}]},
     "fallback_domains[0].dns_server[0]: must be an IPv4 or IPv6 address"),
    ({"name": "x", "fallback_domains": [{"description": "no suffix"}]},
     "fallback_domains[0].suffix: is required"),
    ({"name": "x", "virtual_networks": {"allowed": [], "default": new_uuid()}},
     "virtual_networks.allowed: must list"),
    ({"name": "x", "global_acceleration": {"enabled": True}},
     "global_acceleration: needs wireguard_endpoints or masque_endpoints"),
    ({"name": "x", "browser_extension_config": {"proxy_enabled": True,
                                                "proxy_control": "locked"}},
     "browser_extension_config: is only for browser_extension"),
    ({"name": "x", "profile_type": "browser_extension"},
     "browser_extension_config: is required"),
    ({"name": "x", "profile_type": "android"}, "profile_type: must be one of"),
    ({"name": "x", "default": True}, "default: cannot be changed"),
    ({"name": "x", "policy_id": new_uuid()}, "policy_id: is set by the server"),
    ({"name": "x", "target_tests": [{"id": "t"}]}, "target_tests: is deprecated"),
    ({"name": "x", "doh_in_tunnel": True}, "doh_in_tunnel: unknown field"),
    ({"match": 'os.name == "linux"'}, "name: is required"),
    (["not", "an", "object"], "body: must be a JSON object"),  # type: ignore[list-item]
]  # fmt: skip


CUSTOM_IDS = [m.split(":")[0] + f"-{i}" for i, (_, m) in enumerate(CUSTOM_BODIES)]


@pytest.mark.parametrize(("body", "message"), CUSTOM_BODIES, ids=CUSTOM_IDS)
async def test_create_refuses_naming_the_field(
    api: httpx.AsyncClient, registry: Registry, body: Any, message: str
) -> None:
    before = await _everything(api, registry)
    response = await api.post(f"{_base(registry)}/policy", json=body)
    assert _field_error(response).startswith(message)
    assert await _everything(api, registry) == before


@pytest.mark.parametrize(
    "field", ["name", "match", "precedence", "description", "browser_extension_config"]
)
async def test_default_profile_refuses_custom_only_fields(
    api: httpx.AsyncClient, registry: Registry, field: str
) -> None:
    config = {"proxy_enabled": True, "proxy_control": "locked"}
    values = {"name": "x", "match": 'os.name == "mac"', "precedence": 1, "description": "d",
              "browser_extension_config": config}  # fmt: skip
    response = await api.patch(f"{_base(registry)}/policy", json={field: values[field]})
    assert _field_error(response) == f"{field}: the default profile does not take this field"


@pytest.mark.parametrize(("field", "value"), [("enabled", False), ("default", False),
                                              ("profile_type", "browser_extension"),
                                              ("policy_id", "00000000-0000-4000-8000-000000000000"),
                                              ("gateway_unique_id", "0" * 32)])  # fmt: skip
async def test_default_profile_read_only_fields_cannot_change(
    api: httpx.AsyncClient, registry: Registry, field: str, value: Any
) -> None:
    before = await _everything(api, registry)
    response = await api.patch(f"{_base(registry)}/policy", json={field: value})
    assert _field_error(response).startswith(f"{field}: cannot be changed")
    assert await _everything(api, registry) == before


async def test_custom_profile_read_only_fields_cannot_change(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    created = await _create(api, registry, name="Fixed", precedence=500)
    path = f"{_base(registry)}/policy/{created['policy_id']}"
    changes = {"policy_id": new_uuid(), "default": True, "profile_type": "browser_extension",
               "gateway_unique_id": "f" * 32}  # fmt: skip
    for field, value in changes.items():
        assert _field_error(await api.patch(path, json={field: value})).startswith(field)
    # Repeating them unchanged is fine.
    same = {field: created[field] for field in changes}
    assert (await api.patch(path, json=same)).json()["result"] == created


@pytest.mark.parametrize("method", ["POST", "PATCH", "PUT"])
async def test_malformed_json_is_2003_invalid_json_request(
    api: httpx.AsyncClient, registry: Registry, method: str
) -> None:
    """R12: the plain envelope, without a chain."""
    path = {"POST": "/policy", "PATCH": "/policy", "PUT": "/policy/exclude"}[method]
    for body in (b"{not json", b'{"name": "x",}', b"\xff\xfe", b'{"name": "x"} trailing'):
        response = await api.request(method, _base(registry) + path, content=body)
        assert response.status_code == 400
        error = assert_error_envelope(response.json(), 2003)
        assert error == {"code": 2003, "message": "invalid json request"}


async def test_list_bodies_must_be_arrays(api: httpx.AsyncClient, registry: Registry) -> None:
    base = _base(registry)
    for path in ("/policy/exclude", "/policy/include", "/policy/fallback_domains"):
        field = path.rsplit("/", 1)[1]
        for body in (b"", b'{"address": "10.0.0.0/8"}'):
            response = await api.put(base + path, content=body)
            if body:
                assert _field_error(response) == f"{field}: must be a JSON array"
            else:
                assert assert_error_envelope(response.json(), 2003)["message"] == (
                    "invalid json request"
                )


# --- match expressions (R17) ---

MATCHES_REFUSED = [
    ('user.identity == "jdoe@example.com"', "unknown selector 'user.identity'", 0),
    ('identity.email = "jdoe@example.com"', 'comparisons use "=="', 15),
    ('os.name == "linux" and', "expected a selector", 22),
    ('identity.groups.name == "eng"', "is a list", 0),
    ('identity.email matches "(a+)+$"', "repeats a repetition", 23),
]


@pytest.mark.parametrize(("match", "reason", "position"), MATCHES_REFUSED)
async def test_a_match_that_does_not_parse_is_refused_with_its_position(
    api: httpx.AsyncClient, registry: Registry, match: str, reason: str, position: int
) -> None:
    created = await _create(api, registry, name="Match", precedence=500)
    for response in (
        await api.post(f"{_base(registry)}/policy", json={"name": "y", "match": match}),
        await api.patch(f"{_base(registry)}/policy/{created['policy_id']}", json={"match": match}),
    ):
        message = _field_error(response, MATCH_CHAIN)
        assert message.startswith("match: ") and reason in message
        assert message.endswith(f"at position {position}")
    stored = await api.get(f"{_base(registry)}/policy/{created['policy_id']}")
    assert stored.json()["result"] == created


# --- precedence (our choice: unique) ---


async def test_a_precedence_in_use_is_refused(api: httpx.AsyncClient, registry: Registry) -> None:
    taken = next(p for p in registry.fleet.profiles if not p.is_default)
    before = await _everything(api, registry)

    response = await api.post(f"{_base(registry)}/policy",
                              json={"name": "Clash", "precedence": taken.precedence})  # fmt: skip
    assert response.status_code == 400
    error = assert_error_envelope(response.json(), 1104)
    assert repr(taken.name) in error["message"]
    assert await _everything(api, registry) == before

    mine = await _create(api, registry, name="Mine", precedence=600)
    path = f"{_base(registry)}/policy/{mine['policy_id']}"
    response = await api.patch(path, json={"precedence": taken.precedence})
    assert_error_envelope(response.json(), 1104)
    assert (await api.get(path)).json()["result"]["precedence"] == 600
    # Its own precedence again is no clash.
    assert (await api.patch(path, json={"precedence": 600})).status_code == 200


async def test_no_precedence_left_after_the_largest_is_a_clash(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    await _create(api, registry, name="Last", precedence=2**31 - 1)
    response = await api.post(f"{_base(registry)}/policy", json={"name": "After the last"})
    assert response.status_code == 400
    assert_error_envelope(response.json(), 1104)
    too_big = await api.post(f"{_base(registry)}/policy", json={"name": "x", "precedence": 2**31})
    assert _field_error(too_big).startswith("precedence: must be between 0 and")


# --- profiles that are not there ---


async def test_unknown_profiles_are_404_1102(api: httpx.AsyncClient, registry: Registry) -> None:
    unknown = f"{_base(registry)}/policy/{new_uuid()}"
    calls = [("GET", unknown, None), ("PATCH", unknown, {"name": "x"}), ("DELETE", unknown, None),
             ("GET", f"{unknown}/exclude", None), ("PUT", f"{unknown}/include", []),
             ("GET", f"{unknown}/fallback_domains", None)]  # fmt: skip
    for method, path, body in calls:
        response = await api.request(method, path, json=body)
        assert response.status_code == 404, (method, path)
        assert_error_envelope(response.json(), 1102)


async def test_the_default_profile_is_not_addressed_by_id(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    path = f"{_base(registry)}/policy/{_default_id(registry)}"
    for method, body in (("GET", None), ("PATCH", {"support_url": "x"}), ("PUT", [])):
        target = f"{path}/exclude" if method == "PUT" else path
        response = await api.request(method, target, json=body)
        assert response.status_code == 404
        assert "/devices/policy" in assert_error_envelope(response.json(), 1102)["message"]

    before = await _everything(api, registry)
    response = await api.delete(path)
    assert response.status_code == 400
    assert_error_envelope(response.json(), 1103)
    assert await _everything(api, registry) == before


# --- permissions ---


async def _token(registry: Registry, permission: str) -> dict[str, str]:
    secret = new_api_token()
    assert await registry.store.create_token(
        new_uuid(), "profiles test", hash_secret(secret), permission, [registry.account_id]
    )
    return {"Authorization": f"Bearer {secret}"}


async def test_reads_take_a_read_token_and_writes_need_write(
    anon: httpx.AsyncClient, registry: Registry
) -> None:
    reader = await _token(registry, "read")
    custom = next(p for p in registry.fleet.profiles if not p.is_default)
    base, one = _base(registry), f"{_base(registry)}/policy/{custom.id}"

    for path in (f"{base}/policy", f"{base}/policies", one, f"{one}/exclude",
                 f"{base}/policy/fallback_domains"):  # fmt: skip
        assert (await anon.get(path, headers=reader)).status_code == 200, path

    writes = [("PATCH", f"{base}/policy", {}), ("POST", f"{base}/policy", {"name": "x"}),
              ("PATCH", one, {}), ("DELETE", one, None), ("PUT", f"{one}/include", []),
              ("PUT", f"{base}/policy/exclude", [])]  # fmt: skip
    for method, path, body in writes:
        response = await anon.request(method, path, json=body, headers=reader)
        assert response.status_code == 403, (method, path)
        assert_error_envelope(response.json(), 10000)
        response = await anon.request(method, path, json=body)
        assert (response.status_code, response.json()["errors"][0]["code"]) == (400, 9106)


# --- listing ---


async def test_list_parameters_are_checked(api: httpx.AsyncClient, registry: Registry) -> None:
    cases = [("profile_type=android", 11001), ("per_page=0", 11000), ("per_page=1001", 11000),
             ("page=0", 11020), ("page=x", 11020)]  # fmt: skip
    for query, chain in cases:
        response = await api.get(f"{_base(registry)}/policies?{query}")
        assert response.status_code == 400, query
        error = assert_error_envelope(response.json(), 6008)
        assert error["error_chain"][0]["code"] == chain


async def test_list_pages(api: httpx.AsyncClient, registry: Registry) -> None:
    expected = sorted((p for p in registry.fleet.profiles if not p.is_default),
                      key=lambda p: p.precedence or 0)  # fmt: skip
    response = await api.get(f"{_base(registry)}/policies", params={"per_page": 2, "page": 2})
    body = response.json()
    assert [p["name"] for p in body["result"]] == [p.name for p in expected[2:4]]
    total = len(expected)
    assert body["result_info"] == {"page": 2, "per_page": 2, "count": 2, "total_count": total,
                                   "total_pages": (total + 1) // 2}  # fmt: skip

    whole = (await api.get(f"{_base(registry)}/policies")).json()
    assert [p["policy_id"] for p in whole["result"]] == [p.id for p in expected]
    assert whole["result_info"]["count"] == whole["result_info"]["total_count"] == total


# --- fields that are nulled, cleared and switched (R13, R14, R15) ---


async def test_null_clears_only_the_nullable_fields(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    network = new_uuid()
    created = await _create(
        api, registry, name="Nulls", precedence=500, lan_allow_minutes=30,
        virtual_networks={"allowed": [network], "default": network},
        global_acceleration={"enabled": True, "api_endpoints": [],
                             "masque_endpoints": ["162.159.198.1"], "wireguard_endpoints": []},
    )  # fmt: skip
    assert created["lan_allow_minutes"] == 30
    assert created["virtual_networks"] == {"allowed": [network], "default": network}

    path = f"{_base(registry)}/policy/{created['policy_id']}"
    nulled = (await api.patch(path, json={
        "lan_allow_minutes": None, "virtual_networks": None, "global_acceleration": None,
        "name": None, "switch_locked": None, "exclude": None,
    })).json()["result"]  # fmt: skip
    assert "lan_allow_minutes" not in nulled
    assert nulled["virtual_networks"] is None and nulled["global_acceleration"] is None
    unchanged = ("name", "switch_locked", "exclude", "fallback_domains", "precedence")
    assert {k: nulled[k] for k in unchanged} == {k: created[k] for k in unchanged}


async def test_default_profile_switches_from_exclude_to_include(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    """R13: the Terraform body that made Cloudflare answer 500 switches cleanly here."""
    path = f"{_base(registry)}/policy"
    body = {"service_mode_v2": {"mode": "warp"}, "tunnel_protocol": "wireguard",
            "include": [{"address": "10.10.0.0/16", "description": "office"}]}  # fmt: skip
    response = await api.patch(path, json=body)
    assert response.status_code == 200, response.text
    shown = (await api.get(path)).json()["result"]
    assert shown["include"] == body["include"] and "exclude" not in shown
    assert shown["tunnel_protocol"] == "wireguard"


async def test_an_empty_exclude_list_clears_it(api: httpx.AsyncClient, registry: Registry) -> None:
    """R14: `exclude: []` removes the 16 defaults."""
    created = await _create(api, registry, name="Empty", precedence=500, exclude=[])
    assert created["exclude"] == []
    fetched = await api.get(f"{_base(registry)}/policy/{created['policy_id']}/exclude")
    assert fetched.json()["result"] == []


async def test_split_tunnel_entries_round_trip_unchanged(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    """R15: host-only and address-only entries, order and descriptions kept."""
    entries = [{"host": "example.internal"}, {"address": "192.0.2.0/24"},
               {"description": "wildcard", "host": "*.corp.example"},
               {"address": "2001:DB8::/32"}, {"address": "203.0.113.7"}]  # fmt: skip
    created = await _create(api, registry, name="R15", precedence=500, exclude=entries)
    assert created["exclude"] == entries
    path = f"{_base(registry)}/policy/{created['policy_id']}"
    assert (await api.get(f"{path}/exclude")).json()["result"] == entries
    assert (await api.put(f"{path}/exclude", json=entries)).json()["result"] == entries
