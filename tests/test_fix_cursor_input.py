"""Regression: forged cursors and unstorable text in list parameters are 400s, never 500s.

A cursor is client input: a lone surrogate (`\\ud800`) or a NUL in its sort value, an
integer beyond the column's range, or a version written `true` or `1.0` reached the
store and failed there (a 500 on one engine or both). NUL in `tag` or
`last_seen_user.email` did the same on PostgreSQL. Every case here must be the same
400 on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import Registry
from tests.expect import assert_error_envelope

CURSOR_CHAIN = 11004
SEARCH_CHAIN = 11006
TAG_CHAIN = 11021
INT32_MAX = 2**31 - 1

# (list path under the account, parameters that select a text sort key)
TEXT_SORTED_LISTS = [
    ("devices/registrations", {"sort_by": "user.name"}),
    ("devices/registrations", {"sort_by": "user.email"}),
    ("devices/physical-devices", {"sort_by": "name"}),
    ("devices/physical-devices", {"sort_by": "last_seen_user.email"}),
]
COUNT_SORT = {"sort_by": "active_registrations", "active_registrations": "include"}


def _encode(payload: object) -> str:
    """A cursor as the server writes one; json.dumps escapes surrogates and NUL as \\uXXXX."""
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def _decode(cursor: str) -> list[Any]:
    payload: list[Any] = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    return payload


async def _real_cursor(api: httpx.AsyncClient, path: str, params: dict[str, str]) -> list[Any]:
    """The decoded cursor of a real first page: its fingerprint is the server's own."""
    response = await api.get(path, params={**params, "per_page": "1"})
    assert response.status_code == 200, response.text
    cursor = response.json()["result_info"]["cursor"]
    assert cursor, "the demo fleet must hold more than one row"
    return _decode(cursor)


def _assert_refused(response: httpx.Response, chain: int) -> str:
    assert response.status_code == 400, response.text
    error = assert_error_envelope(response.json(), 6008)
    assert [link["code"] for link in error["error_chain"]] == [chain], error
    message: str = error["error_chain"][0]["message"]
    return message


async def _with_cursor(
    api: httpx.AsyncClient, path: str, params: dict[str, str], payload: list[Any]
) -> httpx.Response:
    return await api.get(path, params={**params, "cursor": _encode(payload)})


@pytest.mark.parametrize(("list_path", "params"), TEXT_SORTED_LISTS)
@pytest.mark.parametrize("bad_text", ["\ud800", "a\udfffz", "\x00", "jo\x00hn"])
async def test_unstorable_text_in_a_cursor_is_refused(
    api: httpx.AsyncClient,
    registry: Registry,
    list_path: str,
    params: dict[str, str],
    bad_text: str,
) -> None:
    path = f"/accounts/{registry.account_id}/{list_path}"
    payload = await _real_cursor(api, path, params)

    payload[4] = bad_text
    response = await _with_cursor(api, path, params, payload)

    assert "cursor" in _assert_refused(response, CURSOR_CHAIN)


@pytest.mark.parametrize("value", [2**40, INT32_MAX + 1, -(2**31) - 1, 2**63])
async def test_a_count_beyond_its_column_is_refused(
    api: httpx.AsyncClient, registry: Registry, value: int
) -> None:
    path = f"/accounts/{registry.account_id}/devices/physical-devices"
    payload = await _real_cursor(api, path, COUNT_SORT)

    payload[4] = value
    response = await _with_cursor(api, path, COUNT_SORT, payload)

    _assert_refused(response, CURSOR_CHAIN)


async def test_the_largest_count_the_column_holds_is_accepted(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    path = f"/accounts/{registry.account_id}/devices/physical-devices"
    payload = await _real_cursor(api, path, COUNT_SORT)

    payload[4] = INT32_MAX  # past every device: an empty last page, not an error
    response = await _with_cursor(api, path, COUNT_SORT, payload)

    assert response.status_code == 200, response.text
    assert response.json()["result"] == []


# (field index, forged value): every field of the cursor has exactly one type.
FORGED_FIELDS = [
    (0, True),  # the version is the int 1, not a JSON true
    (0, 1.0),
    (0, "1"),
    (1, ["name"]),
    (1, "\ud800"),  # echoed in the "made for another sort" message if not refused first
    (2, "as\udc00c"),
    (3, "\ud800"),
    (2, None),
    (3, 12),
    (5, 7),
    (5, "not-a-uuid"),
]


@pytest.mark.parametrize(("index", "forged"), FORGED_FIELDS)
@pytest.mark.parametrize(
    ("list_path", "params"),
    [("devices/registrations", {"sort_by": "user.name"}),
     ("devices/physical-devices", {"sort_by": "name"}),
     ("devices/physical-devices", COUNT_SORT)],
)  # fmt: skip
async def test_every_cursor_field_is_type_checked(
    api: httpx.AsyncClient,
    registry: Registry,
    list_path: str,
    params: dict[str, str],
    index: int,
    forged: object,
) -> None:
    path = f"/accounts/{registry.account_id}/{list_path}"
    payload = await _real_cursor(api, path, params)

    payload[index] = forged
    response = await _with_cursor(api, path, params, payload)

    _assert_refused(response, CURSOR_CHAIN)


@pytest.mark.parametrize(
    ("list_path", "params", "value"),
    [
        ("devices/registrations", {"sort_by": "user.name"}, 5),  # int for a text key
        ("devices/registrations", {"sort_by": "created_at"}, "5"),  # text for a time key
        ("devices/registrations", {"sort_by": "created_at"}, 5.0),
        ("devices/registrations", {"sort_by": "created_at"}, True),
        ("devices/physical-devices", COUNT_SORT, "3"),
        ("devices/physical-devices", COUNT_SORT, 3.0),
        ("devices/physical-devices", {"sort_by": "last_seen_at"}, 2**63),
    ],
)
async def test_the_sort_value_has_the_type_of_its_key(
    api: httpx.AsyncClient,
    registry: Registry,
    list_path: str,
    params: dict[str, str],
    value: object,
) -> None:
    path = f"/accounts/{registry.account_id}/{list_path}"
    payload = await _real_cursor(api, path, params)

    payload[4] = value
    response = await _with_cursor(api, path, params, payload)

    _assert_refused(response, CURSOR_CHAIN)


async def test_an_untouched_cursor_still_pages(api: httpx.AsyncClient, registry: Registry) -> None:
    # The checks refuse forgeries only: re-encoding a real cursor changes nothing.
    path = f"/accounts/{registry.account_id}/devices/physical-devices"
    payload = await _real_cursor(api, path, COUNT_SORT)
    response = await _with_cursor(api, path, COUNT_SORT, payload)
    assert response.status_code == 200, response.text
    assert len(response.json()["result"]) >= 1
    assert str(uuid.UUID(payload[5])) == payload[5]


# --- NUL in text parameters ---

NUL_PARAMETERS = [
    ("devices/physical-devices", "tag", "\x00:x", TAG_CHAIN),
    ("devices/physical-devices", "tag", "x:\x00", TAG_CHAIN),
    ("devices/physical-devices", "tag", "os:lin\x00ux", TAG_CHAIN),
    ("devices/physical-devices", "last_seen_user.email", "\x00", SEARCH_CHAIN),
    ("devices/physical-devices", "last_seen_user.email", "a\x00@example.com", SEARCH_CHAIN),
    ("devices/physical-devices", "search", "\x00", SEARCH_CHAIN),
    ("devices/registrations", "search", "a\x00", SEARCH_CHAIN),
]


@pytest.mark.parametrize(("list_path", "name", "value", "chain"), NUL_PARAMETERS)
async def test_nul_in_a_text_parameter_is_refused(
    api: httpx.AsyncClient,
    registry: Registry,
    list_path: str,
    name: str,
    value: str,
    chain: int,
) -> None:
    path = f"/accounts/{registry.account_id}/{list_path}"

    response = await api.get(path, params={name: value})

    message = _assert_refused(response, chain)
    assert message.startswith(f"{name}: ") and "NUL" in message


@pytest.mark.parametrize("list_path", ["devices/registrations", "devices/physical-devices"])
async def test_a_deeply_nested_cursor_is_refused(
    api: httpx.AsyncClient, registry: Registry, list_path: str
) -> None:
    # 1,500 nested arrays fit in the cursor's 2,048 characters and exhaust json's recursion.
    cursor = base64.urlsafe_b64encode(b"[" * 1500).decode().rstrip("=")
    path = f"/accounts/{registry.account_id}/{list_path}"

    response = await api.get(path, params={"cursor": cursor})

    _assert_refused(response, CURSOR_CHAIN)
