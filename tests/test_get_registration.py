"""Get registration: every field of api-semantics.md §2.1, checked against the seed's records.

`GET /accounts/{account_id}/devices/registrations/{registration_id}[?include=policy]`
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from cloudflare import AsyncCloudflare

from tests.conftest import Registry
from tests.expect import (
    RFC3339_UTC,
    assert_error_envelope,
    assert_success_envelope,
    expected_registration,
    rfc3339,
)
from warp_registry.domain.records import RegistrationRecord

REQUIRED_KEYS = {"id", "key", "registration_type", "device", "created_at", "updated_at",
                 "last_seen_at"}  # fmt: skip


def _path(registry: Registry, registration_id: str) -> str:
    return f"/accounts/{registry.account_id}/devices/registrations/{registration_id}"


async def _get(
    api: httpx.AsyncClient, registry: Registry, record: RegistrationRecord, include: str | None
) -> dict[str, Any]:
    params = {} if include is None else {"include": include}
    response = await api.get(_path(registry, record.id), params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert_success_envelope(body)
    result: dict[str, Any] = body["result"]
    return result


def _pick(registry: Registry, **wanted: Any) -> RegistrationRecord:
    """The first registration of the fleet whose fields have the wanted values."""
    for record in registry.fleet.registrations:
        if all(getattr(record, name) == value for name, value in wanted.items()):
            return record
    raise AssertionError(f"the demo fleet has no registration with {wanted}")


async def test_every_registration_matches_its_records(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    for record in registry.fleet.registrations:
        plain = await _get(api, registry, record, None)
        assert plain == expected_registration(record, registry.fleet, include_policy=False)

        with_policy = await _get(api, registry, record, "policy")
        assert with_policy == expected_registration(record, registry.fleet, include_policy=True)


async def test_field_types_and_nullability(api: httpx.AsyncClient, registry: Registry) -> None:
    for record in registry.fleet.registrations:
        reg = await _get(api, registry, record, "policy")

        assert set(reg) >= REQUIRED_KEYS
        for name in ("id", "key", "created_at", "updated_at", "last_seen_at"):
            assert isinstance(reg[name], str) and reg[name], name
        assert reg["registration_type"] in ("warp", "browser_extension")
        assert reg["key_type"] in ("curve25519", "secp256r1", None)
        assert reg["tunnel_type"] in ("wireguard", "masque", None)
        assert reg["deleted_at"] is None
        for name in ("revoked_at", "virtual_ipv4", "virtual_ipv6"):
            assert reg[name] is None or isinstance(reg[name], str), name

        assert set(reg["device"]) <= {"id", "name", "client_version"}
        assert isinstance(reg["device"]["id"], str) and isinstance(reg["device"]["name"], str)
        assert "client_version" not in reg["device"] or isinstance(
            reg["device"]["client_version"], str
        )
        assert set(reg["user"]) == {"id", "email", "name"}

        policy = reg["policy"]
        assert set(policy) == {"id", "name", "default", "deleted", "updated_at"}
        assert isinstance(policy["default"], bool) and isinstance(policy["deleted"], bool)


async def test_timestamps_are_rfc3339_utc_with_z(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    for record in (registry.fleet.registrations[0], *_revoked(registry)):
        reg = await _get(api, registry, record, "policy")
        stamps = [reg["created_at"], reg["updated_at"], reg["last_seen_at"],
                  reg["policy"]["updated_at"]]  # fmt: skip
        if reg["revoked_at"] is not None:
            stamps.append(reg["revoked_at"])
        for stamp in stamps:
            assert RFC3339_UTC.fullmatch(stamp), stamp


def _revoked(registry: Registry) -> list[RegistrationRecord]:
    return [r for r in registry.fleet.registrations if r.revoked_at is not None]


async def test_revoked_registration_shows_when(api: httpx.AsyncClient, registry: Registry) -> None:
    revoked = _revoked(registry)
    assert revoked, "the demo fleet must hold revoked registrations"
    for record in revoked:
        reg = await _get(api, registry, record, None)
        assert record.revoked_at is not None
        assert reg["revoked_at"] == rfc3339(record.revoked_at)
        # DOC-REG's sample: after a revoke, updated_at equals revoked_at.
        assert reg["updated_at"] == reg["revoked_at"]


async def test_active_registration_has_null_revoked_at(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    record = _pick(registry, revoked_at=None)
    reg = await _get(api, registry, record, None)
    assert reg["revoked_at"] is None
    assert reg["deleted_at"] is None


async def test_service_token_registration_has_a_user_of_nulls(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    record = _pick(registry, user_id=None)
    reg = await _get(api, registry, record, None)
    assert reg["user"] == {"id": None, "email": None, "name": None}
    assert reg["device"]["id"] == record.device_id


async def test_user_registration_names_its_user(api: httpx.AsyncClient, registry: Registry) -> None:
    record = next(r for r in registry.fleet.registrations if r.user_id is not None)
    user = next(u for u in registry.fleet.users if u.id == record.user_id)
    reg = await _get(api, registry, record, None)
    assert reg["user"] == {"id": user.id, "email": user.email, "name": user.name}


async def test_policy_only_when_included(api: httpx.AsyncClient, registry: Registry) -> None:
    record = registry.fleet.registrations[0]
    assert "policy" not in await _get(api, registry, record, None)
    assert "policy" not in await _get(api, registry, record, "")
    assert "policy" in await _get(api, registry, record, "policy")


@pytest.mark.parametrize("include", ["policy,policy", "policy, policy", " policy"])
async def test_include_is_a_comma_separated_list(
    api: httpx.AsyncClient, registry: Registry, include: str
) -> None:
    record = registry.fleet.registrations[0]
    reg = await _get(api, registry, record, include)
    assert reg["policy"]["id"] == record.policy_id


@pytest.mark.parametrize("include", ["bogus", "policy,bogus", "POLICY", "device"])
async def test_unsupported_include_is_400(
    api: httpx.AsyncClient, registry: Registry, include: str
) -> None:
    record = registry.fleet.registrations[0]
    response = await api.get(_path(registry, record.id), params={"include": include})
    assert response.status_code == 400
    error = assert_error_envelope(response.json(), 6008)
    assert error["error_chain"][0]["code"] == 11001
    assert "include" in error["error_chain"][0]["message"]


async def test_policy_marks_the_default_profile(api: httpx.AsyncClient, registry: Registry) -> None:
    default_ids = {p.id for p in registry.fleet.profiles if p.is_default}
    on_default = next(r for r in registry.fleet.registrations if r.policy_id in default_ids)
    on_custom = next(r for r in registry.fleet.registrations if r.policy_id not in default_ids)

    default_policy = (await _get(api, registry, on_default, "policy"))["policy"]
    custom_policy = (await _get(api, registry, on_custom, "policy"))["policy"]

    assert default_policy["default"] is True and default_policy["name"] == "Default"
    assert custom_policy["default"] is False
    assert custom_policy["name"] == next(
        p.name for p in registry.fleet.profiles if p.id == on_custom.policy_id
    )


async def test_ids_in_the_path_are_case_insensitive(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    record = registry.fleet.registrations[0]
    path = f"/accounts/{registry.account_id.upper()}/devices/registrations/{record.id.upper()}"
    response = await api.get(path)
    assert response.status_code == 200
    assert response.json()["result"]["id"] == record.id


async def test_head_answers_like_get_without_a_body(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    response = await api.head(_path(registry, registry.fleet.registrations[0].id))
    assert response.status_code == 200
    assert response.content == b""


async def test_sdk_reads_every_typed_field(sdk: AsyncCloudflare, registry: Registry) -> None:
    """The official async SDK, in process: typed fields equal the records."""
    devices = sdk.zero_trust.devices.registrations
    for record in (registry.fleet.registrations[0], _pick(registry, user_id=None)):
        expected = expected_registration(record, registry.fleet, include_policy=True)

        plain = await devices.get(record.id, account_id=registry.account_id)
        assert plain.policy is None
        with_policy = await devices.get(record.id, account_id=registry.account_id,
                                        include="policy")  # fmt: skip

        assert with_policy.model_dump(mode="json", exclude_none=True) == _without_nones(expected)
        assert plain.model_dump(mode="json", exclude_none=True) == _without_nones(
            {k: v for k, v in expected.items() if k != "policy"}
        )


def _without_nones(value: Any) -> Any:
    """The SDK's models drop nulls when dumped with exclude_none; do the same here."""
    if isinstance(value, dict):
        return {k: _without_nones(v) for k, v in value.items() if v is not None}
    return value
