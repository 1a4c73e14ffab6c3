"""The control plane under /_warp-registry/: admin token, reset, seed, export/import, clock,
journal. Fault rules and rate limits have their own files."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import Registry
from warp_registry.bootstrap import plan_registry
from warp_registry.clock import format_rfc3339, now_us, parse_rfc3339, set_server_clock
from warp_registry.control import actions
from warp_registry.control.journal import PRUNE_EVERY
from warp_registry.http.app import RegistryApp
from warp_registry.store import sql_store
from warp_registry.store.control import CONTROL_TABLES, DATA_TABLES

DAY_US = 86_400 * 1_000_000


@pytest.fixture(autouse=True)
def _machine_clock() -> Iterator[None]:
    """The server clock is process-wide: every test here leaves it as it found it."""
    yield
    set_server_clock(None, 0)


@pytest.fixture
async def admin_token(registry: Registry) -> str:
    return await actions.rotate_admin_token(registry.store)


@pytest.fixture
async def control(app: RegistryApp, admin_token: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver/_warp-registry",
        headers={"Authorization": f"Bearer {admin_token}"},
    ) as client:
        yield client


def _result(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()["result"]


def _registrations(registry: Registry) -> str:
    return f"/accounts/{registry.account_id}/devices/registrations"


async def _all_ids(api: httpx.AsyncClient, registry: Registry, **params: Any) -> set[str]:
    response = await api.get(_registrations(registry), params={"per_page": 1000, **params})
    assert response.status_code == 200, response.text
    assert not response.json()["result_info"]["cursor"], "the fleet fits one page"
    return {item["id"] for item in response.json()["result"]}


# --- the admin token and API tokens never stand in for each other ---


async def test_the_admin_token_is_no_api_token(
    anon: httpx.AsyncClient, registry: Registry, admin_token: str
) -> None:
    response = await anon.get(
        _registrations(registry), headers={"Authorization": f"Bearer {admin_token}"}
    )
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == 9109


async def test_an_api_token_is_no_admin_token(
    app: RegistryApp, registry: Registry, admin_token: str
) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        as_api = await client.get(
            "/_warp-registry/status", headers={"Authorization": f"Bearer {registry.token}"}
        )
        nothing = await client.get("/_warp-registry/status")
        as_admin = await client.get(
            "/_warp-registry/status", headers={"Authorization": f"Bearer {admin_token}"}
        )
    assert (as_api.status_code, as_api.json()["errors"][0]["code"]) == (403, 1201)
    assert (nothing.status_code, nothing.json()["errors"][0]["code"]) == (401, 1200)
    assert as_admin.status_code == 200
    assert as_admin.json()["result"]["accounts"] == [registry.account_id]


async def test_a_rotated_admin_token_replaces_the_old_one(
    control: httpx.AsyncClient, registry: Registry, admin_token: str
) -> None:
    new = await actions.rotate_admin_token(registry.store)
    assert (await control.get("/status")).status_code == 403
    fresh = await control.get("/status", headers={"Authorization": f"Bearer {new}"})
    assert fresh.status_code == 200


# --- export, reset, import ---


async def test_export_reset_import_gives_byte_identical_exports(
    control: httpx.AsyncClient, api: httpx.AsyncClient, registry: Registry
) -> None:
    before = await control.get("/export")
    assert before.status_code == 200
    document = orjson.loads(before.content)
    assert len(document["tables"]["registrations"]["rows"]) == len(registry.fleet.registrations)

    emptied = _result(await control.post("/reset", json={"demo": False}))
    assert emptied["api_token"] != registry.token
    assert (await api.get(_registrations(registry))).status_code == 403  # old token gone

    imported = _result(await control.post("/import", content=before.content))
    assert imported["accounts"] == [registry.account_id]
    after = await control.get("/export")
    assert after.content == before.content
    # The imported token hashes are the originals: the old token works again.
    assert await _all_ids(api, registry, status="all") == {
        r.id for r in registry.fleet.registrations
    }


async def test_every_table_is_either_exported_or_control_state(registry: Registry) -> None:
    tables = await registry.store.control.data_tables()
    assert tables[: len(DATA_TABLES)] == list(DATA_TABLES), (
        "a new data table: place it in DATA_TABLES (store/control.py) in load order"
    )
    assert not set(tables) & CONTROL_TABLES


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"format": "something-else", "tables": {}}',
        b'{"format": "warp-registry-export", "schema_version": 1, "tables": {}}',
    ],
)
async def test_import_refuses_what_is_not_an_export(
    control: httpx.AsyncClient, body: bytes
) -> None:
    before = (await control.get("/export")).content
    response = await control.post("/import", content=body)
    assert (response.status_code, response.json()["errors"][0]["code"]) == (400, 1203)
    assert (await control.get("/export")).content == before


async def test_import_refuses_bad_tables_and_rows_without_writing(
    control: httpx.AsyncClient,
) -> None:
    before = (await control.get("/export")).content
    good = orjson.loads(before)
    unknown_table = {**good, "tables": {**good["tables"], "nope": {"columns": [], "rows": []}}}
    registrations = good["tables"]["registrations"]
    wide = {**registrations, "rows": [[*registrations["rows"][0], "extra"]]}
    bad_width = {**good, "tables": {**good["tables"], "registrations": wide}}
    orphan = dict(registrations, rows=[list(registrations["rows"][0])])
    orphan["rows"][0][registrations["columns"].index("account_id")] = "0" * 32
    dangling = {**good, "tables": {**good["tables"], "registrations": orphan}}
    for document in (unknown_table, bad_width, dangling):
        response = await control.post("/import", content=orjson.dumps(document))
        assert (response.status_code, response.json()["errors"][0]["code"]) == (400, 1203)
    assert (await control.get("/export")).content == before


async def test_reset_to_the_demo_fleet_and_seed_n_devices(
    control: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    created = _result(await control.post("/reset", json={"seed": 5}))
    _, account_id, _ = plan_registry(5, True, now_us())
    assert created["account_id"] == account_id

    seeded = _result(await control.post("/seed", json={"devices": 7, "seed": 3}))
    small, small_account, _ = plan_registry(3, True, now_us(), actions.demo_size(7))
    assert seeded["account_id"] == small_account
    response = await anon.get(
        f"/accounts/{small_account}/devices/registrations",
        params={"per_page": 1000, "status": "all"},
        headers={"Authorization": f"Bearer {seeded['api_token']}"},
    )
    assert {r["id"] for r in response.json()["result"]} == {r.id for r in small.registrations}
    assert len(small.devices) == 7


async def test_a_large_seeded_fleet_has_unique_users(
    control: httpx.AsyncClient, registry: Registry
) -> None:
    """Names repeat in a fleet of hundreds of users; emails must not (unique per account)."""
    seeded = _result(await control.post("/seed", json={"devices": 600, "seed": 2}))
    emails = await registry.store.db.fetch_all(
        "SELECT email FROM users WHERE account_id = ?", (seeded["account_id"],)
    )
    assert len(emails) == 600 and len({row[0] for row in emails}) == 600


async def test_a_reset_that_fails_leaves_the_registry_as_it_was(
    control: httpx.AsyncClient, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = (await control.get("/export")).content

    async def broken(tx: Any, fleet: Any) -> None:
        await tx.execute("INSERT INTO accounts (id, name, ipv6_prefix, created_at) "
                         "VALUES ('x', 'half', 'fd00', 0)")  # fmt: skip
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(sql_store, "_insert_fleet", broken)
    with pytest.raises(RuntimeError):
        await actions.reset(registry.store, demo_fleet=True, seed=4)
    assert (await control.get("/export")).content == before


async def test_bad_control_bodies_are_400s(control: httpx.AsyncClient) -> None:
    for path, body in (
        ("/reset", {"seed": "one"}),
        ("/reset", {"devices": -1}),
        ("/seed", {}),
        ("/clock/set", {}),
        ("/clock/set", {"at": "yesterday"}),
        ("/clock/advance", {"seconds": "10"}),
        ("/clock/sideways", {}),
    ):
        response = await control.post(path, json=body)
        assert response.status_code == 400, (path, body, response.text)
        assert response.json()["errors"][0]["code"] == 1203
    assert (await control.put("/journal", json={"size": -1})).status_code == 400
    assert (await control.post("/reset", content=b"{")).status_code == 400


# --- the server clock ---


async def test_seen_before_filters_move_with_the_clock(
    control: httpx.AsyncClient, api: httpx.AsyncClient, registry: Registry
) -> None:
    """A stale-device cleanup script: 'not seen for 30 days' by the server's clock."""
    _result(await control.post("/clock/freeze", json={"at": format_rfc3339(registry.anchor_us)}))

    async def stale_by_server_clock() -> set[str]:
        now = parse_rfc3339(_result(await control.get("/clock"))["now"])
        cutoff = now - 30 * DAY_US
        return await _all_ids(api, registry, status="all", seen_before=format_rfc3339(cutoff))

    def expected(now: int) -> set[str]:
        cutoff = now - 30 * DAY_US
        return {r.id for r in registry.fleet.registrations if r.last_seen_at < cutoff}

    today = await stale_by_server_clock()
    assert today == expected(registry.anchor_us)

    advanced = _result(await control.post("/clock/advance", json={"seconds": 20 * 86_400}))
    assert advanced["frozen"] is True
    later = await stale_by_server_clock()
    assert later == expected(registry.anchor_us + 20 * DAY_US)
    assert today < later, "aging the fleet by 20 days makes more registrations stale"


async def test_writes_are_stamped_with_the_server_clock(
    control: httpx.AsyncClient, api: httpx.AsyncClient, registry: Registry
) -> None:
    frozen_at = "2031-05-06T07:08:09.123456Z"
    _result(await control.post("/clock/freeze", json={"at": frozen_at}))
    target = next(r for r in registry.fleet.registrations if r.revoked_at is None)
    revoked = await api.post(f"{_registrations(registry)}/revoke", params={"id": [target.id]})
    assert revoked.status_code == 200, revoked.text
    got = (await api.get(f"{_registrations(registry)}/{target.id}")).json()["result"]
    assert got["revoked_at"] == frozen_at
    assert got["updated_at"] == frozen_at


async def test_clock_set_resume_and_reset(control: httpx.AsyncClient) -> None:
    at = "2040-01-01T00:00:00Z"
    running = _result(await control.post("/clock/set", json={"at": at}))
    assert running["frozen"] is False
    assert parse_rfc3339(running["now"]) >= parse_rfc3339(at)
    assert now_us() >= parse_rfc3339(at)

    frozen = _result(await control.post("/clock/freeze"))
    assert frozen["frozen"] is True
    assert now_us() == parse_rfc3339(frozen["now"])
    resumed = _result(await control.post("/clock/resume"))
    assert resumed["frozen"] is False
    assert now_us() >= parse_rfc3339(frozen["now"])

    machine = _result(await control.post("/clock/reset"))
    assert machine["offset_seconds"] == 0
    assert now_us() < parse_rfc3339(at)


# --- the request journal ---


async def test_the_journal_is_off_by_default(
    control: httpx.AsyncClient, api: httpx.AsyncClient, registry: Registry
) -> None:
    await api.get(_registrations(registry))
    assert _result(await control.get("/journal")) == []


async def test_the_journal_records_masks_and_filters(
    control: httpx.AsyncClient, api: httpx.AsyncClient, registry: Registry
) -> None:
    _result(await control.put("/journal", json={"size": 50}))
    target = registry.fleet.registrations[0].id
    await api.get(f"{_registrations(registry)}/{target}", params={"include": "policy"})
    raw = b'{"name": "laptop", "client_secret": "s3cr3t-value-123", "enabled": tru'
    await api.patch(f"/accounts/{registry.account_id}/devices/policy", content=raw)
    secret_json = b'{"name": "x", "api_token": "abcdefghijklmnop"}'
    await api.patch(f"/accounts/{registry.account_id}/devices/policy", content=secret_json)

    entries = _result(await control.get("/journal"))
    assert [e["method"] for e in entries] == ["PATCH", "PATCH", "GET"]  # newest first
    get = entries[2]
    assert get["path"].endswith(target) and get["query"] == "include=policy"
    assert get["status"] == 200
    assert target in get["response"]["body"]
    tokens = await registry.store.list_tokens()
    assert get["credential_id"] == tokens[0].id
    assert registry.token not in orjson.dumps(entries).decode()
    assert get["request"]["headers"]["authorization"].endswith("…")

    # A malformed body is kept byte for byte; a JSON one has its secret fields masked.
    assert entries[1]["request"]["body"] == raw.decode()
    assert entries[1]["status"] == 400
    masked = orjson.loads(entries[0]["request"]["body"])
    assert masked["name"] == "x" and "abcdefghijklmnop" not in masked["api_token"]

    only_get = _result(await control.get("/journal", params={"method": "get"}))
    assert [e["id"] for e in only_get] == [get["id"]]
    bad = _result(await control.get("/journal", params={"status": "400"}))
    assert [e["id"] for e in bad] == [e["id"] for e in entries if e["status"] == 400]
    assert entries[1]["id"] in {e["id"] for e in bad}
    by_path = _result(await control.get("/journal", params={"path": "/devices/policy"}))
    assert len(by_path) == 2
    newest = _result(await control.get("/journal", params={"limit": "1"}))
    assert [e["id"] for e in newest] == [entries[0]["id"]]


async def test_the_journal_keeps_only_the_newest_entries(
    control: httpx.AsyncClient, api: httpx.AsyncClient, registry: Registry
) -> None:
    _result(await control.put("/journal", json={"size": 3}))
    ids = [r.id for r in registry.fleet.registrations[: PRUNE_EVERY + 5]]
    for registration_id in ids:
        await api.get(f"{_registrations(registry)}/{registration_id}")
    shown = _result(await control.get("/journal", params={"limit": "100"}))
    assert [e["path"].rsplit("/", 1)[1] for e in shown] == ids[::-1][:3]
    stored = await registry.store.control.journal([], 10_000)
    assert len(stored) < 3 + PRUNE_EVERY

    _result(await control.put("/journal", json={"size": 0}))
    assert await registry.store.control.journal([], 10_000) == []


# --- cost while off ---


async def test_with_everything_off_a_get_costs_one_statement(
    control: httpx.AsyncClient, api: httpx.AsyncClient, registry: Registry
) -> None:
    """Journal, faults and rate limit add no store round trip to a request once off."""
    path = f"{_registrations(registry)}/{registry.fleet.registrations[0].id}"
    db = registry.store.db

    async def statements() -> int:
        before = db.query_count
        assert (await api.get(path)).status_code == 200
        return db.query_count - before

    assert await statements() == 1
    _result(await control.put("/journal", json={"size": 10}))
    rule = _result(await control.post("/faults", json={"status": 500, "path": "/nowhere"}))
    assert await statements() > 1  # the journal records the request
    _result(await control.put("/journal", json={"size": 0}))
    _result(await control.delete(f"/faults/{rule['id']}"))
    assert await statements() == 1
