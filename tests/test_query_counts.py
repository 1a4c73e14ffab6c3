"""CI guard for the hot paths' cost, independent of machine speed: store statements per call.

`Database.query_count` counts every statement a store runs (both engines). The budgets:

- GET one registration with an API token: ONE statement. The token check is folded into
  the registration lookup (`SqlStore.get_registration`), whatever the outcome (found,
  unknown id, unknown token, token of another account).
- A list page: TWO statements, the credential lookup and the page (no count query, no
  "has more" query), at page 1 and deep in a cursor walk, with and without filters.
  `SqlStore.list_registrations` says why the lookup stays separate.

A change that adds a statement to either path fails here. The fleet is grown with the
bulk seeder, so a cursor walk really goes deep.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Registry

SEEDED = 600
PER_PAGE = 50


def _base(registry: Registry) -> str:
    return f"/accounts/{registry.account_id}/devices/registrations"


async def _count(registry: Registry, client: httpx.AsyncClient, url: str, **kw: Any) -> int:
    """Statements the store ran while serving one request (the response is returned too)."""
    db = registry.store.db
    before = db.query_count
    response = await client.get(url, **kw)
    spent = db.query_count - before
    _count.last = response  # type: ignore[attr-defined]
    return spent


async def test_get_with_policy_is_one_statement(api: httpx.AsyncClient, registry: Registry) -> None:
    reg = registry.fleet.registrations[0]
    url = f"{_base(registry)}/{reg.id}"

    assert await _count(registry, api, url, params={"include": "policy"}) == 1
    response = _count.last  # type: ignore[attr-defined]
    assert response.status_code == 200
    assert response.json()["result"]["id"] == reg.id
    assert response.json()["result"]["policy"]["id"] == reg.policy_id


async def test_get_outcomes_other_than_found_are_one_statement_too(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, registry: Registry
) -> None:
    reg = registry.fleet.registrations[0]
    missing = "00000000-0000-4000-8000-000000000000"

    assert await _count(registry, api, f"{_base(registry)}/{missing}") == 1
    assert _count.last.status_code == 404  # type: ignore[attr-defined]

    wrong = {"Authorization": "Bearer " + "x" * 40}
    assert await _count(registry, anon, f"{_base(registry)}/{reg.id}", headers=wrong) == 1
    assert _count.last.status_code in (401, 403)  # type: ignore[attr-defined]


async def test_list_pages_are_two_statements_at_any_depth(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    await registry.store.seeding.seed(registry.account_id, SEEDED, seed=3)
    url = _base(registry)

    cursor = ""
    pages = 0
    seen: list[str] = []
    while True:
        params = {"per_page": PER_PAGE, "cursor": cursor} if cursor else {"per_page": PER_PAGE}
        assert await _count(registry, api, url, params=params) == 2
        body = _count.last.json()  # type: ignore[attr-defined]
        seen.extend(item["id"] for item in body["result"])
        pages += 1
        cursor = body["result_info"]["cursor"]
        if not cursor:
            break

    # The walk went deep, and no registration came twice.
    assert pages >= 10
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize("sort_by", [None, "user.email", "last_seen_at"])
async def test_filtered_list_page_is_two_statements(
    api: httpx.AsyncClient, registry: Registry, sort_by: str | None
) -> None:
    user = next(r.user_id for r in registry.fleet.registrations if r.user_id)
    params: dict[str, Any] = {"user.id": user, "per_page": 5}
    if sort_by:
        params["sort_by"] = sort_by

    assert await _count(registry, api, _base(registry), params=params) == 2
    body = _count.last.json()  # type: ignore[attr-defined]
    assert body["result"], "the filter should match the user's registrations"
    assert {item["user"]["id"] for item in body["result"]} == {user}
