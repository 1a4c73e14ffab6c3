"""List registrations: filters, sorts, keyset cursors and validation (docs/registrations.md).

`GET /accounts/{account_id}/devices/registrations`. Every expected answer is computed from
the seeded records (`tests/registrations_expected.py`), never read back from the server.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from cloudflare import AsyncCloudflare
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import SEED, Registry
from tests.expect import assert_error_envelope, assert_success_envelope, expected_registration
from tests.registrations_expected import ORDERS, SORTS, Expect, expected_ids, list_params
from warp_registry.bootstrap import initialise, plan_registry
from warp_registry.clock import format_rfc3339, now_us
from warp_registry.domain.listing import parse_list_query
from warp_registry.domain.records import FleetRecords
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
from warp_registry.secrets import hash_secret
from warp_registry.store import open_store
from warp_registry.store.sql_store import build_list_sql

DOCS = Path(__file__).parent.parent / "docs" / "registrations.md"


def _path(registry: Registry) -> str:
    return f"/accounts/{registry.account_id}/devices/registrations"


async def _page(
    api: httpx.AsyncClient, registry: Registry, params: dict[str, Any]
) -> dict[str, Any]:
    response = await api.get(_path(registry), params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert_success_envelope(body)
    return body


async def _walk(api: httpx.AsyncClient, registry: Registry, params: dict[str, Any]) -> list[str]:
    """Follow `result_info.cursor` the way the SDKs do; return every id seen, in order."""
    seen: list[str] = []
    cursor = None
    while True:
        body = await _page(api, registry, {**params, **({"cursor": cursor} if cursor else {})})
        seen.extend(item["id"] for item in body["result"])
        cursor = body["result_info"]["cursor"]
        if not cursor or not body["result"]:
            return seen


def _sdk_kwargs(expect: Expect) -> dict[str, Any]:
    """The SDK spelling of a request: nested dicts for the dotted filters."""
    params = list_params(expect)
    kwargs: dict[str, Any] = {}
    for name, value in params.items():
        if "." in name:
            outer, inner = name.split(".")
            kwargs[outer] = {inner: value}
        else:
            kwargs[name] = value
    return kwargs


# --- the demo fleet, as the cases below pick from it ---


def _users_with_many(fleet: FleetRecords) -> list[str]:
    counts = Counter(r.user_id for r in fleet.registrations if r.user_id is not None)
    return [user for user, count in counts.most_common() if count > 1]


def _shared_device(fleet: FleetRecords) -> str:
    counts = Counter(r.device_id for r in fleet.registrations)
    device, count = counts.most_common(1)[0]
    assert count > 1
    return device


def _revoked(fleet: FleetRecords) -> list[str]:
    return [r.id for r in fleet.registrations if r.revoked_at is not None]


def _profile(fleet: FleetRecords, name: str) -> str:
    """A profile's id by name; the default profile has no name of its own."""
    return next(
        p.id for p in fleet.profiles if p.name == name or (p.is_default and name == "Default")
    )


def _median_seen(fleet: FleetRecords) -> int:
    seen = sorted(r.last_seen_at for r in fleet.registrations)
    return seen[len(seen) // 2]


def _owner_of(fleet: FleetRecords, device_id: str) -> str:
    return next(d.name for d in fleet.devices if d.id == device_id)


# Every filter alone, then combined; each case picks its values from the fleet.
FILTER_CASES: dict[str, Callable[[FleetRecords], Expect]] = {
    "status=active": lambda f: Expect(status="active"),
    "status=revoked": lambda f: Expect(status="revoked"),
    "status=all": lambda f: Expect(status="all"),
    "id": lambda f: Expect(ids=[f.registrations[3].id, f.registrations[40].id]),
    "id of a revoked one, default status": lambda f: Expect(
        ids=[_revoked(f)[0], f.registrations[0].id]
    ),
    "device.id": lambda f: Expect(device_id=_shared_device(f), status="all"),
    "user.id": lambda f: Expect(user_ids=_users_with_many(f)[:2]),
    "user.id, one": lambda f: Expect(user_ids=_users_with_many(f)[:1]),
    "policy.id": lambda f: Expect(policy_id=_profile(f, "Engineering")),
    "registration_type=browser_extension": lambda f: Expect(
        registration_type="browser_extension", status="all"
    ),
    "registration_type=warp": lambda f: Expect(registration_type="warp"),
    "search: email, upper case": lambda f: Expect(search=(f.users[0].email or "")[:7].upper()),
    "search: user name": lambda f: Expect(search=f.users[1].name.split()[1]),
    "search: device name": lambda f: Expect(search="ThinkPad", status="all"),
    "search: apostrophe": lambda f: Expect(search="'s iPhone"),
    "search: registration id fragment": lambda f: Expect(search=f.registrations[5].id[9:18]),
    "search: device id fragment": lambda f: Expect(
        search=f.registrations[-1].device_id[-12:].upper(), status="all"
    ),
    "search: domain": lambda f: Expect(search="@contractors."),
    "search: % is literal": lambda f: Expect(search="%"),
    "search: _ is literal": lambda f: Expect(search="example_com", status="all"),
    "search: backslash is literal": lambda f: Expect(search="\\", status="all"),
    "seen_after": lambda f: Expect(seen_after=_median_seen(f)),
    "seen_before": lambda f: Expect(seen_before=_median_seen(f), status="all"),
    "seen window": lambda f: Expect(
        seen_after=_median_seen(f) - 30 * 86_400_000_000, seen_before=_median_seen(f)
    ),
    # combined
    "user.id + status=all + sort by last_seen_at desc": lambda f: Expect(
        user_ids=_users_with_many(f)[:3], status="all", sort_by="last_seen_at",
        sort_order="desc",
    ),
    "search + registration_type": lambda f: Expect(
        search="example.com", registration_type="warp", sort_by="user.email"
    ),
    "device.id + seen_after": lambda f: Expect(
        device_id=_shared_device(f), seen_after=_median_seen(f), status="all"
    ),
    "id + status=revoked": lambda f: Expect(
        ids=[*_revoked(f)[:3], f.registrations[0].id], status="revoked"
    ),
    "policy.id + search + sort by user.name": lambda f: Expect(
        policy_id=_profile(f, "Default"), search="e", sort_by="user.name", sort_order="desc"
    ),
    "everything at once": lambda f: Expect(
        status="all", ids=[r.id for r in f.registrations[:30]],
        user_ids=_users_with_many(f)[:6], policy_id=_profile(f, "Default"),
        registration_type="warp", search="e", seen_after=_median_seen(f) - 60 * 86_400_000_000,
        seen_before=_median_seen(f) + 20 * 86_400_000_000, sort_by="id", sort_order="desc",
    ),
}  # fmt: skip


def test_the_filter_cases_are_not_vacuous() -> None:
    """Most cases select some rows but not all, so a filter that is ignored gets caught."""
    fleet, _, _ = plan_registry(SEED, True, now_us())
    total = len(expected_ids(fleet, Expect(status="all")))
    sizes = {name: len(expected_ids(fleet, case(fleet))) for name, case in FILTER_CASES.items()}
    partial = [name for name, size in sizes.items() if 0 < size < total]
    assert len(partial) >= len(FILTER_CASES) - 4, sizes


async def test_every_filter_alone_and_combined(
    sdk: AsyncCloudflare, registry: Registry, subtests: pytest.Subtests
) -> None:
    for name, case in FILTER_CASES.items():
        with subtests.test(case=name):
            expect = case(registry.fleet)
            # per_page 7: the filters must also hold across cursor pages.
            pages = sdk.zero_trust.devices.registrations.list(
                account_id=registry.account_id, per_page=7, **_sdk_kwargs(expect)
            )
            assert [reg.id async for reg in pages] == expected_ids(registry.fleet, expect)


async def test_default_list_is_active_registrations_by_creation(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    body = await _page(api, registry, {})
    want = expected_ids(registry.fleet, Expect())
    assert len(want) <= 50  # the whole active fleet fits the default page of 50

    assert [item["id"] for item in body["result"]] == want
    assert body["result_info"] == {
        "count": len(want), "cursor": "", "per_page": 50, "total_count": None,
    }  # fmt: skip


async def test_items_are_full_registration_objects(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    records = {r.id: r for r in registry.fleet.registrations}
    for include in (False, True):
        params = {"status": "all", "per_page": 1000, **({"include": "policy"} if include else {})}
        body = await _page(api, registry, params)
        assert len(body["result"]) == len(records)
        for item in body["result"]:
            expected = expected_registration(records[item["id"]], registry.fleet,
                                             include_policy=include)  # fmt: skip
            assert item == expected


async def test_service_token_registration_has_null_user_and_sorts_first_by_email(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    token_reg = next(r for r in registry.fleet.registrations if r.user_id is None)
    body = await _page(api, registry, {"status": "all", "sort_by": "user.email"})

    first = body["result"][0]
    assert first["id"] == token_reg.id
    assert first["user"] == {"id": None, "email": None, "name": None}


# --- sorting and cursors ---


async def test_every_sort_pages_through_everything_once(
    api: httpx.AsyncClient, registry: Registry, subtests: pytest.Subtests
) -> None:
    for sort_by in SORTS:
        for sort_order in ORDERS:
            expect = Expect(status="all", sort_by=sort_by, sort_order=sort_order)
            want = expected_ids(registry.fleet, expect)
            for per_page in (1, 7, 1000):
                with subtests.test(sort_by=sort_by, sort_order=sort_order, per_page=per_page):
                    params = {**list_params(expect), "per_page": per_page}
                    assert await _walk(api, registry, params) == want


async def test_sdk_auto_paging_in_process(sdk: AsyncCloudflare, registry: Registry) -> None:
    want = expected_ids(registry.fleet, Expect(status="all", sort_by="user.name"))
    pages = sdk.zero_trust.devices.registrations.list(
        account_id=registry.account_id, status="all", sort_by="user.name", per_page=7
    )
    assert [reg.id async for reg in pages] == want


async def test_last_page_has_empty_cursor_and_full_pages_do_not(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    total = len(expected_ids(registry.fleet, Expect(status="all")))
    per_page = 10
    body = await _page(api, registry, {"status": "all", "per_page": per_page})
    info = body["result_info"]
    assert info["count"] == per_page and info["per_page"] == per_page
    assert info["cursor"] != ""
    assert info["total_count"] is None  # our choice: never counted

    # Exactly full last page: no cursor, although the page is full.
    body = await _page(api, registry, {"status": "all", "per_page": total})
    assert body["result_info"]["count"] == total
    assert body["result_info"]["cursor"] == ""


async def test_cursor_past_the_end_gives_an_empty_page(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    want = expected_ids(registry.fleet, Expect(status="all"))
    body = await _page(api, registry, {"status": "all", "per_page": len(want) - 1})
    cursor = body["result_info"]["cursor"]
    assert cursor

    # The only row after the cursor goes away: the cursor now points past the end.
    deleted = await api.delete(_path(registry) + "/" + want[-1])
    assert deleted.status_code == 200
    body = await _page(api, registry, {"status": "all", "per_page": len(want) - 1,
                                       "cursor": cursor})  # fmt: skip
    assert body["result"] == []
    assert body["result_info"] == {"count": 0, "cursor": "", "per_page": len(want) - 1,
                                   "total_count": None}  # fmt: skip


async def test_rows_changing_between_pages_are_neither_repeated_nor_skipped(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    """Keyset paging: deletes and revokes between pages shift nothing else."""
    want = expected_ids(registry.fleet, Expect())
    first = await _page(api, registry, {"per_page": 5})
    seen = [item["id"] for item in first["result"]]
    assert seen == want[:5]

    # Between pages: delete one row already shown and one not shown yet, revoke another
    # not shown yet. With offsets, the deleted row would make the next page skip one.
    gone_seen, gone_ahead, revoked_ahead = want[1], want[8], want[12]
    for target in (gone_seen, gone_ahead):
        assert (await api.delete(_path(registry) + "/" + target)).status_code == 200
    revoked = await api.post(_path(registry) + "/revoke", params={"id": revoked_ahead})
    assert revoked.status_code == 200

    rest = await _walk(api, registry, {"per_page": 5, "cursor": first["result_info"]["cursor"]})
    assert rest == [i for i in want[5:] if i not in (gone_ahead, revoked_ahead)]


async def test_per_page_may_change_between_pages(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    want = expected_ids(registry.fleet, Expect(sort_by="last_seen_at"))
    first = await _page(api, registry, {"sort_by": "last_seen_at", "per_page": 3})
    rest = await _walk(api, registry, {"sort_by": "last_seen_at", "per_page": 11,
                                       "cursor": first["result_info"]["cursor"]})  # fmt: skip
    assert [i["id"] for i in first["result"]] + rest == want


async def test_empty_cursor_means_first_page(api: httpx.AsyncClient, registry: Registry) -> None:
    body = await _page(api, registry, {"cursor": "", "per_page": 4})
    assert [item["id"] for item in body["result"]] == expected_ids(registry.fleet, Expect())[:4]


async def _cursor_for(api: httpx.AsyncClient, registry: Registry, params: dict[str, Any]) -> str:
    body = await _page(api, registry, {**params, "per_page": 2})
    cursor: str = body["result_info"]["cursor"]
    assert cursor
    return cursor


OTHER_REQUESTS: list[tuple[dict[str, str], dict[str, str]]] = [
    # (the cursor was made with, it is used with)
    ({}, {"sort_by": "id"}),
    ({}, {"sort_order": "desc"}),
    ({"sort_by": "user.email"}, {"sort_by": "user.name"}),
    ({}, {"status": "all"}),
    ({"search": "a"}, {"search": "b"}),
    ({"search": "a"}, {}),
    ({"registration_type": "warp"}, {}),
    ({"seen_after": "2020-01-01T00:00:00Z"}, {"seen_after": "2020-01-01T00:00:01Z"}),
]


async def test_cursor_for_other_sort_or_filters_is_refused(
    api: httpx.AsyncClient, registry: Registry, subtests: pytest.Subtests
) -> None:
    for made_with, used_with in OTHER_REQUESTS:
        with subtests.test(made_with=made_with, used_with=used_with):
            cursor = await _cursor_for(api, registry, made_with)
            response = await api.get(_path(registry), params={**used_with, "cursor": cursor})

            assert response.status_code == 400
            error = assert_error_envelope(response.json(), 6008)
            assert error["error_chain"][0]["code"] == 11004
            assert "cursor" in error["error_chain"][0]["message"]


async def test_equivalent_filters_share_cursors(api: httpx.AsyncClient, registry: Registry) -> None:
    """Same filters spelled differently (order of ids, case of UUIDs) are the same filters."""
    users = _users_with_many(registry.fleet)[:3]
    cursor = await _cursor_for(api, registry, {"user.id": users, "status": "all"})
    params = {"user.id": [u.upper() for u in reversed(users)], "status": "all", "cursor": cursor}
    response = await api.get(_path(registry), params=params)
    assert response.status_code == 200, response.text


def _encode(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def _tampered(cursor: str, index: int, value: object) -> str:
    payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    payload[index] = value
    return _encode(payload)


BAD_CURSORS: dict[str, Callable[[str], str]] = {
    "not base64": lambda good: "not a cursor!",
    "percent signs": lambda good: "%%%%",
    "truncated": lambda good: good[:-5],
    "one character more": lambda good: good + "A",
    "not UTF-8": lambda good: base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    "an object": lambda good: _encode({"a": 1}),
    "a short list": lambda good: _encode([1, 2, 3]),
    "unknown version": lambda good: _tampered(good, 0, 99),
    "text for a timestamp": lambda good: _tampered(good, 4, "not a timestamp"),
    "timestamp past BIGINT": lambda good: _tampered(good, 4, 2**70),
    "boolean for a timestamp": lambda good: _tampered(good, 4, True),
    "id not a UUID": lambda good: _tampered(good, 5, "not-a-uuid"),
    "id null": lambda good: _tampered(good, 5, None),
    "too long": lambda good: "A" * 5000,
}


async def test_malformed_cursor_is_refused(
    api: httpx.AsyncClient, registry: Registry, subtests: pytest.Subtests
) -> None:
    good = await _cursor_for(api, registry, {})
    for name, make in BAD_CURSORS.items():
        with subtests.test(cursor=name):
            response = await api.get(_path(registry), params={"cursor": make(good)})

            assert response.status_code == 400, response.text
            error = assert_error_envelope(response.json(), 6008)
            assert error["error_chain"][0]["code"] == 11004
            assert error["error_chain"][0]["message"].startswith("cursor:")


# --- filters: boundaries and spellings ---


async def test_seen_bounds_are_exclusive(api: httpx.AsyncClient, registry: Registry) -> None:
    target = registry.fleet.registrations[7]
    instant = target.last_seen_at

    for name in ("seen_after", "seen_before"):
        body = await _page(api, registry, {"status": "all", name: format_rfc3339(instant),
                                           "per_page": 1000})  # fmt: skip
        assert target.id not in [item["id"] for item in body["result"]], name

    just_before = format_rfc3339(instant - 1)
    body = await _page(api, registry, {"status": "all", "seen_after": just_before,
                                       "per_page": 1000})  # fmt: skip
    assert target.id in [item["id"] for item in body["result"]]


def _spellings(us: int) -> list[str]:
    """One instant written the ways RFC3339 allows (and one curl typo we accept)."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
    plus = moment.astimezone(timezone(timedelta(hours=2, minutes=30))).isoformat()
    minus = moment.astimezone(timezone(timedelta(hours=-5))).isoformat()
    return [
        moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        moment.strftime("%Y-%m-%dt%H:%M:%S.%fz"),
        moment.strftime("%Y-%m-%dT%H:%M:%S.%f999Z"),  # digits past microseconds are dropped
        plus,
        minus,
        plus.replace("+", " "),  # an unencoded '+' arrives as a space
    ]


async def test_seen_after_spellings_of_one_instant(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    instant = _median_seen(registry.fleet)
    want = expected_ids(registry.fleet, Expect(status="all", seen_after=instant))

    for spelling in _spellings(instant):
        body = await _page(api, registry, {"status": "all", "per_page": 1000,
                                           "seen_after": spelling})  # fmt: skip
        assert [item["id"] for item in body["result"]] == want, spelling


async def test_bracket_syntax_is_an_alias_of_repeated_keys(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    ids = [registry.fleet.registrations[2].id, registry.fleet.registrations[9].id]
    body = await _page(api, registry, {"id[]": ids, "status": "all"})
    assert sorted(item["id"] for item in body["result"]) == sorted(ids)


async def test_unknown_query_parameters_are_ignored(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    body = await _page(api, registry, {"colour": "blue", "page": "3", "per_page": 1000})
    assert [item["id"] for item in body["result"]] == expected_ids(registry.fleet, Expect())


# --- bad input ---

BAD_INPUT = [
    # (parameter, value, chain code, words the message must contain)
    ("per_page", "0", 11000, ["per_page", "1 and 1000"]),
    ("per_page", "1001", 11000, ["per_page", "1 and 1000"]),
    ("per_page", "-1", 11000, ["per_page"]),
    ("per_page", "ten", 11000, ["per_page"]),
    ("per_page", "1.5", 11000, ["per_page"]),
    ("per_page", "", 11000, ["per_page"]),
    ("per_page", "99999999999999999999", 11000, ["per_page"]),
    ("sort_by", "name", 11001, ["sort_by", "created_at", "user.email"]),
    ("sort_by", "", 11001, ["sort_by"]),
    ("sort_order", "ascending", 11001, ["sort_order", "asc", "desc"]),
    ("status", "deleted", 11001, ["status", "active", "revoked", "all"]),
    ("status", "ACTIVE", 11001, ["status"]),
    ("registration_type", "mobile", 11001, ["registration_type", "warp", "browser_extension"]),
    ("include", "device", 11001, ["include", "policy"]),
    ("id", "12345", 11003, ["id", "UUID"]),
    ("device.id", "not-a-uuid", 11003, ["device.id"]),
    ("user.id", "x" * 36, 11003, ["user.id"]),
    ("policy.id", "", 11003, ["policy.id"]),
    ("seen_after", "yesterday", 11002, ["seen_after", "RFC3339"]),
    ("seen_after", "2026-01-01", 11002, ["seen_after"]),
    ("seen_after", "2026-02-30T00:00:00Z", 11002, ["seen_after"]),
    ("seen_before", "2026-01-01T25:00:00Z", 11002, ["seen_before"]),
    ("seen_before", "1767225600", 11002, ["seen_before"]),
    ("search", "x" * 201, 11006, ["search", "200"]),
    ("search", "a\x00b", 11006, ["search", "NUL"]),
]


async def test_bad_input_is_a_400_naming_the_parameter(
    api: httpx.AsyncClient, registry: Registry, subtests: pytest.Subtests
) -> None:
    for name, value, chain, words in BAD_INPUT:
        with subtests.test(parameter=name, value=value[:40]):
            response = await api.get(_path(registry), params={name: value})

            assert response.status_code == 400, response.text
            error = assert_error_envelope(response.json(), 6008)
            assert error["message"] == "Invalid request parameters"
            link = error["error_chain"][0]
            assert link["code"] == chain
            for word in words:
                assert word in link["message"], link


NASTY_SEARCHES = ["'", "''; DROP TABLE registrations; --", '"', "\\%", "%_%", "[a-z]*", "é",
                  "ÉCOLE", "😀", "\t", "\n", " ", "?", "$1", "NULL"]  # fmt: skip


async def test_any_search_text_is_answered(
    api: httpx.AsyncClient, registry: Registry, subtests: pytest.Subtests
) -> None:
    """Quotes, wildcards, placeholders and non-ASCII text are searched for, literally."""
    for text in NASTY_SEARCHES:
        with subtests.test(search=text):
            expect = Expect(search=text, status="all")
            body = await _page(api, registry, {"search": text, "status": "all", "per_page": 1000})
            assert [item["id"] for item in body["result"]] == expected_ids(registry.fleet, expect)


LIST_PARAMETERS = ["id", "id[]", "device.id", "user.id", "policy.id", "registration_type",
                   "status", "search", "seen_after", "seen_before", "include", "sort_by",
                   "sort_order", "per_page", "cursor", "unknown"]  # fmt: skip


@given(
    st.dictionaries(
        st.sampled_from(LIST_PARAMETERS), st.lists(st.text(max_size=80), min_size=1, max_size=3)
    )
)
@settings(max_examples=400, deadline=None)
def test_any_query_is_parsed_or_refused_as_invalid(query: dict[str, list[str]]) -> None:
    """Whatever the query string holds, validation ends in a query or in a 400, never a crash."""
    try:
        parsed = parse_list_query(query)
    except InvalidParameters as refused:
        assert refused.status == 400 and refused.chain
    else:
        assert 1 <= parsed.per_page <= 1000


@given(st.one_of(st.text(max_size=300), st.binary(max_size=200).map(
    lambda raw: base64.urlsafe_b64encode(raw).decode().rstrip("="))))  # fmt: skip
@settings(max_examples=400, deadline=None)
def test_any_cursor_text_is_decoded_or_refused(raw: str) -> None:
    try:
        parse_list_query({"cursor": [raw]})
    except InvalidParameters as refused:
        assert refused.chain[0][0] == 11004


async def test_more_than_200_ids_in_a_filter_is_a_400(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    many = [f"00000000-0000-4000-8000-{n:012x}" for n in range(201)]
    response = await api.get(_path(registry), params={"id": many})
    assert response.status_code == 400
    assert assert_error_envelope(response.json(), 6008)["error_chain"][0]["code"] == 11005

    response = await api.get(_path(registry), params={"id": many[:200]})
    assert response.status_code == 200


async def test_one_bad_value_among_good_ones_is_a_400(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    ids = [registry.fleet.registrations[0].id, "nope"]
    response = await api.get(_path(registry), params={"id": ids})
    assert response.status_code == 400
    assert "'nope'" in assert_error_envelope(response.json(), 6008)["error_chain"][0]["message"]


# --- permissions ---


async def _token(registry: Registry, permission: str, accounts: list[str]) -> str:
    secret = f"test-{permission}-token-{len(accounts)}-abcdefghijklmnopqrstuvwxyz"
    created = await registry.store.create_token(
        f"00000000-0000-4000-8000-00000000000{len(accounts)}", "test", hash_secret(secret),
        permission, accounts,
    )  # fmt: skip
    assert created
    return secret


async def test_read_token_can_list(api: httpx.AsyncClient, registry: Registry) -> None:
    token = await _token(registry, "read", [registry.account_id])
    response = await api.get(_path(registry), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert [i["id"] for i in response.json()["result"]] == expected_ids(registry.fleet, Expect())


async def test_credentials_are_checked(api: httpx.AsyncClient, registry: Registry) -> None:
    no_account = await _token(registry, "write", [])
    other_account = f"/accounts/{'0' * 32}/devices/registrations"
    cases = [
        (_path(registry), {"Authorization": f"Bearer {no_account}"}, 403, 10000),
        (other_account, {}, 403, 10000),
        (_path(registry), {"Authorization": "Bearer unknown-token-0123456789"}, 403, 9109),
        (_path(registry), {"Authorization": "Basic abc"}, 400, 6003),
    ]
    for path, headers, status, code in cases:
        response = await api.get(path, headers=headers)
        assert response.status_code == status, (path, headers, response.text)
        assert_error_envelope(response.json(), code)


async def test_no_credentials_at_all(anon: httpx.AsyncClient, registry: Registry) -> None:
    response = await anon.get(_path(registry))
    assert response.status_code == 400
    assert_error_envelope(response.json(), 9106)


async def test_global_key_can_list(anon: httpx.AsyncClient, registry: Registry) -> None:
    key = "0123456789abcdef0123456789abcdef01234"
    assert await registry.store.create_global_key(
        "00000000-0000-4000-8000-0000000000aa", "admin@example.com", hash_secret(key),
        registry.account_id,
    )  # fmt: skip
    headers = {"X-Auth-Email": "admin@example.com", "X-Auth-Key": key}
    response = await anon.get(_path(registry), headers=headers)
    assert response.status_code == 200
    assert [i["id"] for i in response.json()["result"]] == expected_ids(registry.fleet, Expect())


# --- cost: statements and query plans ---


async def test_a_page_costs_two_statements(api: httpx.AsyncClient, registry: Registry) -> None:
    """The credential lookup and the page; no count, no second query for "has more"."""
    db = registry.store.db
    for params in ({}, {"per_page": 1, "status": "all", "sort_by": "user.email"}):
        before = db.query_count
        await _page(api, registry, params)
        assert db.query_count - before == 2


PLANNED_QUERIES: dict[str, dict[str, list[str]]] = {
    "default list": {},
    "user.id filter": {"user.id": ["7b3f5a52-0d7e-4f7e-9a1c-3f1f6f3c2a11"]},
    "seen_after filter": {"seen_after": ["2026-01-01T00:00:00Z"]},
    "two users, sorted by name": {
        "user.id": ["7b3f5a52-0d7e-4f7e-9a1c-3f1f6f3c2a11", "8c4f6b63-1e8f-4a8f-8b2d-4a2a7a4d3b22"],
        "sort_by": ["user.name"],
    },
    "id filter": {"id": ["7b3f5a52-0d7e-4f7e-9a1c-3f1f6f3c2a11"]},
}


def _plan(conn: sqlite3.Connection, account_id: str, params: dict[str, list[str]]) -> list[str]:
    sql, values = build_list_sql(account_id, parse_list_query(params))
    return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, values)]


@pytest.fixture
async def sqlite_demo(tmp_path: Path) -> tuple[sqlite3.Connection, str]:
    """A SQLite registry with the demo fleet, and a plain connection to EXPLAIN on."""
    path = str(tmp_path / "plans.db")
    store = await open_store(path)
    init = await initialise(store)
    await store.close()
    return sqlite3.connect(path), init.account_id


@pytest.mark.parametrize("name", PLANNED_QUERIES)
def test_sqlite_plans_search_an_index(
    sqlite_demo: tuple[sqlite3.Connection, str], name: str
) -> None:
    conn, account_id = sqlite_demo
    plan = _plan(conn, account_id, PLANNED_QUERIES[name])

    on_registrations = [line for line in plan if line.split()[1:2] == ["r"]]
    assert on_registrations, plan
    assert all(line.startswith("SEARCH r USING ") for line in on_registrations), plan
    assert not any(line.startswith(("SCAN r", "SCAN registrations")) for line in plan), plan

    # docs/registrations.md shows these plans; keep it honest.
    documented = DOCS.read_text()
    for line in plan:
        assert line in documented, f"docs/registrations.md lacks plan line {line!r}"


def test_docs_name_every_parameter_and_chain_code() -> None:
    documented = DOCS.read_text()
    for name in LIST_PARAMETERS:
        if name not in ("id[]", "unknown"):
            assert f"| `{name}` |" in documented, name
    for chain in (PER_PAGE_CHAIN, ENUM_CHAIN, TIMESTAMP_CHAIN, UUID_CHAIN, CURSOR_CHAIN,
                  ID_LIST_CHAIN, SEARCH_CHAIN):  # fmt: skip
        assert f"| {chain} |" in documented, chain


def test_a_cursor_is_an_index_range(sqlite_demo: tuple[sqlite3.Connection, str]) -> None:
    """Deep pages cost what the first does: the keyset is part of the index search."""
    conn, account_id = sqlite_demo
    cursor = _encode([1, "created_at", "asc", parse_list_query({}).filters.fingerprint(),
                      1_700_000_000_000_000, "7b3f5a52-0d7e-4f7e-9a1c-3f1f6f3c2a11"])  # fmt: skip
    plan = _plan(conn, account_id, {"cursor": [cursor]})
    assert "(created_at,id)>(?,?)" in plan[0], plan
