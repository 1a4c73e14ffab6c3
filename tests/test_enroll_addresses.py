"""Virtual addresses at enrollment, on both engines (docs/enrollment.md "Virtual IPs").

Addresses go upwards from the account's marks (`accounts.next_ipv4_host`/`next_ipv6_host`);
a freed address waits until the pool wraps, then the lowest gap is reused; a NULL mark
heals itself with one full read; and with a known mark, enrollment reads a few candidate
rows, never every address of the account.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx
import pytest
from cloudflare import AsyncCloudflare

from tests.conftest import Registry
from tests.enroll_support import AccessRole, assert_error, row_counts
from tests.warp_test_client import WarpTestClient, wireguard_key_pair
from warp_registry.control import actions
from warp_registry.domain.enrollment import PROBE_BATCH, VIRTUAL_IPV4_NETWORK, AddressPool
from warp_registry.store.database import Row, Transaction
from warp_registry.store.enrollment import set_address_marks
from warp_registry.store.sql_store import SqlStore

pytest_plugins = ["tests.enroll_fixtures"]

V4_BASE = int(VIRTUAL_IPV4_NETWORK.network_address)


async def _enroll(warp_http: httpx.AsyncClient, access: AccessRole, email: str) -> Any:
    """A new device enrolls; returns the registration."""
    return await WarpTestClient(warp_http).register_wireguard(access.identity(email))


def _hosts(reg: Any) -> tuple[int, int]:
    """(IPv4 host, IPv6 host) of an enrolled registration."""
    addresses = reg.result["config"]["interface"]["addresses"]
    v6 = ipaddress.IPv6Address(addresses["v6"])
    return int(ipaddress.IPv4Address(addresses["v4"])) - V4_BASE, int(v6) & (2**64 - 1)


async def _marks(store: SqlStore, account_id: str) -> tuple[Any, Any]:
    row = await store.db.fetch_one(
        "SELECT next_ipv4_host, next_ipv6_host FROM accounts WHERE id = ?", (account_id,)
    )
    assert row is not None
    return row[0], row[1]


async def _set_marks(store: SqlStore, account_id: str, v4: int | None, v6: int | None) -> None:
    async def work(tx: Transaction) -> None:
        await set_address_marks(tx, account_id, v4, v6)

    await store.db.write(work)


async def _delete(sdk: AsyncCloudflare, registry: Registry, reg: Any) -> None:
    await sdk.zero_trust.devices.registrations.delete(reg.id, account_id=registry.account_id)


async def test_addresses_go_upwards_and_the_marks_follow(
    warp_http: httpx.AsyncClient, access: AccessRole, registry: Registry
) -> None:
    highest = max(
        int(ipaddress.IPv4Address(r.virtual_ipv4)) - V4_BASE
        for r in registry.fleet.registrations
        if r.virtual_ipv4
    )
    hosts = [_hosts(await _enroll(warp_http, access, f"u{i}@example.com")) for i in range(4)]
    # The demo fleet leaves the marks unknown: the first enrollment starts after it.
    assert hosts == [(highest + 1 + i, highest + 1 + i) for i in range(4)]
    assert await _marks(registry.store, registry.account_id) == (highest + 5, highest + 5)


async def test_each_family_has_its_own_mark(
    warp_http: httpx.AsyncClient, access: AccessRole, registry: Registry
) -> None:
    await _set_marks(registry.store, registry.account_id, 5000, 70_000)
    assert _hosts(await _enroll(warp_http, access, "a@example.com")) == (5000, 70_000)
    assert _hosts(await _enroll(warp_http, access, "b@example.com")) == (5001, 70_001)
    assert await _marks(registry.store, registry.account_id) == (5002, 70_002)


async def test_a_freed_address_waits_for_the_wrap_which_takes_the_lowest_gaps(
    warp_http: httpx.AsyncClient,
    access: AccessRole,
    sdk: AsyncCloudflare,
    registry: Registry,
) -> None:
    regs = [await _enroll(warp_http, access, f"u{i}@example.com") for i in range(4)]
    hosts = [_hosts(reg)[0] for reg in regs]
    await _delete(sdk, registry, regs[2])
    await _delete(sdk, registry, regs[0])

    # Not reused while the pool has room above the mark.
    after = _hosts(await _enroll(warp_http, access, "next@example.com"))[0]
    assert after == hosts[3] + 1

    # At the top, the pool wraps: the lowest gap first, then the next one up.
    registry.store.enrollment.pool = AddressPool(last_host=after)
    wrapped = [await _enroll(warp_http, access, f"w{i}@example.com") for i in range(2)]
    assert [_hosts(reg) for reg in wrapped] == [_hosts(regs[0]), _hosts(regs[2])]
    assert await _marks(registry.store, registry.account_id) == (hosts[2] + 1,) * 2

    # Full: the existing error, and nothing written.
    before = await row_counts(registry.store)
    _, key = wireguard_key_pair()
    response = await WarpTestClient(warp_http).post_reg(
        access.identity("late@example.com"), {"key": key}
    )
    error = assert_error(response, 409, 1030)
    assert "pool" in error["message"]
    assert await row_counts(registry.store) == before
    assert await _marks(registry.store, registry.account_id) == (hosts[2] + 1,) * 2


async def test_an_unknown_mark_heals_from_the_highest_address_in_use(
    warp_http: httpx.AsyncClient,
    access: AccessRole,
    sdk: AsyncCloudflare,
    registry: Registry,
) -> None:
    first = await _enroll(warp_http, access, "a@example.com")
    second = await _enroll(warp_http, access, "b@example.com")
    await _delete(sdk, registry, second)
    # As after an import that leaves the marks out, or a bulk seed.
    await registry.store.db.write(
        lambda tx: tx.execute(
            "UPDATE accounts SET next_ipv4_host = NULL, next_ipv6_host = NULL WHERE id = ?",
            (registry.account_id,),
        )
    )

    healed = _hosts(await _enroll(warp_http, access, "c@example.com"))
    assert healed == (_hosts(first)[0] + 1, _hosts(first)[1] + 1)  # the highest in use + 1
    assert await _marks(registry.store, registry.account_id) == (healed[0] + 1, healed[1] + 1)


async def test_export_and_import_carry_the_marks(
    warp_http: httpx.AsyncClient, access: AccessRole, registry: Registry
) -> None:
    await _set_marks(registry.store, registry.account_id, 7000, 8000)
    exported = await actions.export_document(registry.store)
    await registry.store.control.wipe()
    await actions.import_document(registry.store, exported)

    assert await _marks(registry.store, registry.account_id) == (7000, 8000)
    assert await actions.export_document(registry.store) == exported
    assert _hosts(await _enroll(warp_http, access, "a@example.com")) == (7000, 8000)


# --- the fast path reads a few rows, whatever the account's size ---

SEEDED = 400
MANY = 10  # rows: far below the account's hundreds of registrations
_FULL_READ = re.compile(r"FROM registrations WHERE account_id = \?\s*$")


class _Recorder:
    """Every statement run through `db.write` transactions, with the rows it returned."""

    def __init__(self, store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.statements: list[tuple[str, int]] = []
        original = store.db.write

        async def write(work: Callable[[Transaction], Awaitable[Any]]) -> Any:
            return await original(lambda tx: work(_RecordingTransaction(tx, self.statements)))

        monkeypatch.setattr(store.db, "write", write)

    def address_reads(self) -> list[tuple[str, int]]:
        return [(sql, rows) for sql, rows in self.statements if "virtual_ipv" in sql
                and sql.lstrip().startswith("SELECT") and "JOIN" not in sql]  # fmt: skip


class _RecordingTransaction(Transaction):
    def __init__(self, inner: Transaction, log: list[tuple[str, int]]) -> None:
        self.inner = inner
        self.log = log

    async def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row = await self.inner.fetch_one(sql, params)
        self.log.append((sql, 0 if row is None else 1))
        return row

    async def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        rows = await self.inner.fetch_all(sql, params)
        self.log.append((sql, len(rows)))
        return rows

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        changed = await self.inner.execute(sql, params)
        self.log.append((sql, 0))
        return changed

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self.inner.execute_many(sql, rows)
        self.log.append((sql, 0))


async def test_with_a_known_mark_enrollment_never_reads_every_address(
    warp_http: httpx.AsyncClient,
    access: AccessRole,
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await registry.store.seeding.seed(registry.account_id, SEEDED, seed=3)
    await _set_marks(registry.store, registry.account_id, None, None)
    recorder = _Recorder(registry.store, monkeypatch)

    # Unknown marks: one full read per family (this is what the fast path avoids)...
    healing = await _enroll(warp_http, access, "a@example.com")
    full = [(sql, rows) for sql, rows in recorder.address_reads() if _FULL_READ.search(sql)]
    assert len(full) == 2 and all(rows > SEEDED for _, rows in full)

    # ...after which the marks are known, and an enrollment probes a few candidates.
    recorder.statements.clear()
    fast = await _enroll(warp_http, access, "b@example.com")
    assert _hosts(fast) == (_hosts(healing)[0] + 1, _hosts(healing)[1] + 1)
    reads = recorder.address_reads()
    assert len(reads) == 2  # one probe per family, both answered "free" at once
    assert not [sql for sql, _ in reads if _FULL_READ.search(sql)]
    assert [rows for _, rows in reads] == [0, 0]
    assert max(rows for _, rows in recorder.statements) <= MANY  # nothing else grows either


async def test_probing_past_taken_candidates_stays_small(
    warp_http: httpx.AsyncClient,
    access: AccessRole,
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A mark pointing into used addresses costs a few probe batches, each bounded by the
    batch size, not a full read."""
    await registry.store.seeding.seed(registry.account_id, SEEDED, seed=3)
    used = await _used_v4_hosts(registry)
    start = max(used) - PROBE_BATCH - 8
    expected = min(h for h in range(start, max(used) + 2) if h not in used)
    assert expected - start > PROBE_BATCH  # the first batch is all taken
    await _set_marks(registry.store, registry.account_id, start, 900_000)
    recorder = _Recorder(registry.store, monkeypatch)

    reg = await _enroll(warp_http, access, "a@example.com")
    assert _hosts(reg) == (expected, 900_000)
    reads = recorder.address_reads()
    assert not [sql for sql, _ in reads if _FULL_READ.search(sql)]
    assert len(reads) == 3  # two IPv4 batches, one IPv6
    assert max(rows for _, rows in reads) == PROBE_BATCH  # the first batch, all taken
    assert max(rows for _, rows in recorder.statements) <= PROBE_BATCH


async def _used_v4_hosts(registry: Registry) -> set[int]:
    rows = await registry.store.db.fetch_all(
        "SELECT virtual_ipv4 FROM registrations WHERE account_id = ?", (registry.account_id,)
    )
    return {int(ipaddress.IPv4Address(r[0])) - V4_BASE for r in rows if r[0]}
