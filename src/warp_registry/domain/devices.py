"""Physical devices and the legacy v1 device objects: validation, keyset pages, API shapes.

A physical device groups the registrations made on one machine (api-semantics.md §2.2).
Its list pages exactly like the registrations list: the same cursor format, `per_page`
limits and parameter spellings, from `domain/listing.py`. The deprecated v1 `/devices`
endpoints (§2.3) show one registration per item, under its registration id, with the
facts of its device, and page by page number. This module knows no SQL; the store
(`store/devices.py`) turns a `DeviceListQuery` into a statement.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import orjson

from warp_registry import ids
from warp_registry.clock import format_optional, format_rfc3339
from warp_registry.domain import listing
from warp_registry.domain.listing import Page, Position, Query
from warp_registry.domain.models import REGISTRATION_TYPES, PolicySummary, policy_summary_to_api
from warp_registry.domain.queries import check_text, parse_include
from warp_registry.errors import (
    BODY_FIELD_CHAIN,
    ID_LIST_CHAIN,
    PAGE_CHAIN,
    SEARCH_CHAIN,
    TAG_CHAIN,
    UUID_CHAIN,
    InvalidJsonBody,
    InvalidParameters,
)

# sort_by -> the PhysicalDevice attribute it orders by. Each is NOT NULL in the store:
# the nullable facts (client version, last seen time, last seen user) are ordered by
# stored sort keys in which "none" is '' or NEVER_SEEN, so they sort first ascending.
SORT_ATTRIBUTES: dict[str, str] = {
    "name": "name",
    "id": "id",
    "client_version": "sort_client_version",
    "last_seen_user.email": "sort_last_seen_email",
    "last_seen_at": "sort_last_seen_at",
    "active_registrations": "active_registrations",
    "created_at": "created_at",
}
# The integer sort keys and the range of their columns (store/schema.py): times are
# BIGINT, the registration count INTEGER (32-bit on PostgreSQL). Every other key is text.
INT_SORTS: dict[str, range] = {
    "last_seen_at": listing.BIGINT_RANGE,
    "active_registrations": listing.INTEGER_RANGE,
    "created_at": listing.BIGINT_RANGE,
}
DEFAULT_SORT = "created_at"
ACTIVE_MODES = ("only", "include", "exclude")
POLICY_INCLUDE = "last_seen_registration.policy"
INCLUDES = frozenset({POLICY_INCLUDE})

# The sort key of a device that was never seen: before every real time (our choice).
NEVER_SEEN = -1

MAX_TAG_FILTERS = 10  # `tag` values in one list request (SPEC-P maxItems)
MAX_TAGS = 10  # tags on one device (SPEC-P maxProperties)
MAX_TAG_VALUE = 1024  # characters in a tag value (SPEC-P)
MAX_TAG_KEY = 256  # characters in a tag key (our choice: the spec sets no limit)

LEGACY_DEFAULT_PER_PAGE = 20  # what the v1 list returned to SDK users (cases.md R01)
LEGACY_MAX_PAGE = 1_000_000
LEGACY_MAX_IDS = 200  # registration ids in one v1 revoke or unrevoke body (SPEC-D)

_PAGE = re.compile(r"[0-9]{1,7}")


# --- the physical device ---


@dataclass(frozen=True, slots=True)
class UserSummary:
    """The user a device was last seen with."""

    id: str
    email: str | None
    name: str


@dataclass(frozen=True, slots=True)
class LastSeenRegistration:
    """The registration a device was last seen through; its profile may be unknown."""

    id: str
    policy: PolicySummary | None


@dataclass(frozen=True, slots=True)
class PhysicalDevice:
    """One machine and what the registry knows of it.

    The `sort_*` fields are the stored sort keys the list pages by (see SORT_ATTRIBUTES).
    `last_seen_registration` is None when the device was never seen or when the
    registration it was last seen through has been deleted since.
    """

    id: str
    account_id: str
    name: str
    created_at: int
    updated_at: int
    last_seen_at: int | None
    active_registrations: int
    tags: dict[str, str]
    client_version: str | None
    device_type: str | None
    hardware_id: str | None
    mac_address: str | None
    manufacturer: str | None
    model: str | None
    os_version: str | None
    os_version_extra: str | None
    serial_number: str | None
    public_ip: str | None
    last_seen_user: UserSummary | None
    last_seen_registration: LastSeenRegistration | None
    sort_client_version: str
    sort_last_seen_at: int
    sort_last_seen_email: str


def device_to_api(device: PhysicalDevice, include_policy: bool) -> dict[str, Any]:
    """The physical device object of the admin API (api-semantics.md §2.2).

    Every documented key is present, null when unknown (our choice), except
    `last_seen_registration`, which appears only when `include` asks for its policy:
    then it is `{"policy": {...}}`, `{"policy": null}` for a registration without a
    profile, or null when the device was never seen or that registration was deleted.
    `deleted_at` is always null: a deleted device is gone.
    """
    user = device.last_seen_user
    body: dict[str, Any] = {
        "id": device.id,
        "name": device.name,
        "created_at": format_rfc3339(device.created_at),
        "updated_at": format_rfc3339(device.updated_at),
        "last_seen_at": format_optional(device.last_seen_at),
        "active_registrations": device.active_registrations,
        "tags": device.tags,
        "client_version": device.client_version,
        "deleted_at": None,
        "device_type": device.device_type,
        "hardware_id": device.hardware_id,
        "last_seen_user": (
            None if user is None else {"id": user.id, "email": user.email, "name": user.name}
        ),
        "mac_address": device.mac_address,
        "manufacturer": device.manufacturer,
        "model": device.model,
        "os_version": device.os_version,
        "os_version_extra": device.os_version_extra,
        "public_ip": device.public_ip,
        "serial_number": device.serial_number,
    }
    if include_policy:
        seen = device.last_seen_registration
        body["last_seen_registration"] = (
            None
            if seen is None
            else {"policy": None if seen.policy is None else policy_summary_to_api(seen.policy)}
        )
    return body


# --- listing physical devices ---


@dataclass(frozen=True, slots=True)
class DeviceFilters:
    """The row filters of a physical-devices list, AND-combined; None or empty: no filter."""

    ids: tuple[str, ...] = ()
    active_registrations: str = "only"
    has_registration_type: str | None = None
    last_seen_user_email: str | None = None  # ASCII letters lowered, as stored for it
    last_seen_policy_id: str | None = None
    search: str | None = None  # ASCII letters lowered
    seen_after: int | None = None  # microseconds, exclusive
    seen_before: int | None = None  # microseconds, exclusive
    tags: tuple[tuple[str, str], ...] = ()  # distinct (key, value) pairs, sorted

    def fingerprint(self) -> str:
        """A short hash of the filters, so a cursor cannot be replayed with other filters."""
        canonical = json.dumps(
            [
                "devices", self.ids, self.active_registrations, self.has_registration_type,
                self.last_seen_user_email, self.last_seen_policy_id, self.search,
                self.seen_after, self.seen_before, self.tags,
            ],
            separators=(",", ":"),
        )  # fmt: skip
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class DeviceListQuery:
    """A validated physical-devices list request."""

    filters: DeviceFilters = DeviceFilters()
    sort_by: str = DEFAULT_SORT
    descending: bool = False
    per_page: int = listing.DEFAULT_PER_PAGE
    after: Position | None = None
    include_policy: bool = False


def parse_device_list_query(query: Query) -> DeviceListQuery:
    """Validate every known list parameter; unknown parameters are ignored."""
    email = listing.last(query, "last_seen_user.email")
    if email:
        # Free text like `search`, refused with the same chain code when unstorable.
        check_text("last_seen_user.email", email, SEARCH_CHAIN)
    filters = DeviceFilters(
        ids=listing.uuid_set(query, "id"),
        active_registrations=listing.enum(query, "active_registrations", ACTIVE_MODES, "only"),
        has_registration_type=listing.optional_enum(
            query, "has_registration_type", REGISTRATION_TYPES
        ),
        last_seen_user_email=None if not email else listing.ascii_lower(email),
        last_seen_policy_id=_policy_filter(query),
        search=listing.search_text(query),
        seen_after=listing.timestamp(query, "seen_after"),
        seen_before=listing.timestamp(query, "seen_before"),
        tags=_tag_filters(query),
    )
    sort_by = listing.enum(query, "sort_by", tuple(SORT_ATTRIBUTES), DEFAULT_SORT)
    descending = listing.enum(query, "sort_order", listing.SORT_ORDERS, "asc") == "desc"

    raw_cursor = listing.last(query, "cursor")
    after = None
    if raw_cursor:  # an empty cursor asks for the first page
        after = listing.decode_cursor(raw_cursor, sort_by, descending, filters, INT_SORTS)

    return DeviceListQuery(
        filters=filters,
        sort_by=sort_by,
        descending=descending,
        per_page=listing.per_page(query),
        after=after,
        include_policy=parse_device_include(listing.last(query, "include")),
    )


def _policy_filter(query: Query) -> str | None:
    """`last_seen_registration.policy.id` as the spec names it, or as both official SDKs
    send it, `last_seen_registration.policy` (our choice: both; the spec name wins)."""
    spec_name = listing.optional_uuid(query, "last_seen_registration.policy.id")
    sdk_name = listing.optional_uuid(query, "last_seen_registration.policy")
    return spec_name if spec_name is not None else sdk_name


def parse_device_include(raw: str | None) -> bool:
    """Whether `include` asks for `last_seen_registration.policy` (the only value known)."""
    return POLICY_INCLUDE in parse_include(raw, INCLUDES)


def _tag_filters(query: Query) -> tuple[tuple[str, str], ...]:
    """`tag=key:value`, repeated: split at the first colon; at most 10 distinct pairs."""
    pairs: dict[tuple[str, str], None] = {}
    for raw in listing.values(query, "tag"):
        key, colon, value = raw.partition(":")
        if not colon or not key:
            raise InvalidParameters(TAG_CHAIN, f"tag: {raw[:80]!r} is not key:value")
        check_text("tag", raw, TAG_CHAIN)
        pairs.setdefault((key, value), None)
    if len(pairs) > MAX_TAG_FILTERS:
        raise InvalidParameters(
            TAG_CHAIN, f"tag: at most {MAX_TAG_FILTERS} distinct tags, got {len(pairs)}"
        )
    return tuple(sorted(pairs))


def sort_value(device: PhysicalDevice, sort_by: str) -> int | str:
    """The value a device is ordered by under `sort_by`."""
    value: int | str = getattr(device, SORT_ATTRIBUTES[sort_by])
    return value


def paginate_devices(query: DeviceListQuery, rows: list[PhysicalDevice]) -> Page[PhysicalDevice]:
    """Cut the store's rows (up to per_page + 1) into a page and the next page's cursor."""
    items = rows[: query.per_page]
    cursor = ""
    if len(rows) > query.per_page:
        last = items[-1]
        cursor = listing.make_cursor(
            query.sort_by, query.descending, query.filters.fingerprint(),
            sort_value(last, query.sort_by), last.id,
        )  # fmt: skip
    return Page(items, cursor, query.per_page)


# --- request bodies ---


def _json_body(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:  # also empty bodies and bytes that are not UTF-8
        raise InvalidJsonBody() from None


def _field_error(detail: str) -> InvalidJsonBody:
    return InvalidJsonBody(chain=[(BODY_FIELD_CHAIN, detail)])


def parse_tags_patch(body: bytes) -> dict[str, str] | None:
    """The tags a `PATCH /physical-devices/{id}` body sets; None when it names no tags.

    The body is `{"tags": {...}}` and nothing else: at most 10 tags, string values of at
    most 1024 characters. The tags replace all the device has; `{}` removes them all.
    """
    data = _json_body(body)
    if not isinstance(data, dict):
        raise _field_error('body: must be a JSON object such as {"tags": {"key": "value"}}')
    unknown = sorted(set(data) - {"tags"})
    if unknown:
        raise _field_error(f"{unknown[0][:80]}: unknown field; the body takes only tags")
    if "tags" not in data:
        return None

    tags = data["tags"]
    if not isinstance(tags, dict):
        raise _field_error("tags: must be an object of string values")
    if len(tags) > MAX_TAGS:
        raise _field_error(f"tags: at most {MAX_TAGS} tags, got {len(tags)}")
    for key, value in tags.items():
        _check_tag(key, value)
    return dict(tags)


def _check_tag(key: str, value: object) -> None:
    shown = key[:80]
    if not key or len(key) > MAX_TAG_KEY:
        raise _field_error(f"tags: a key must have 1 to {MAX_TAG_KEY} characters: {shown!r}")
    if ":" in key or "\x00" in key:
        # The `tag` filter splits key:value at the first colon; PostgreSQL stores no NUL.
        raise _field_error(f"tags: a key must not contain ':' or NUL: {shown!r}")
    if not isinstance(value, str):
        raise _field_error(f"tags.{shown}: must be a string")
    if len(value) > MAX_TAG_VALUE:
        raise _field_error(f"tags.{shown}: at most {MAX_TAG_VALUE} characters, got {len(value)}")
    if "\x00" in value:
        raise _field_error(f"tags.{shown}: must not contain NUL characters")


def parse_legacy_ids(body: bytes) -> tuple[str, ...]:
    """The body of a v1 revoke or unrevoke: a JSON array of 1 to 200 registration ids.

    The limit counts the array's entries, as the spec's `maxLength: 200` does; equal ids
    (compared without case) then count once.
    """
    data = _json_body(body)
    if not isinstance(data, list):
        raise _field_error('body: must be a JSON array of registration ids, e.g. ["<uuid>"]')
    if not data:
        raise InvalidJsonBody(chain=[(ID_LIST_CHAIN, "body: at least one registration id")])
    if len(data) > LEGACY_MAX_IDS:
        raise InvalidJsonBody(
            chain=[(ID_LIST_CHAIN, f"body: at most {LEGACY_MAX_IDS} ids, got {len(data)}")]
        )

    distinct: dict[str, None] = {}
    for item in data:
        if not isinstance(item, str) or not ids.is_uuid(item):
            shown = repr(item)[:60]
            raise InvalidJsonBody(chain=[(UUID_CHAIN, f"body: {shown} is not a UUID")])
        distinct.setdefault(item.lower(), None)
    return tuple(distinct)


# --- the legacy v1 devices ---


@dataclass(frozen=True, slots=True)
class LegacyDevice:
    """One registration with the facts of its device, as the v1 endpoints show it."""

    id: str
    device_id: str
    account_id: str
    account_name: str
    created_at: int
    updated_at: int
    last_seen_at: int
    revoked_at: int | None
    key: str
    key_type: str | None
    tunnel_type: str | None
    user_id: str | None
    user_email: str
    user_name: str
    name: str
    device_type: str | None
    client_version: str | None
    mac_address: str | None
    manufacturer: str | None
    model: str | None
    os_version: str | None
    os_version_extra: str | None
    serial_number: str | None
    public_ip: str | None


def parse_legacy_page(query: Query) -> tuple[int, int]:
    """`page` (from 1, default 1) and `per_page` (1 to 1000, default 20) of the v1 list."""
    raw = listing.last(query, "page")
    page = 1
    if raw is not None:
        if _PAGE.fullmatch(raw) is None or not 1 <= int(raw) <= LEGACY_MAX_PAGE:
            raise InvalidParameters(
                PAGE_CHAIN, f"page variable must be a number between 1 and {LEGACY_MAX_PAGE}"
            )
        page = int(raw)
    return page, listing.per_page(query, LEGACY_DEFAULT_PER_PAGE)


def legacy_result_info(page: int, per_page: int, count: int, total: int) -> dict[str, int]:
    """The page-based `result_info` (api-semantics.md §3.3)."""
    return {
        "page": page,
        "per_page": per_page,
        "count": count,
        "total_count": total,
        "total_pages": math.ceil(total / per_page),
    }


def _legacy_user(device: LegacyDevice) -> dict[str, Any]:
    # A service-token registration has no user: nulls, as the registrations API shows.
    if device.user_id is None:
        return {"id": None, "email": None, "name": None}
    return {"id": device.user_id, "email": device.user_email, "name": device.user_name}


def legacy_device_to_api(device: LegacyDevice) -> dict[str, Any]:
    """A v1 list item (`teams-devices_devices`): every documented key, null when unknown."""
    return {
        "id": device.id,
        "created": format_rfc3339(device.created_at),
        "updated": format_rfc3339(device.updated_at),
        "last_seen": format_rfc3339(device.last_seen_at),
        "revoked_at": format_optional(device.revoked_at),
        "deleted": False,
        "device_type": device.device_type,
        "ip": device.public_ip,
        "key": device.key,
        "mac_address": device.mac_address,
        "manufacturer": device.manufacturer,
        "model": device.model,
        "name": device.name,
        "os_distro_name": None,
        "os_distro_revision": None,
        "os_version": device.os_version,
        "os_version_extra": device.os_version_extra,
        "serial_number": device.serial_number,
        "user": _legacy_user(device),
        "version": device.client_version,
    }


def legacy_detail_to_api(device: LegacyDevice) -> dict[str, Any]:
    """A v1 device detail (`teams-devices_device`): the list item's keys less
    `manufacturer`, `os_distro_*`, `os_version_extra` and `revoked_at`, plus `account`,
    `gateway_device_id` (the physical device's id, our choice), `key_type`, `tunnel_type`.
    """
    return {
        "id": device.id,
        "account": {"id": device.account_id, "account_type": None, "name": device.account_name},
        "created": format_rfc3339(device.created_at),
        "deleted": False,
        "device_type": device.device_type,
        "gateway_device_id": device.device_id,
        "ip": device.public_ip,
        "key": device.key,
        "key_type": device.key_type,
        "last_seen": format_rfc3339(device.last_seen_at),
        "mac_address": device.mac_address,
        "model": device.model,
        "name": device.name,
        "os_version": device.os_version,
        "serial_number": device.serial_number,
        "tunnel_type": device.tunnel_type,
        "updated": format_rfc3339(device.updated_at),
        "user": _legacy_user(device),
        "version": device.client_version,
    }
