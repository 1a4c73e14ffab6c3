"""Listing registrations: filters, sort keys, keyset cursors, and query-parameter validation.

A list request becomes a `ListQuery`: every parameter checked and typed, or refused with
`InvalidParameters` naming the parameter and what it accepts. Pages are keyset pages: the
cursor holds the sort value and id of the last row shown, so the next page starts right
after it whatever the depth, and rows added or removed meanwhile shift nothing. The store
turns a `ListQuery` into SQL; this module knows no SQL.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from warp_registry import ids
from warp_registry.clock import parse_rfc3339
from warp_registry.domain.models import REGISTRATION_TYPES, Registration
from warp_registry.domain.queries import check_text, is_storable_text, parse_include
from warp_registry.errors import (
    CURSOR_CHAIN,
    ENUM_CHAIN,
    ID_LIST_CHAIN,
    PER_PAGE_CHAIN,
    SEARCH_CHAIN,
    TIMESTAMP_CHAIN,
    UUID_CHAIN,
    InvalidParameters,
)

Query = Mapping[str, Sequence[str]]
T = TypeVar("T")


class Fingerprinted(Protocol):
    """Filters that a cursor is bound to (registrations' `Filters`, devices' own)."""

    def fingerprint(self) -> str: ...


# sort_by value -> the Registration attribute it orders by. Every key is NOT NULL in the
# store (a missing user's email and name are ''), so no NULL ordering rules are needed.
SORT_ATTRIBUTES: dict[str, str] = {
    "id": "id",
    "user.name": "user_name",
    "user.email": "user_email",
    "last_seen_at": "last_seen_at",
    "created_at": "created_at",
}
TIMESTAMP_SORTS = frozenset({"last_seen_at", "created_at"})
SORT_ORDERS = ("asc", "desc")
STATUSES = ("active", "revoked", "all")
INCLUDES = frozenset({"policy"})

DEFAULT_SORT = "created_at"
DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 1000
MAX_FILTER_IDS = 200  # distinct values of `id` or of `user.id` in one list request
MAX_BATCH_IDS = 200  # distinct ids in one bulk delete, revoke or unrevoke
MAX_SEARCH_LENGTH = 200
MAX_CURSOR_LENGTH = 2048

_CURSOR_VERSION = 1
_PER_PAGE = re.compile(r"[0-9]{1,7}")
# The integer ranges of the store's columns: a cursor's sort value is bound as a parameter
# against one of them, and PostgreSQL refuses a parameter outside the column's type.
BIGINT_RANGE = range(-(2**63), 2**63)
INTEGER_RANGE = range(-(2**31), 2**31)
TIMESTAMP_RANGES: Mapping[str, range] = {name: BIGINT_RANGE for name in TIMESTAMP_SORTS}
# Upper-case ASCII letters to lower case, nothing else: both engines fold only ASCII in
# `lower()` here (SQLite always; PostgreSQL because the columns use the "C" collation).
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True, slots=True)
class Filters:
    """The row filters of a list request, AND-combined; None or empty means "no filter"."""

    ids: tuple[str, ...] = ()
    device_id: str | None = None
    user_ids: tuple[str, ...] = ()
    policy_id: str | None = None
    registration_type: str | None = None
    status: str = "active"
    search: str | None = None  # already folded to lower case (ASCII letters only)
    seen_after: int | None = None  # microseconds, exclusive
    seen_before: int | None = None  # microseconds, exclusive

    def fingerprint(self) -> str:
        """A short hash of the filters, so a cursor cannot be replayed with other filters."""
        canonical = json.dumps(
            [
                self.ids, self.device_id, self.user_ids, self.policy_id,
                self.registration_type, self.status, self.search, self.seen_after,
                self.seen_before,
            ],
            separators=(",", ":"),
        )  # fmt: skip
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ends: the sort value and id of its last row."""

    value: int | str
    id: str


@dataclass(frozen=True, slots=True)
class ListQuery:
    """A validated list request."""

    filters: Filters = Filters()
    sort_by: str = DEFAULT_SORT
    descending: bool = False
    per_page: int = DEFAULT_PER_PAGE
    after: Position | None = None
    include_policy: bool = False


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list: its rows and the cursor of the next page ("" on the last)."""

    items: list[T]
    cursor: str
    per_page: int

    def result_info(self) -> dict[str, Any]:
        """The cursor `result_info`. `total_count` is null: counting would scan the fleet."""
        return {
            "count": len(self.items),
            "cursor": self.cursor,
            "per_page": self.per_page,
            "total_count": None,
        }


# --- parsing a list request ---


def parse_list_query(query: Query) -> ListQuery:
    """Validate every known list parameter; unknown parameters are ignored."""
    filters = Filters(
        ids=_uuid_set(query, "id"),
        device_id=_optional_uuid(query, "device.id"),
        user_ids=_uuid_set(query, "user.id"),
        policy_id=_optional_uuid(query, "policy.id"),
        registration_type=_optional_enum(query, "registration_type", REGISTRATION_TYPES),
        status=_enum(query, "status", STATUSES, "active"),
        search=_search(query),
        seen_after=_timestamp(query, "seen_after"),
        seen_before=_timestamp(query, "seen_before"),
    )
    sort_by = _enum(query, "sort_by", tuple(SORT_ATTRIBUTES), DEFAULT_SORT)
    descending = _enum(query, "sort_order", SORT_ORDERS, "asc") == "desc"
    include = parse_include(_last(query, "include"), INCLUDES)

    raw_cursor = _last(query, "cursor")
    after = None
    if raw_cursor:  # an empty cursor asks for the first page
        after = decode_cursor(raw_cursor, sort_by, descending, filters)

    return ListQuery(
        filters=filters,
        sort_by=sort_by,
        descending=descending,
        per_page=_per_page(query),
        after=after,
        include_policy="policy" in include,
    )


def parse_batch_ids(query: Query) -> tuple[str, ...]:
    """The `id` list of a bulk delete, revoke or unrevoke: 1 to 200 distinct UUIDs.

    Duplicates collapse (first occurrence kept) before the limit is counted.
    """
    distinct = _distinct_uuids(query, "id")
    if not distinct:
        raise InvalidParameters(
            ID_LIST_CHAIN, "id: at least one registration id is required (id=<uuid>&id=<uuid>)"
        )
    if len(distinct) > MAX_BATCH_IDS:
        raise InvalidParameters(
            ID_LIST_CHAIN,
            f"id: at most {MAX_BATCH_IDS} distinct registration ids per call, got {len(distinct)}",
        )
    return tuple(distinct)


def _values(query: Query, name: str) -> list[str]:
    """Every value of a repeatable parameter; `name[]` is accepted as an alias of `name`."""
    return [*query.get(name, ()), *query.get(name + "[]", ())]


def _last(query: Query, name: str) -> str | None:
    """A scalar parameter: its last value when repeated, None when absent."""
    values = query.get(name)
    return values[-1] if values else None


def _enum(query: Query, name: str, allowed: Sequence[str], default: str) -> str:
    value = _optional_enum(query, name, allowed)
    return default if value is None else value


def _optional_enum(query: Query, name: str, allowed: Sequence[str]) -> str | None:
    raw = _last(query, name)
    if raw is None:
        return None
    if raw not in allowed:
        raise InvalidParameters(
            ENUM_CHAIN, f"{name}: unsupported value {raw!r}; allowed: {', '.join(allowed)}"
        )
    return raw


def _check_uuid(name: str, raw: str) -> str:
    if not ids.is_uuid(raw):
        raise InvalidParameters(
            UUID_CHAIN, f"{name}: {raw!r} is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"
        )
    return raw.lower()


def _optional_uuid(query: Query, name: str) -> str | None:
    raw = _last(query, name)
    return None if raw is None else _check_uuid(name, raw)


def _distinct_uuids(query: Query, name: str) -> list[str]:
    seen: dict[str, None] = {}
    for raw in _values(query, name):
        seen.setdefault(_check_uuid(name, raw), None)
    return list(seen)


def _uuid_set(query: Query, name: str) -> tuple[str, ...]:
    distinct = _distinct_uuids(query, name)
    if len(distinct) > MAX_FILTER_IDS:
        raise InvalidParameters(
            ID_LIST_CHAIN, f"{name}: at most {MAX_FILTER_IDS} distinct values, got {len(distinct)}"
        )
    return tuple(sorted(distinct))


def _timestamp(query: Query, name: str) -> int | None:
    raw = _last(query, name)
    if raw is None:
        return None
    # An unencoded '+' of a UTC offset arrives as a space (`+01:00` typed into curl).
    text = raw[:11] + raw[11:].replace(" ", "+")
    try:
        return parse_rfc3339(text)
    except ValueError:
        raise InvalidParameters(
            TIMESTAMP_CHAIN,
            f"{name}: {raw!r} is not an RFC3339 timestamp "
            "(e.g. 2025-01-31T12:00:00Z or 2025-01-31T13:00:00.5+01:00)",
        ) from None


def _search(query: Query) -> str | None:
    raw = _last(query, "search")
    if not raw:
        return None
    if len(raw) > MAX_SEARCH_LENGTH:
        raise InvalidParameters(
            SEARCH_CHAIN, f"search: at most {MAX_SEARCH_LENGTH} characters, got {len(raw)}"
        )
    return check_text("search", raw, SEARCH_CHAIN).translate(_ASCII_LOWER)


def _per_page(query: Query, default: int = DEFAULT_PER_PAGE) -> int:
    raw = _last(query, "per_page")
    if raw is None:
        return default
    if _PER_PAGE.fullmatch(raw) is None or not 1 <= int(raw) <= MAX_PER_PAGE:
        # The wording Cloudflare's v4 API uses for this error.
        raise InvalidParameters(
            PER_PAGE_CHAIN, f"per_page variable must be a number between 1 and {MAX_PER_PAGE}"
        )
    return int(raw)


# --- cursors ---


def sort_value(registration: Registration, sort_by: str) -> int | str:
    """The value a registration is ordered by under `sort_by`."""
    value: int | str = getattr(registration, SORT_ATTRIBUTES[sort_by])
    return value


def encode_cursor(query: ListQuery, last: Registration) -> str:
    """An opaque cursor for the page after `last`: url-safe base64 of a small JSON list.

    It holds the sort, the filters' fingerprint and the keyset position, so a page costs
    the same at any depth and a cursor replayed with other parameters is refused.
    """
    return make_cursor(
        query.sort_by, query.descending, query.filters.fingerprint(),
        sort_value(last, query.sort_by), last.id,
    )  # fmt: skip


def make_cursor(
    sort_by: str, descending: bool, fingerprint: str, value: int | str, last_id: str
) -> str:
    """The cursor of any keyset list: url-safe base64 of a small JSON list, no padding."""
    order = "desc" if descending else "asc"
    payload = [_CURSOR_VERSION, sort_by, order, fingerprint, value, last_id]
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(
    raw: str,
    sort_by: str,
    descending: bool,
    filters: Fingerprinted,
    int_ranges: Mapping[str, range] = TIMESTAMP_RANGES,
) -> Position:
    """The position a cursor points after; refuses cursors made for another request.

    `int_ranges` maps the sort keys whose values are integers to the range their column
    holds; every other sort key's value is text. A cursor is client input like any other
    parameter: every field is type-checked, so no forged cursor reaches the store.
    """
    payload = _cursor_payload(raw)
    _, cursor_sort, cursor_order, fingerprint, value, last_id = payload
    # Checked before any is echoed in a message: a lone surrogate cannot be written out.
    for field in (cursor_sort, cursor_order, fingerprint):
        if type(field) is not str or not is_storable_text(field):
            raise _malformed_cursor()

    if cursor_sort != sort_by or cursor_order != ("desc" if descending else "asc"):
        raise InvalidParameters(
            CURSOR_CHAIN,
            f"cursor: made for sort_by={cursor_sort}&sort_order={cursor_order}; "
            "send it with the sort of the request that returned it",
        )
    if fingerprint != filters.fingerprint():
        raise InvalidParameters(
            CURSOR_CHAIN,
            "cursor: made for other filters; send it with the same filters as the request "
            "that returned it",
        )

    if not isinstance(last_id, str) or not ids.is_uuid(last_id):
        raise _malformed_cursor()
    if not _value_fits(value, int_ranges.get(sort_by)):
        raise _malformed_cursor()
    return Position(value, last_id.lower())


def _cursor_payload(raw: str) -> list[Any]:
    if len(raw) > MAX_CURSOR_LENGTH:
        raise _malformed_cursor()
    try:
        decoded = base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_", validate=True)
        payload = json.loads(decoded)
    except (ValueError, binascii.Error, RecursionError):  # bad UTF-8, bad or too deep JSON
        raise _malformed_cursor() from None

    if not isinstance(payload, list) or len(payload) != 6 or not _is_version(payload[0]):
        raise _malformed_cursor()
    return payload


def _is_version(field: object) -> bool:
    # Exactly the int: `true` and `1.0` compare equal to 1 in Python but are not a version.
    return type(field) is int and field == _CURSOR_VERSION


def _value_fits(value: object, integers: range | None) -> bool:
    """Whether a cursor's sort value can be bound against its column on both engines."""
    if integers is not None:
        # bool is an int subclass; an int outside the column's range overflows the
        # parameter on PostgreSQL (SQLite would merely compare it).
        return type(value) is int and value in integers
    return type(value) is str and is_storable_text(value)


def _malformed_cursor() -> InvalidParameters:
    return InvalidParameters(
        CURSOR_CHAIN,
        "cursor: malformed; pass result_info.cursor of the previous page unchanged",
    )


# --- pages ---


def paginate(query: ListQuery, rows: list[Registration]) -> Page[Registration]:
    """Cut the store's rows (up to per_page + 1 of them) into a page and its next cursor.

    The store fetches one row more than the page holds: if it exists there is a next page,
    without a second query to find out.
    """
    items = rows[: query.per_page]
    has_more = len(rows) > query.per_page
    cursor = encode_cursor(query, items[-1]) if has_more else ""
    return Page(items, cursor, query.per_page)


# --- shared with the other cursor lists (domain/devices.py) ---
#
# One set of parameter readers, so that every list of the API accepts the same spellings
# (repeated keys and `name[]`, last value wins) and refuses bad values with the same
# messages and chain codes.

values = _values
last = _last
enum = _enum
optional_enum = _optional_enum
check_uuid = _check_uuid
optional_uuid = _optional_uuid
uuid_set = _uuid_set
timestamp = _timestamp
search_text = _search
per_page = _per_page


def ascii_lower(text: str) -> str:
    """`text` with A-Z lowered and nothing else, as both engines' `lower()` fold here."""
    return text.translate(_ASCII_LOWER)
