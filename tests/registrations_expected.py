"""What a registrations list should return, computed from the seeded records alone.

The tests never read expected answers back from the server: they filter and sort the
records the demo fleet was built from (`Registry.fleet`), with rules written here
independently of the server's code.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from warp_registry.clock import format_rfc3339
from warp_registry.domain.records import FleetRecords, RegistrationRecord

SORT_KEYS: dict[str, Callable[[RegistrationRecord], int | str]] = {
    "id": lambda r: r.id,
    "user.name": lambda r: r.user_name,
    "user.email": lambda r: r.user_email,
    "last_seen_at": lambda r: r.last_seen_at,
    "created_at": lambda r: r.created_at,
}
SORTS = tuple(SORT_KEYS)
ORDERS = ("asc", "desc")


@dataclass(frozen=True)
class Expect:
    """A list request in test terms; `None` or empty means the filter is not set."""

    status: str = "active"
    ids: Collection[str] = ()
    device_id: str | None = None
    user_ids: Collection[str] = ()
    policy_id: str | None = None
    registration_type: str | None = None
    search: str | None = None
    seen_after: int | None = None
    seen_before: int | None = None
    sort_by: str = "created_at"
    sort_order: str = "asc"


def expected_ids(fleet: FleetRecords, expect: Expect) -> list[str]:
    """The ids the list should return, in order."""
    device_names = {d.id: d.name for d in fleet.devices}
    rows = [
        r for r in fleet.registrations
        if _matches(r, expect, device_names[r.device_id])
    ]  # fmt: skip
    key = SORT_KEYS[expect.sort_by]
    rows.sort(key=lambda r: (key(r), r.id), reverse=expect.sort_order == "desc")
    return [r.id for r in rows]


def _matches(r: RegistrationRecord, e: Expect, device_name: str) -> bool:
    if e.status == "active" and r.revoked_at is not None:
        return False
    if e.status == "revoked" and r.revoked_at is None:
        return False
    if e.ids and r.id not in e.ids:
        return False
    if e.device_id is not None and r.device_id != e.device_id:
        return False
    if e.user_ids and r.user_id not in e.user_ids:
        return False
    if e.policy_id is not None and r.policy_id != e.policy_id:
        return False
    if e.registration_type is not None and r.registration_type != e.registration_type:
        return False
    if e.seen_after is not None and not r.last_seen_at > e.seen_after:
        return False
    if e.seen_before is not None and not r.last_seen_at < e.seen_before:
        return False
    if e.search is not None:
        needle = e.search.lower()
        haystack = (r.id, r.device_id, device_name, r.user_email, r.user_name)
        if not any(needle in field.lower() for field in haystack):
            return False
    return True


def list_params(expect: Expect) -> dict[str, str | list[str]]:
    """The same request as query parameters (repeated keys for the id lists)."""
    params: dict[str, str | list[str]] = {
        "status": expect.status,
        "sort_by": expect.sort_by,
        "sort_order": expect.sort_order,
    }
    optional: dict[str, str | list[str] | None] = {
        "id": list(expect.ids) or None,
        "device.id": expect.device_id,
        "user.id": list(expect.user_ids) or None,
        "policy.id": expect.policy_id,
        "registration_type": expect.registration_type,
        "search": expect.search,
        "seen_after": None if expect.seen_after is None else format_rfc3339(expect.seen_after),
        "seen_before": None if expect.seen_before is None else format_rfc3339(expect.seen_before),
    }
    params.update({k: v for k, v in optional.items() if v is not None})
    return params
