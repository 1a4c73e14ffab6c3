"""All SQL of physical devices and of the legacy v1 `/devices` endpoints.

`DeviceStore` is reached as `SqlStore.devices`. Its methods trust their caller to have
checked the credential (the handlers do, with `SqlStore.access`), so a refused caller
never reaches a device row.

Each device row carries, besides what the client told about the machine, a few columns
kept for the list (migration 3): its count of active registrations, and NOT NULL sort
keys for the facts that may be unknown (client version, last seen time, last seen user's
email). They let every sort order page as one index range on both engines. They are
derived data: `refresh_devices` recomputes them from the rows they come from, and every
write that changes a device's registrations or last-seen facts calls it in the same
transaction (this module, `SqlStore`'s registration writes, enrollment), so no reader
ever sees them out of step.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from warp_registry.clock import now_us
from warp_registry.domain.devices import (
    NEVER_SEEN,
    DeviceFilters,
    DeviceListQuery,
    LastSeenRegistration,
    LegacyDevice,
    PhysicalDevice,
    UserSummary,
)
from warp_registry.domain.models import PolicySummary
from warp_registry.domain.records import FleetRecords
from warp_registry.store.database import Database, Row, Transaction
from warp_registry.store.list_sql import keyset_page, like_pattern, marks, search_clause
from warp_registry.store.schema import render

# What `device_from_row` reads, in order. `u`, `lr` and `lp` may be absent: a device
# never seen, seen last by a service token, or seen through a registration since deleted.
DEVICE_COLUMNS = """
    d.id, d.account_id, d.name, d.created_at, d.updated_at, d.last_seen_at,
    d.active_registrations, d.tags, d.client_version, d.device_type, d.hardware_id,
    d.mac_address, d.manufacturer, d.model, d.os_version, d.os_version_extra,
    d.serial_number, d.public_ip, u.id, u.email, u.name,
    lr.id, lr.policy_id, COALESCE(lp.name, lr.policy_name), lp.is_default, lp.id,
    lr.policy_assigned_at, d.sort_client_version, d.sort_last_seen_at, d.sort_last_seen_email
"""
DEVICE_JOINS = """
    LEFT JOIN users u ON u.id = d.last_seen_user_id
    LEFT JOIN registrations lr ON lr.id = d.last_seen_registration_id
    LEFT JOIN device_profiles lp ON lp.id = lr.policy_id
"""

# The derived columns of a device, recomputed from their sources. The email is lowered
# by `lower()`, which folds ASCII letters only on both engines (users.email has the "C"
# collation on PostgreSQL), the way the `last_seen_user.email` filter is folded.
_ACTIVE_COUNT = """
    active_registrations = (SELECT COUNT(*) FROM registrations r
        WHERE r.device_id = devices.id AND r.revoked_at IS NULL)
"""
_DERIVED_COLUMNS = f"""
    {_ACTIVE_COUNT},
    sort_client_version = COALESCE(client_version, ''),
    sort_last_seen_at = COALESCE(last_seen_at, {NEVER_SEEN}),
    sort_last_seen_email = COALESCE((SELECT lower(u.email) FROM users u
        WHERE u.id = devices.last_seen_user_id), '')
"""

_LEGACY_COLUMNS = """
    r.id, r.device_id, r.account_id, a.name, r.created_at, r.updated_at, r.last_seen_at,
    r.revoked_at, r.key, r.key_type, r.tunnel_type, r.user_id, r.user_email, r.user_name,
    d.name, d.device_type, d.client_version, d.mac_address, d.manufacturer, d.model,
    d.os_version, d.os_version_extra, d.serial_number, d.public_ip
"""
_LEGACY_FROM = """
    FROM registrations r
    JOIN devices d ON d.id = r.device_id
    JOIN accounts a ON a.id = r.account_id
"""


class DeviceStore:
    """Physical devices, their tags, and the v1 view of registrations, over one Database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- physical devices ---

    async def list_devices(self, account_id: str, query: DeviceListQuery) -> list[PhysicalDevice]:
        """Up to `per_page + 1` devices after the query's cursor, in its sort order."""
        sql, params = build_device_list_sql(account_id, query, self.db.dialect)
        rows = await self.db.fetch_all(sql, params)
        return [device_from_row(row) for row in rows]

    async def get_device(self, account_id: str, device_id: str) -> PhysicalDevice | None:
        row = await self.db.fetch_one(_GET_DEVICE, (device_id, account_id))
        return None if row is None else device_from_row(row)

    async def delete_device(self, account_id: str, device_id: str) -> bool:
        """Delete the device and every registration on it, in one transaction.

        The registrations' virtual IPs go back to the pool with their rows. False (and
        nothing deleted) when the account has no such device.
        """

        async def work(tx: Transaction) -> bool:
            await tx.execute(
                "DELETE FROM registrations WHERE device_id = ? AND account_id = ?",
                (device_id, account_id),
            )
            await tx.execute(
                "DELETE FROM device_tags WHERE device_id IN "
                "(SELECT id FROM devices WHERE id = ? AND account_id = ?)",
                (device_id, account_id),
            )
            deleted = await tx.execute(
                "DELETE FROM devices WHERE id = ? AND account_id = ?", (device_id, account_id)
            )
            return deleted > 0

        return await self.db.write(work)

    async def revoke_device(self, account_id: str, device_id: str) -> bool:
        """Revoke every active registration of the device; False if there is no such device.

        Each gets `revoked_at` = `updated_at` = now; registrations revoked before keep
        their first `revoked_at`. Virtual IPs stay, as for any revoke.
        """

        async def work(tx: Transaction) -> bool:
            if not await _device_exists(tx, account_id, device_id):
                return False
            now = now_us()
            await tx.execute(
                "UPDATE registrations SET revoked_at = ?, updated_at = ? "
                "WHERE device_id = ? AND account_id = ? AND revoked_at IS NULL",
                (now, now, device_id, account_id),
            )
            await refresh_devices(tx, [device_id])
            return True

        return await self.db.write(work)

    async def replace_tags(
        self, account_id: str, device_id: str, tags: dict[str, str] | None
    ) -> PhysicalDevice | None:
        """Replace all tags of the device with `tags` (None: leave them) and return it.

        `updated_at` moves to now whenever tags are given. None when there is no such
        device.
        """

        async def work(tx: Transaction) -> PhysicalDevice | None:
            if not await _device_exists(tx, account_id, device_id):
                return None
            if tags is not None:
                await _write_tags(tx, device_id, tags)
            row = await tx.fetch_one(_GET_DEVICE, (device_id, account_id))
            return None if row is None else device_from_row(row)

        return await self.db.write(work)

    async def out_of_step(self, account_id: str) -> list[str]:
        """Ids of the account's devices whose derived columns differ from their sources.

        Always empty unless a writer forgot `refresh_devices`; the tests check it after
        mixed and concurrent writes, and an operator can run it as a consistency check.
        """
        rows = await self.db.fetch_all(
            f"""SELECT d.id FROM devices d WHERE d.account_id = ? AND (
                d.active_registrations <> (SELECT COUNT(*) FROM registrations r
                    WHERE r.device_id = d.id AND r.revoked_at IS NULL)
                OR d.sort_client_version <> COALESCE(d.client_version, '')
                OR d.sort_last_seen_at <> COALESCE(d.last_seen_at, {NEVER_SEEN})
                OR d.sort_last_seen_email <> COALESCE((SELECT lower(u.email) FROM users u
                    WHERE u.id = d.last_seen_user_id), '')
            ) ORDER BY d.id""",
            (account_id,),
        )
        return [str(row[0]) for row in rows]

    # --- the account setting the v1 endpoints depend on ---

    async def multi_user(self, account_id: str) -> bool | None:
        """Whether the account is in multi-user mode; None if there is no such account."""
        row = await self.db.fetch_one("SELECT multi_user FROM accounts WHERE id = ?", (account_id,))
        return None if row is None else bool(row[0])

    async def set_multi_user(self, account_id: str, enabled: bool) -> bool:
        """Switch multi-user mode on or off; False if there is no such account."""

        async def work(tx: Transaction) -> bool:
            changed = await tx.execute(
                "UPDATE accounts SET multi_user = ? WHERE id = ?", (int(enabled), account_id)
            )
            return changed > 0

        return await self.db.write(work)

    # --- the legacy v1 view: one item per registration ---

    async def legacy_page(
        self, account_id: str, page: int, per_page: int
    ) -> tuple[list[LegacyDevice], int]:
        """One page of registrations by creation (then id), and how many there are.

        Offset paging, as the v1 API pages by number: a deep page costs its offset.
        Revoked registrations are listed too (they carry `revoked_at`).
        """
        rows = await self.db.fetch_all(
            f"SELECT {_LEGACY_COLUMNS} {_LEGACY_FROM} WHERE r.account_id = ? "
            "ORDER BY r.created_at, r.id LIMIT ? OFFSET ?",
            (account_id, per_page, (page - 1) * per_page),
        )
        total = await self.db.fetch_one(
            "SELECT COUNT(*) FROM registrations WHERE account_id = ?", (account_id,)
        )
        return [LegacyDevice(*row) for row in rows], int(total[0]) if total else 0

    async def legacy_device(self, account_id: str, registration_id: str) -> LegacyDevice | None:
        row = await self.db.fetch_one(
            f"SELECT {_LEGACY_COLUMNS} {_LEGACY_FROM} WHERE r.id = ? AND r.account_id = ?",
            (registration_id, account_id),
        )
        return None if row is None else LegacyDevice(*row)


_GET_DEVICE = (
    f"SELECT {DEVICE_COLUMNS} FROM devices d {DEVICE_JOINS} WHERE d.id = ? AND d.account_id = ?"
)


def device_from_row(row: Row) -> PhysicalDevice:
    """Build a PhysicalDevice from a row of `DEVICE_COLUMNS`."""
    (
        device_id, account_id, name, created_at, updated_at, last_seen_at, active, tags,
        client_version, device_type, hardware_id, mac_address, manufacturer, model,
        os_version, os_version_extra, serial_number, public_ip, user_id, user_email,
        user_name, seen_id, policy_id, policy_name, policy_default, live_policy_id,
        policy_assigned_at, sort_client_version, sort_last_seen_at, sort_last_seen_email,
    ) = row  # fmt: skip

    user = None if user_id is None else UserSummary(user_id, user_email, user_name)
    seen = None
    if seen_id is not None:
        policy = None
        if policy_id is not None:
            policy = PolicySummary(
                id=policy_id,
                name=policy_name,
                is_default=bool(policy_default),
                deleted=live_policy_id is None,
                updated_at=policy_assigned_at,
            )
        seen = LastSeenRegistration(seen_id, policy)

    return PhysicalDevice(
        id=device_id,
        account_id=account_id,
        name=name,
        created_at=created_at,
        updated_at=updated_at,
        last_seen_at=last_seen_at,
        active_registrations=active,
        tags=json.loads(tags),
        client_version=client_version,
        device_type=device_type,
        hardware_id=hardware_id,
        mac_address=mac_address,
        manufacturer=manufacturer,
        model=model,
        os_version=os_version,
        os_version_extra=os_version_extra,
        serial_number=serial_number,
        public_ip=public_ip,
        last_seen_user=user,
        last_seen_registration=seen,
        sort_client_version=sort_client_version,
        sort_last_seen_at=sort_last_seen_at,
        sort_last_seen_email=sort_last_seen_email,
    )


# --- keeping the derived columns in step (called by every writer, inside its transaction) ---


async def refresh_devices(tx: Transaction, device_ids: Iterable[str]) -> None:
    """Recompute the derived columns of these devices from their sources.

    Call it after the write, in the same transaction: the count then includes the
    transaction's own changes, and on PostgreSQL two transactions that change one device
    conflict on its row, so one of them is run again and counts afresh. Ids are sorted
    so concurrent refreshes lock rows in one order.
    """
    wanted = sorted(set(device_ids))
    if wanted:
        await tx.execute(
            f"UPDATE devices SET {_DERIVED_COLUMNS} WHERE id IN ({marks(wanted)})", wanted
        )


async def refresh_active_counts(tx: Transaction, device_ids: Iterable[str]) -> None:
    """`refresh_devices` for writers that change only which registrations exist or are
    revoked (revoke, unrevoke, delete): the sort keys come from the device's own row and
    its user, which such a write leaves alone. Setting only the count spares the
    device's five sort-key indexes an entry rewrite each, for every device touched.
    """
    wanted = sorted(set(device_ids))
    if wanted:
        await tx.execute(
            f"UPDATE devices SET {_ACTIVE_COUNT} WHERE id IN ({marks(wanted)})", wanted
        )


async def after_fleet_insert(tx: Transaction, fleet: FleetRecords) -> None:
    """Tag rows for the fleet's devices, then derived columns for every account it touched.

    One set-based UPDATE per account rather than one per device: a benchmark fleet holds
    hundreds of thousands of devices.
    """
    await tx.execute_many(
        "INSERT INTO device_tags (device_id, key, value) VALUES (?, ?, ?)",
        [
            (device.id, key, value)
            for device in fleet.devices
            for key, value in json.loads(device.tags_json).items()
        ],
    )
    accounts = {d.account_id for d in fleet.devices} | {r.account_id for r in fleet.registrations}
    for account_id in sorted(accounts):
        await tx.execute(
            f"UPDATE devices SET {_DERIVED_COLUMNS} WHERE account_id = ?", (account_id,)
        )


async def _device_exists(tx: Transaction, account_id: str, device_id: str) -> bool:
    row = await tx.fetch_one(
        "SELECT 1 FROM devices WHERE id = ? AND account_id = ?", (device_id, account_id)
    )
    return row is not None


async def _write_tags(tx: Transaction, device_id: str, tags: dict[str, str]) -> None:
    """Replace the device's tags: the JSON the API shows and the rows the filter reads."""
    shown = json.dumps(tags, ensure_ascii=False, separators=(",", ":"))
    await tx.execute(
        "UPDATE devices SET tags = ?, updated_at = ? WHERE id = ?", (shown, now_us(), device_id)
    )
    await tx.execute("DELETE FROM device_tags WHERE device_id = ?", (device_id,))
    await tx.execute_many(
        "INSERT INTO device_tags (device_id, key, value) VALUES (?, ?, ?)",
        [(device_id, key, value) for key, value in tags.items()],
    )


# --- the physical-devices list SQL ---

# sort_by -> column. Each has an index (account_id, column, id) (schema.py, migration 3),
# so every sort order, and every keyset position within it, is a range of one index.
_SORT_COLUMNS: dict[str, str] = {
    "name": "d.name",
    "id": "d.id",
    "client_version": "d.sort_client_version",
    "last_seen_user.email": "d.sort_last_seen_email",
    "last_seen_at": "d.sort_last_seen_at",
    "active_registrations": "d.active_registrations",
    "created_at": "d.created_at",
}
_TEXT_SORT_COLUMNS = frozenset(
    {"d.name", "d.id", "d.sort_client_version", "d.sort_last_seen_email"}
)

# Case-insensitive substring search over these columns. `{C}` gives each the "C"
# collation on PostgreSQL (`render`), so `lower()` folds ASCII letters only there too,
# as on SQLite, and the pattern is folded the same way in Python.
_SEARCH_COLUMNS = (
    "d.id", "d.name", "d.serial_number", "d.mac_address", "d.model", "d.manufacturer",
    "d.hardware_id", "d.sort_last_seen_email",
)  # fmt: skip
_SEARCH_CLAUSE = search_clause(f"{c}{{C}}" for c in _SEARCH_COLUMNS)


def build_device_list_sql(
    account_id: str, query: DeviceListQuery, dialect: str
) -> tuple[str, list[Any]]:
    """The one statement that reads a page of devices, and its parameters.

    Public so tests can EXPLAIN exactly what the store runs. It asks for one row more
    than the page holds, so the caller knows whether a next page exists.
    """
    where, params = _device_filters(account_id, query.filters)
    sql, params = keyset_page(
        f"SELECT {DEVICE_COLUMNS} FROM devices d {DEVICE_JOINS}",
        where,
        params,
        query,
        sort_column=_SORT_COLUMNS[query.sort_by],
        id_column="d.id",
        index_leads=_sort_index_leads(query),
        text_columns=_TEXT_SORT_COLUMNS,
    )
    return render(sql, dialect), params


def _sort_index_leads(query: DeviceListQuery) -> bool:
    """Whether the page should be read in sort-index order (else: found, then sorted).

    When the filter names devices (at most 200) or one last-seen user, the matching rows
    are few and have an index of their own (primary key, devices_account_email). SQLite,
    without ANALYZE statistics, would rather walk the whole account in sort order. A
    list sorted by that same email needs neither: its index finds and orders at once.
    """
    filters = query.filters
    if filters.ids:
        return False
    if filters.last_seen_user_email is not None:
        return query.sort_by == "last_seen_user.email"
    return True


def _device_filters(account_id: str, filters: DeviceFilters) -> tuple[list[str], list[Any]]:
    """WHERE conditions (AND-combined) and their parameters for the list filters."""
    where = ["d.account_id = ?"]
    params: list[Any] = [account_id]

    # `+ 0`: a condition with two or three values must not pull SQLite (which has no
    # statistics) onto devices_account_active and a sort of the whole account.
    if filters.active_registrations == "only":
        where.append("d.active_registrations + 0 > 0")
    elif filters.active_registrations == "exclude":
        where.append("d.active_registrations + 0 = 0")

    if filters.ids:
        where.append(f"d.id IN ({marks(filters.ids)})")
        params.extend(filters.ids)
    if filters.has_registration_type is not None:
        where.append(
            "EXISTS (SELECT 1 FROM registrations hr WHERE hr.device_id = d.id "
            "AND hr.revoked_at IS NULL AND hr.registration_type = ?)"
        )
        params.append(filters.has_registration_type)
    if filters.last_seen_user_email is not None:
        where.append("d.sort_last_seen_email = ?")
        params.append(filters.last_seen_user_email)
    if filters.last_seen_policy_id is not None:
        where.append("lr.policy_id = ?")
        params.append(filters.last_seen_policy_id)
    if filters.search is not None:
        where.append(_SEARCH_CLAUSE)
        params.extend([like_pattern(filters.search)] * len(_SEARCH_COLUMNS))
    if filters.seen_after is not None:
        where.append("d.last_seen_at > ?")
        params.append(filters.seen_after)
    if filters.seen_before is not None:
        where.append("d.last_seen_at < ?")
        params.append(filters.seen_before)
    for key, value in filters.tags:
        where.append(
            "EXISTS (SELECT 1 FROM device_tags t WHERE t.device_id = d.id "
            "AND t.key = ? AND t.value = ?)"
        )
        params.extend((key, value))
    return where, params
