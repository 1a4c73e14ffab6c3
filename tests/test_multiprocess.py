"""Several server processes on one registry.

- `serve --workers N` runs N worker processes behind one port, each with its own store,
  on either engine.
- Two servers on different ports against one PostgreSQL database are one registry: what
  one writes the other reads at once, and 200 racing bulk calls split across them leave a
  consistent registry in a state some serial order of the calls explains.
- Servers starting at the same moment on a fresh database migrate it once and
  initialise it once.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import cli
from tests.consistency import (
    Call,
    assert_deleted,
    find_serial_order,
    random_calls,
    registry_state,
    revoked_map,
    send_call,
)
from tests.processes import ServerProcess, running, start

pytestmark = pytest.mark.server


def _init(database: str) -> tuple[str, str]:
    """`warp-registry init --json`; returns (account id, token)."""
    done = cli("init", "--json", "--database", database)
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    return created["account_id"], created["api_token"]


def _wait_for_workers(server: ServerProcess, count: int) -> list[int]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        workers = server.worker_pids()
        if len(workers) >= count:
            return workers
        time.sleep(0.1)
    raise AssertionError(f"expected {count} workers, found {server.worker_pids()}")


async def _connected_workers(database: str, workers: list[int]) -> int:
    """How many of the workers hold the database open (PostgreSQL: connections to it)."""
    if database.startswith("postgresql"):
        conn = await asyncpg.connect(database)
        try:
            count = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await conn.close()
        return min(int(count), len(workers))

    path = str(Path(database).resolve())
    return sum(
        any(str(fd.resolve()) == path for fd in Path(f"/proc/{pid}/fd").iterdir())
        for pid in workers
    )


async def _wait_for(measure: Callable[[], Awaitable[int]], wanted: int) -> None:
    deadline = time.monotonic() + 30
    while (found := await measure()) < wanted:
        assert time.monotonic() < deadline, f"{found} of {wanted}"
        await asyncio.sleep(0.1)


async def _race(clients: list[httpx.AsyncClient], account_id: str, calls: list[Call]) -> None:
    """Send every call at once, alternating between the clients; all must succeed."""
    responses = await asyncio.gather(
        *(send_call(clients[n % len(clients)], account_id, call) for n, call in enumerate(calls))
    )
    failed = [(r.status_code, r.text) for r in responses if r.status_code != 200]
    assert not failed, failed[:3]
    assert all(r.json()["success"] is True for r in responses)


async def _assert_serialisable(
    before: dict[str, bool], calls: list[Call], client: httpx.AsyncClient, account_id: str
) -> dict[str, bool | None]:
    after = revoked_map(await registry_state(client, account_id))
    final: dict[str, bool | None] = {i: after.get(i) for i in before}
    gone = [i for i, state in final.items() if state is None]
    await assert_deleted(client, account_id, gone)
    assert find_serial_order(before, calls, final) is not None, "no serial order explains it"
    return final


async def test_workers_serve_one_port(database_url: str, tmp_path: Path) -> None:
    account_id, token = _init(database_url)
    log = tmp_path / "server.log"
    with running(database_url, "--workers", "2", log_path=log) as server:
        workers = _wait_for_workers(server, 2)
        # Each worker opened the database itself: two processes, one registry.
        await _wait_for(lambda: _connected_workers(database_url, workers), 2)

        async with server.client(token) as client:
            before = revoked_map(await registry_state(client, account_id))
            calls = random_calls(
                random.Random(11), sorted(before), 100, most_ids=8, delete_share=0.03
            )
            await _race([client], account_id, calls)
            await _assert_serialisable(before, calls, client, account_id)
    assert "database is locked" not in log.read_text()


@pytest.mark.postgres
async def test_two_servers_see_each_others_writes_at_once(
    postgres_url: str, tmp_path: Path
) -> None:
    account_id, token = _init(postgres_url)
    with (
        running(postgres_url, log_path=tmp_path / "first.log") as first,
        running(postgres_url, log_path=tmp_path / "second.log") as second,
    ):
        async with first.client(token) as one, second.client(token) as two:
            state = revoked_map(await registry_state(two, account_id))
            batch = sorted(i for i, revoked in state.items() if not revoked)[:10]

            response = await send_call(one, account_id, Call("revoke", tuple(batch)))
            assert response.status_code == 200, response.text
            seen = await registry_state(two, account_id, fetch=batch)
            assert all(seen[i]["revoked_at"] is not None for i in batch)

            response = await send_call(two, account_id, Call("unrevoke", tuple(batch[:5])))
            assert response.status_code == 200, response.text
            seen = await registry_state(one, account_id, fetch=batch)
            assert [seen[i]["revoked_at"] is None for i in batch] == [True] * 5 + [False] * 5

            response = await send_call(one, account_id, Call("delete", (batch[0],)))
            assert response.status_code == 200, response.text
            await assert_deleted(two, account_id, [batch[0]])
            assert batch[0] not in await registry_state(two, account_id, fetch=[])


@pytest.mark.postgres
async def test_200_racing_calls_across_two_servers_stay_consistent(
    postgres_url: str, tmp_path: Path
) -> None:
    account_id, token = _init(postgres_url)
    with (
        running(postgres_url, log_path=tmp_path / "first.log") as first,
        running(postgres_url, log_path=tmp_path / "second.log") as second,
    ):
        async with first.client(token) as one, second.client(token) as two:
            before = revoked_map(await registry_state(one, account_id))
            calls = random_calls(
                random.Random(4), sorted(before), 200, most_ids=10, delete_share=0.05
            )
            await _race([one, two], account_id, calls)

            final = await _assert_serialisable(before, calls, one, account_id)
            # Both servers read the same registry.
            through_one = await registry_state(one, account_id, fetch=[])
            through_two = await registry_state(two, account_id)
            assert through_one == through_two
            assert {i for i, s in final.items() if s is not None} == set(through_two)


async def test_servers_starting_together_migrate_and_initialise_once(
    bare_database_url: str, tmp_path: Path
) -> None:
    logs = [tmp_path / f"server{n}.log" for n in range(3)]
    started = await asyncio.gather(
        *(asyncio.to_thread(start, bare_database_url, log_path=log) for log in logs),
        return_exceptions=True,
    )
    servers = [s for s in started if isinstance(s, ServerProcess)]
    try:
        assert len(servers) == len(logs), [s for s in started if isinstance(s, BaseException)]
        banners = [log.read_text() for log in logs]
        assert sum("initialised a new registry" in text for text in banners) == 1
        account_lines = {line for text in banners for line in text.splitlines()
                         if line.startswith(("  account id", "accounts:"))}  # fmt: skip
        assert len({line.split()[-1] for line in account_lines}) == 1, banners
    finally:
        for server in servers:
            server.stop()
