"""What the physical-devices and legacy v1 lists should return, from the seeded records alone.

Like registrations_expected.py, these rules are written here from docs/devices.md, not
taken from the server's code: a device's active registrations are counted from the
registration records, its last-seen user and profile are looked up by id, and the sort
and filter rules are restated. Tests that change the registry change the records too
(`Registry.fleet`), so the expected answers follow.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from tests.expect import DEFAULT_PROFILE_NAME, rfc3339
from warp_registry.clock import format_rfc3339
from warp_registry.domain.records import DeviceRecord, FleetRecords, RegistrationRecord

# A device never seen sorts before every real time, and an unknown client version or
# last-seen user before every real one (docs/devices.md, "Sorting").
NEVER_SEEN = -1


@dataclass(frozen=True)
class DeviceView:
    """One device with everything the list filters and sorts on, computed from records."""

    record: DeviceRecord
    active: int
    active_types: frozenset[str]
    user: dict[str, Any] | None
    last_seen_registration: RegistrationRecord | None
    tags: dict[str, str]


def views(fleet: FleetRecords) -> list[DeviceView]:
    users = {u.id: u for u in fleet.users}
    registrations = {r.id: r for r in fleet.registrations}
    result = []
    for device in fleet.devices:
        active = [
            r for r in fleet.registrations if r.device_id == device.id and r.revoked_at is None
        ]
        user = users.get(device.last_seen_user_id or "")
        result.append(
            DeviceView(
                record=device,
                active=len(active),
                active_types=frozenset(r.registration_type for r in active),
                user=None if user is None else _user(user.id, user.email, user.name),
                last_seen_registration=registrations.get(device.last_seen_registration_id or ""),
                tags=json.loads(device.tags_json),
            )
        )
    return result


def _user(user_id: str, email: str | None, name: str) -> dict[str, Any]:
    return {"id": user_id, "email": email, "name": name}


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    """Only A-Z folded: searches and the email filter ignore the case of ASCII letters."""
    return text.translate(_ASCII_LOWER)


def _email_key(view: DeviceView) -> str:
    return ascii_lower((view.user or {}).get("email") or "")


SORT_KEYS: dict[str, Callable[[DeviceView], int | str]] = {
    "name": lambda v: v.record.name,
    "id": lambda v: v.record.id,
    "client_version": lambda v: v.record.client_version or "",
    "last_seen_user.email": _email_key,
    "last_seen_at": lambda v: NEVER_SEEN if v.record.last_seen_at is None
    else v.record.last_seen_at,
    "active_registrations": lambda v: v.active,
    "created_at": lambda v: v.record.created_at,
}  # fmt: skip
SORTS = tuple(SORT_KEYS)
ORDERS = ("asc", "desc")


@dataclass(frozen=True)
class DeviceExpect:
    """A physical-devices list request in test terms; None or empty: the filter is unset."""

    ids: Collection[str] = ()
    active_registrations: str = "only"
    has_registration_type: str | None = None
    last_seen_user_email: str | None = None
    policy_id: str | None = None
    search: str | None = None
    seen_after: int | None = None
    seen_before: int | None = None
    tags: Collection[str] = ()  # "key:value"
    sort_by: str = "created_at"
    sort_order: str = "asc"


def expected_device_ids(fleet: FleetRecords, expect: DeviceExpect) -> list[str]:
    """The device ids the list should return, in order."""
    rows = [view for view in views(fleet) if _matches(view, expect)]
    key = SORT_KEYS[expect.sort_by]
    rows.sort(key=lambda v: (key(v), v.record.id), reverse=expect.sort_order == "desc")
    return [view.record.id for view in rows]


def _matches(v: DeviceView, e: DeviceExpect) -> bool:
    device = v.record
    checks = [
        not e.ids or device.id in e.ids,
        e.active_registrations != "only" or v.active > 0,
        e.active_registrations != "exclude" or v.active == 0,
        e.has_registration_type is None or e.has_registration_type in v.active_types,
        e.last_seen_user_email is None
        or _email_key(v) == ascii_lower(e.last_seen_user_email),
        e.policy_id is None or (v.last_seen_registration is not None
                                and v.last_seen_registration.policy_id == e.policy_id),
        e.seen_after is None or (device.last_seen_at is not None
                                 and device.last_seen_at > e.seen_after),
        e.seen_before is None or (device.last_seen_at is not None
                                  and device.last_seen_at < e.seen_before),
        all(v.tags.get(k) == value for k, _, value in (t.partition(":") for t in e.tags)),
    ]  # fmt: skip
    if not all(checks):
        return False
    if e.search is not None:
        needle = ascii_lower(e.search)
        haystack = (device.id, device.name, device.serial_number, device.mac_address,
                    device.model, device.manufacturer, device.hardware_id,
                    _email_key(v))  # fmt: skip
        return any(field is not None and needle in ascii_lower(field) for field in haystack)
    return True


def list_params(expect: DeviceExpect) -> dict[str, str | list[str]]:
    """The same request as query parameters (repeated keys for `id` and `tag`)."""
    params: dict[str, str | list[str]] = {
        "active_registrations": expect.active_registrations,
        "sort_by": expect.sort_by,
        "sort_order": expect.sort_order,
    }
    optional: dict[str, str | list[str] | None] = {
        "id": list(expect.ids) or None,
        "has_registration_type": expect.has_registration_type,
        "last_seen_user.email": expect.last_seen_user_email,
        "last_seen_registration.policy.id": expect.policy_id,
        "search": expect.search,
        "seen_after": None if expect.seen_after is None else format_rfc3339(expect.seen_after),
        "seen_before": None if expect.seen_before is None else format_rfc3339(expect.seen_before),
        "tag": list(expect.tags) or None,
    }
    params.update({k: v for k, v in optional.items() if v is not None})
    return params


def sdk_kwargs(expect: DeviceExpect) -> dict[str, Any]:
    """The official SDK's spelling of the same request: nested dicts for dotted names."""
    kwargs: dict[str, Any] = {}
    for name, value in list_params(expect).items():
        if name == "last_seen_registration.policy.id":
            kwargs["last_seen_registration"] = {"policy": value}
        elif name == "last_seen_user.email":
            kwargs["last_seen_user"] = {"email": value}
        else:
            kwargs[name] = value
    return kwargs


def expected_device(fleet: FleetRecords, device_id: str, *, include_policy: bool) -> dict[str, Any]:
    """The physical device object the API should return (docs/devices.md)."""
    view = next(v for v in views(fleet) if v.record.id == device_id)
    device = view.record
    body: dict[str, Any] = {
        "id": device.id,
        "name": device.name,
        "created_at": rfc3339(device.created_at),
        "updated_at": rfc3339(device.updated_at),
        "last_seen_at": None if device.last_seen_at is None else rfc3339(device.last_seen_at),
        "active_registrations": view.active,
        "tags": view.tags,
        "client_version": device.client_version,
        "deleted_at": None,
        "device_type": device.device_type,
        "hardware_id": device.hardware_id,
        "last_seen_user": view.user,
        "mac_address": device.mac_address,
        "manufacturer": device.manufacturer,
        "model": device.model,
        "os_version": device.os_version,
        "os_version_extra": device.os_version_extra,
        "public_ip": device.public_ip,
        "serial_number": device.serial_number,
    }
    if include_policy:
        body["last_seen_registration"] = _seen_registration(fleet, view.last_seen_registration)
    return body


def _seen_registration(
    fleet: FleetRecords, reg: RegistrationRecord | None
) -> dict[str, Any] | None:
    if reg is None:
        return None
    profile = next((p for p in fleet.profiles if p.id == reg.policy_id), None)
    if profile is None:  # the profile was deleted: the registration remembers its name
        policy = {"id": reg.policy_id, "name": reg.policy_name, "default": False,
                  "deleted": True}  # fmt: skip
    else:
        name = profile.name if profile.name is not None else DEFAULT_PROFILE_NAME
        policy = {"id": profile.id, "name": name, "default": profile.is_default,
                  "deleted": False}  # fmt: skip
    policy["updated_at"] = rfc3339(reg.policy_assigned_at)
    return {"policy": policy}


# --- the legacy v1 list ---


def legacy_order(fleet: FleetRecords) -> list[str]:
    """Registration ids as the v1 list pages them: by creation, then id; revoked included."""
    rows = sorted(fleet.registrations, key=lambda r: (r.created_at, r.id))
    return [r.id for r in rows]


def expected_legacy_item(fleet: FleetRecords, registration_id: str) -> dict[str, Any]:
    """A v1 list item (api-semantics.md §2.3) for one registration."""
    reg = next(r for r in fleet.registrations if r.id == registration_id)
    device = next(d for d in fleet.devices if d.id == reg.device_id)
    user: dict[str, Any] = {"id": None, "email": None, "name": None}
    if reg.user_id is not None:
        found = next(u for u in fleet.users if u.id == reg.user_id)
        user = {"id": found.id, "email": found.email, "name": found.name}
    return {
        "id": reg.id,
        "created": rfc3339(reg.created_at),
        "updated": rfc3339(reg.updated_at),
        "last_seen": rfc3339(reg.last_seen_at),
        "revoked_at": None if reg.revoked_at is None else rfc3339(reg.revoked_at),
        "deleted": False,
        "device_type": device.device_type,
        "ip": device.public_ip,
        "key": reg.key,
        "mac_address": device.mac_address,
        "manufacturer": device.manufacturer,
        "model": device.model,
        "name": device.name,
        "os_distro_name": None,
        "os_distro_revision": None,
        "os_version": device.os_version,
        "os_version_extra": device.os_version_extra,
        "serial_number": device.serial_number,
        "user": user,
        "version": device.client_version,
    }
