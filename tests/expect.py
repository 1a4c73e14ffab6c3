"""What the API should answer, computed from the seed's records without asking the server.

The expected registration object is built here from the demo fleet's rows (devices, users
and profiles looked up by id), with its own RFC3339 formatting, so a test compares the
server against an independent rendering of api-semantics.md §2.1, not against itself.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from warp_registry.domain.records import FleetRecords, RegistrationRecord

ENVELOPE_KEYS = {"success", "errors", "messages", "result"}
LIST_ENVELOPE_KEYS = ENVELOPE_KEYS | {"result_info"}

# RFC3339 in UTC with a `Z`, as Cloudflare writes it (fraction optional).
RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z", re.ASCII)

# What the dashboard and the API call an account's default profile; the stored default
# profile has no name of its own.
DEFAULT_PROFILE_NAME = "Default"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def rfc3339(us: int) -> str:
    """Microseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.ffffffZ`."""
    return (_EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def expected_registration(
    record: RegistrationRecord, fleet: FleetRecords, *, include_policy: bool
) -> dict[str, Any]:
    """The registration object the API should return for `record`."""
    device = next(d for d in fleet.devices if d.id == record.device_id)
    device_body: dict[str, Any] = {"id": device.id, "name": device.name}
    if device.client_version is not None:
        # Optional but not nullable (TS `client_version?: string`): absent, never null.
        device_body["client_version"] = device.client_version

    # A service-token registration has no user: nulls, not an absent object (our choice).
    user_body: dict[str, Any] = {"id": None, "email": None, "name": None}
    if record.user_id is not None:
        user = next(u for u in fleet.users if u.id == record.user_id)
        user_body = {"id": user.id, "email": user.email, "name": user.name}

    body: dict[str, Any] = {
        "id": record.id,
        "created_at": rfc3339(record.created_at),
        "updated_at": rfc3339(record.updated_at),
        "last_seen_at": rfc3339(record.last_seen_at),
        "key": record.key,
        "key_type": record.key_type,
        "tunnel_type": record.tunnel_type,
        "device": device_body,
        "user": user_body,
        "revoked_at": None if record.revoked_at is None else rfc3339(record.revoked_at),
        "deleted_at": None,
        "registration_type": record.registration_type,
        "virtual_ipv4": record.virtual_ipv4,
        "virtual_ipv6": record.virtual_ipv6,
    }
    if include_policy:
        profile = next(p for p in fleet.profiles if p.id == record.policy_id)
        body["policy"] = {
            "id": profile.id,
            "name": profile.name if profile.name is not None else DEFAULT_PROFILE_NAME,
            "default": profile.is_default,
            "deleted": False,
            "updated_at": rfc3339(record.policy_assigned_at),
        }
    return body


def assert_success_envelope(body: Any) -> None:
    """The v4 success shape: four keys (five for lists), `success` true, empty errors."""
    assert isinstance(body, dict), body
    keys = set(body)
    assert keys in (ENVELOPE_KEYS, LIST_ENVELOPE_KEYS), keys
    assert body["success"] is True
    assert body["errors"] == []
    assert isinstance(body["messages"], list)
    assert body["result"] is None or isinstance(body["result"], dict | list)
    if "result_info" in body:
        assert isinstance(body["result_info"], dict)


def assert_error_envelope(body: Any, code: int | None = None) -> dict[str, Any]:
    """The v4 failure shape; returns the first error. `code`, when given, must match it."""
    assert isinstance(body, dict), body
    assert set(body) == ENVELOPE_KEYS, set(body)
    assert body["success"] is False
    assert body["result"] is None
    assert isinstance(body["messages"], list)
    errors = body["errors"]
    assert isinstance(errors, list) and len(errors) >= 1
    for error in errors:
        _assert_message(error)
        for link in error.get("error_chain", []):
            _assert_message(link)
    if code is not None:
        assert errors[0]["code"] == code, errors
    first: dict[str, Any] = errors[0]
    return first


def _assert_message(entry: Any) -> None:
    assert isinstance(entry, dict), entry
    assert set(entry) <= {"code", "message", "error_chain"}, entry
    assert isinstance(entry["code"], int) and entry["code"] >= 1000
    assert isinstance(entry["message"], str) and entry["message"]
