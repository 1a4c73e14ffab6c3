"""SIGKILL in the middle of a write leaves the registry as if the write never started or
had fully finished, on both stores, and the registry works after a restart.

Two kinds of write are killed, several times each:
- a seeding transaction (thousands of rows in one transaction, the kind `init` runs),
  killed while the database shows it open;
- a server answering a stream of 200-id bulk revoke / unrevoke / delete calls, killed with
  its workers at a random moment, preferably while a write is open.

A kill aims at an open transaction by watching the database: on PostgreSQL a client
backend with an open transaction, on SQLite the write lock being held. When the
transaction ends before the kill lands, the round still checks all-or-nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests import pg
from tests.conftest import cli
from tests.consistency import (
    Call,
    apply_serially,
    assert_deleted,
    fleet_seed,
    registry_state,
    send_call,
)
from tests.processes import kill_group, running
from warp_registry.store import is_postgres_url, open_store

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 3
ANCHOR_US = 1_760_000_000_000_000

# Builds a large fleet, says "seeding" just before its one transaction, then writes it.
_SEED_CHILD = """
import asyncio, sys
from tests.consistency import fleet_seed
from warp_registry.store import open_store

async def main(database: str, devices: int, anchor_us: int) -> None:
    seed = fleet_seed(5, anchor_us, devices)
    store = await open_store(database)
    print("seeding", flush=True)
    await store.insert_fleet(seed.fleet)
    print("seeded", flush=True)
    await store.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Makes empty (migrated on PostgreSQL) databases on one engine; drops them after."""
    made: list[str] = []

    def make() -> str:
        if request.param == "sqlite":
            url = str(tmp_path / f"registry{len(made)}.db")
        else:
            url = pg.fresh_database_url(f"{request.node.name}_{len(made)}")
        made.append(url)
        return url

    yield make
    if request.param == "postgresql":
        for url in made:
            pg.release_database(url)


# --- watching for an open write transaction ---


async def _write_in_progress(database: str) -> bool:
    """Does another connection hold an open write on `database` right now?"""
    if is_postgres_url(database):
        conn = await asyncpg.connect(database)
        try:
            busy = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
                "AND xact_start IS NOT NULL AND state <> 'idle'"
                " AND query !~* '^(BEGIN|SELECT)'"
            )
            return bool(busy)
        finally:
            await conn.close()
    return await asyncio.to_thread(_sqlite_write_locked, database)


def _sqlite_write_locked(path: str) -> bool:
    """True if a writer holds the lock: our own BEGIN IMMEDIATE would have to wait."""
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()


async def _kill_when_writing(database: str, kill: Callable[[], None], within_s: float) -> bool:
    """Kill as soon as a write is seen open, or after `within_s`; returns whether one was."""
    deadline = time.monotonic() + within_s
    seen = False
    while time.monotonic() < deadline and not seen:
        seen = await _write_in_progress(database)
    kill()
    return seen


# --- a killed seeding transaction ---


async def test_killed_seed_transaction_leaves_all_or_nothing(
    fresh_database: Callable[[], str], tmp_path: Path
) -> None:
    expected_ids = {r.id for r in fleet_seed(5, ANCHOR_US, 6000).fleet.registrations}
    killed_mid_way = 0
    for round_number in range(ROUNDS):
        database = fresh_database()
        child = subprocess.Popen(
            [sys.executable, "-c", _SEED_CHILD, database, "6000", str(ANCHOR_US)],
            cwd=ROOT, stdout=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        # Bounded in time even if the child hangs before it says "seeding".
        watchdog = threading.Timer(60, kill_group, (child.pid,))
        watchdog.start()
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == b"seeding\n"
            await asyncio.sleep(random.Random(round_number).uniform(0, 0.2))

            def kill(process: subprocess.Popen[bytes] = child) -> None:
                kill_group(process.pid)
                process.wait(timeout=10)

            killed_mid_way += await _kill_when_writing(database, kill, within_s=5)
        finally:
            _stop_child(child, watchdog)

        await _assert_whole_or_empty(database, expected_ids, tmp_path / f"r{round_number}.log")
    # The rounds must have tested what they claim at least once.
    assert killed_mid_way >= 1


async def _assert_whole_or_empty(database: str, expected_ids: set[str], log: Path) -> None:
    """After the crash: either every seeded registration is there, or none is."""
    store = await open_store(database)
    try:
        accounts = await store.account_ids()
        present = set()
        for account_id in accounts:
            for registration_id in expected_ids:
                if await store.find_registration(account_id, registration_id) is not None:
                    present.add(registration_id)
    finally:
        await store.close()
    assert present in (set(), expected_ids), f"{len(present)} of {len(expected_ids)} rows"

    # Restart: an empty registry can be initialised, a whole one served.
    if not accounts:
        done = cli("init", "--json", "--database", database)
        assert done.returncode == 0, done.stderr
        created = json.loads(done.stdout)
        account_id, token = created["account_id"], created["api_token"]
    else:
        (account_id,) = accounts
        done = cli("token", "create", "--database", database, "--account", account_id)
        assert done.returncode == 0, done.stderr
        token = done.stdout.strip()

    with running(database, log_path=log) as server:
        async with server.client(token) as client:
            sample = random.Random(1).sample(sorted(expected_ids), 50) if accounts else None
            state = await registry_state(client, account_id, fetch=sample)
            if accounts:
                assert set(state) == expected_ids


def _stop_child(child: subprocess.Popen[bytes], watchdog: threading.Timer) -> None:
    """However a round ended: no watchdog, no process group, no open pipe left behind."""
    watchdog.cancel()
    kill_group(child.pid)
    child.wait(timeout=10)
    if child.stdout is not None:
        child.stdout.close()


# --- a killed `seed --registrations` on a SQLite file it has to itself ---

_BULK_SEED = 100_000


async def test_killed_exclusive_bulk_seed_leaves_the_registry_as_before(tmp_path: Path) -> None:
    """The rollback-journal path (store/seed_exclusive.py), killed in
    its rows phase, its index rebuild or at its end: the hot journal undoes it, and the
    store, which opens the file in WAL mode again, sees the registry as it was (or, if the
    seed finished first, with all of it)."""
    killed_mid_way = journals_left = 0
    for round_number, delay_s in enumerate((0.3, 1.5, 3.0)):
        database = str(tmp_path / f"bulk{round_number}.db")
        done = cli("init", "--json", "--database", database)
        assert done.returncode == 0, done.stderr
        before = await _registration_count(database)
        child = subprocess.Popen(
            [sys.executable, "-m", "warp_registry", "seed", "--registrations",
             str(_BULK_SEED), "--database", database],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        watchdog = threading.Timer(120, kill_group, (child.pid,))
        watchdog.start()
        try:
            deadline = time.monotonic() + 30
            while not _sqlite_write_locked(database) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(delay_s)
            locked = _sqlite_write_locked(database)
            kill_group(child.pid)
            child.wait(timeout=10)
        finally:
            _stop_child(child, watchdog)
        killed_mid_way += locked
        journals_left += Path(database + "-journal").exists()

        after = await _registration_count(database)
        assert after in (before, before + _BULK_SEED), (before, after)
        if locked:
            assert after == before
        with closing(sqlite3.connect(database)) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        # The registry takes the next seed (and a server) as usual.
        again = cli("seed", "--registrations", "1000", "--database", database)
        assert again.returncode == 0, again.stderr
        assert await _registration_count(database) == after + 1000
    assert killed_mid_way >= 1
    assert journals_left >= 1  # the rounds did kill the rollback-journal path


async def _registration_count(database: str) -> int:
    store = await open_store(database)
    try:
        row = await store.db.fetch_one("SELECT COUNT(*) FROM registrations")
    finally:
        await store.close()
    assert row is not None
    return int(row[0])


# --- a server killed during bulk calls ---


async def test_server_killed_during_bulk_calls_leaves_each_call_whole(
    fresh_database: Callable[[], str], tmp_path: Path
) -> None:
    database = fresh_database()
    seed = fleet_seed(9, ANCHOR_US, 1000)
    store = await open_store(database)
    await store.insert_fleet(seed.fleet)
    await store.close()

    ids = sorted(r.id for r in seed.fleet.registrations)
    state: dict[str, bool | None] = {
        r.id: r.revoked_at is not None for r in seed.fleet.registrations
    }
    rng = random.Random(17)
    killed_mid_way = 0
    for round_number in range(ROUNDS):
        alive = [i for i in ids if state[i] is not None]
        chosen = rng.sample(alive, 400)
        toggled, deleted = tuple(chosen[:200]), tuple(chosen[200:])
        calls = [Call("revoke" if n % 2 == 0 else "unrevoke", toggled) for n in range(60)]
        calls.insert(rng.randrange(1, 15), Call("delete", deleted))

        with running(database, log_path=tmp_path / f"round{round_number}.log") as server:
            async with server.client(seed.token) as client:
                sender = asyncio.create_task(_send_until_refused(client, seed.account_id, calls))
                await asyncio.sleep(rng.uniform(0.1, 0.5))
                killed_mid_way += await _kill_when_writing(database, server.kill9, within_s=2)
                acknowledged = await sender

        # The calls answered took effect; the one in flight did wholly or not at all.
        done_state = apply_serially(state, calls[:acknowledged])
        next_state = apply_serially(done_state, calls[acknowledged : acknowledged + 1])
        with running(database, log_path=tmp_path / f"after{round_number}.log") as server:
            async with server.client(seed.token) as client:
                listed = await registry_state(client, seed.account_id, fetch=chosen)
                gone = [i for i in chosen if i not in listed]
                await assert_deleted(client, seed.account_id, gone)

        after = {i: (listed[i]["revoked_at"] is not None if i in listed else None) for i in ids}
        assert after in (done_state, next_state), f"round {round_number}: a call was split"
        state = after
    assert killed_mid_way >= 1


async def _send_until_refused(client: httpx.AsyncClient, account_id: str, calls: list[Call]) -> int:
    """Send the calls one after another until the server dies; returns how many succeeded."""
    for done, call in enumerate(calls):
        try:
            response = await send_call(client, account_id, call)
        except httpx.TransportError:
            return done
        assert response.status_code == 200, response.text
    return len(calls)


def _start_bulk_seed(database: str, count: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "warp_registry", "seed", "--registrations", str(count),
         "--database", database],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(child) for child in task.read_text().split()]
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def _wait_for_seed_write(database: str) -> None:
    deadline = time.monotonic() + 30
    while not _sqlite_write_locked(database) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


async def test_ctrl_c_to_the_seed_process_alone_rolls_back_and_exits(tmp_path: Path) -> None:
    """SIGINT to the seeding process only (a supervisor, `kill -INT`), not its group: the
    statement in flight finishes, the seed rolls back whole, and the process exits."""
    for round_number, delay_s in enumerate((0.2, 1.0, 2.5)):
        database = str(tmp_path / f"int{round_number}.db")
        done = cli("init", "--json", "--database", database)
        assert done.returncode == 0, done.stderr
        before = await _registration_count(database)
        child = _start_bulk_seed(database, _BULK_SEED)
        watchdog = threading.Timer(120, kill_group, (child.pid,))
        watchdog.start()
        try:
            await _wait_for_seed_write(database)
            await asyncio.sleep(delay_s)
            child.send_signal(signal.SIGINT)
            returncode = await asyncio.to_thread(child.wait, 60)
        finally:
            _stop_child(child, watchdog)

        after = await _registration_count(database)
        assert returncode != 0 and after == before, (returncode, before, after)
        with closing(sqlite3.connect(database)) as conn:
            assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            users = conn.execute("SELECT COUNT(*) FROM users").fetchone()
        with closing(sqlite3.connect(database)) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert users is not None
        again = cli("seed", "--registrations", "1000", "--database", database)
        assert again.returncode == 0, again.stderr


async def test_the_row_maker_exits_when_the_seed_process_is_killed(tmp_path: Path) -> None:
    """kill -9 of the seeding process alone: its child, blocked on a full queue, must not
    live on as an orphan holding its rows."""
    database = str(tmp_path / "orphan.db")
    child, watchdog = _seed_new_registry(database, 600_000)
    try:
        await _wait_for_seed_write(database)
        await asyncio.sleep(1.0)
        helpers = _children(child.pid)
        assert helpers, "the seed should have started its row-making child"
        assert await _survivors_of_kill_9(child, helpers) == []
    finally:
        _stop_child(child, watchdog)


async def test_the_row_maker_exits_after_its_last_message_when_the_seed_is_killed(
    tmp_path: Path,
) -> None:
    """A seed small enough that every message fits in the queue: the child has sent them
    all and waits only for its queue's writer thread, which blocks on the pipe while the
    stopped parent reads nothing. kill -9 of the parent must still end the child."""
    database = str(tmp_path / "orphan-done.db")
    child, watchdog = _seed_new_registry(database, 20_000)
    try:
        maker = await _row_maker(child.pid)
        # Once the row-maker is busy making rows, the parent stops reading; the rows
        # take well under the 2 s given to make and queue them all.
        deadline = time.monotonic() + 10
        while _cpu_seconds(maker) < 0.3 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        child.send_signal(signal.SIGSTOP)
        await asyncio.sleep(2.0)
        helpers = _children(child.pid)
        assert maker in helpers
        assert await _survivors_of_kill_9(child, helpers) == []
    finally:
        _stop_child(child, watchdog)


def _seed_new_registry(
    database: str, count: int
) -> tuple[subprocess.Popen[bytes], threading.Timer]:
    """`init` a registry, then start seeding it; a timer kills the seed after 120 s."""
    done = cli("init", "--json", "--database", database)
    assert done.returncode == 0, done.stderr
    child = _start_bulk_seed(database, count)
    watchdog = threading.Timer(120, kill_group, (child.pid,))
    watchdog.start()
    return child, watchdog


async def _survivors_of_kill_9(child: subprocess.Popen[bytes], helpers: list[int]) -> list[bytes]:
    """kill -9 the seed process; the command lines of its helpers still alive 15 s later."""
    child.kill()
    child.wait(timeout=10)
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in helpers) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in helpers if _alive(pid)]


async def _row_maker(seed_pid: int) -> int:
    """The pid of the seed's row-making child (spawned beside multiprocessing's tracker)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for pid in _children(seed_pid):
            try:
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
            except OSError:
                continue
        await asyncio.sleep(0.005)
    raise AssertionError("the seed did not start its row-making child")


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
