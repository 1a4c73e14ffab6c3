"""The control plane's SQL: settings, rate-limit counters, fault rules, journal, dump and load.

Everything here serves testers (docs/control-plane.md), not the Cloudflare API. It lives in
the store, not in process memory, so that every worker process and every server sharing
one PostgreSQL database sees the same clock, the same faults and the same counters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson

from warp_registry.ids import new_uuid
from warp_registry.store.database import Database, Row, Transaction

# Tables of registry data, parents before children: the order rows are loaded in (and
# deleted in, reversed). A table the schema gains later is dumped after these, in name
# order; tests/test_control_transfer.py fails until it is placed here.
DATA_TABLES: tuple[str, ...] = (
    "accounts",
    "api_tokens",
    "api_token_accounts",
    "admins",
    "admin_accounts",
    "users",
    "device_profiles",
    "devices",
    "device_tags",
    "registrations",
    "client_registrations",
    "account_keys",
    "service_tokens",
    "access_jwt_uses",
)

# Not registry data: the control plane's own state and the schema bookkeeping.
CONTROL_TABLES: frozenset[str] = frozenset(
    {"schema_migrations", "control_settings", "rate_limit_counts", "fault_rules", "journal"}
)

VERSION_SETTING = "version"

_LIST_TABLES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    "postgresql": "SELECT table_name FROM information_schema.tables "
    "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
}
_LIST_COLUMNS = {
    "sqlite": "SELECT name FROM pragma_table_info(?) ORDER BY cid",
    "postgresql": "SELECT column_name FROM information_schema.columns "
    "WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
}

JOURNAL_COLUMNS = (
    "id, at, method, path, query, credential_id, status, duration_us, note, "
    "request_headers, request_body, response_body"
)


class ControlStore:
    """SQL for the control plane, over the registry's Database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- settings (admin token hash, clock, journal size, version) ---

    async def settings(self) -> dict[str, str]:
        """Every control setting, name -> value."""
        rows = await self.db.fetch_all("SELECT name, value FROM control_settings")
        return {str(name): str(value) for name, value in rows}

    async def update_settings(self, values: dict[str, str | None]) -> None:
        """Set (or, with None, remove) settings and move the version, in one transaction."""

        async def work(tx: Transaction) -> None:
            await _put_settings(tx, values)
            await _bump_version(tx)

        await self.db.write(work)

    # --- rate-limit counters ---

    async def count_request(self, bucket: str, window_start: int) -> int:
        """Add one request to the bucket's window; returns the window's count so far.

        One upsert, atomic on both engines. The first request of a window also deletes
        the bucket's older windows, so the table holds about one row per credential.
        """

        async def work(tx: Transaction) -> int:
            row = await tx.fetch_one(
                "INSERT INTO rate_limit_counts (bucket, window_start, count) VALUES (?, ?, 1) "
                "ON CONFLICT (bucket, window_start) "
                "DO UPDATE SET count = rate_limit_counts.count + 1 RETURNING count",
                (bucket, window_start),
            )
            count = int(row[0]) if row else 1
            if count == 1:
                await tx.execute(
                    "DELETE FROM rate_limit_counts WHERE bucket = ? AND window_start < ?",
                    (bucket, window_start),
                )
            return count

        return await self.db.write(work)

    async def reset_rate_limits(self) -> None:
        """Forget every count: every credential starts a fresh window."""

        async def work(tx: Transaction) -> None:
            await tx.execute("DELETE FROM rate_limit_counts")

        await self.db.write(work)

    # --- fault rules ---

    async def add_fault(self, created_at: int, spec: dict[str, Any], times: int | None) -> str:
        """Store a rule (`spec` as JSON); returns its new id."""
        rule_id = new_uuid()

        async def work(tx: Transaction) -> None:
            await tx.execute(
                "INSERT INTO fault_rules (id, created_at, spec, remaining) VALUES (?, ?, ?, ?)",
                (rule_id, created_at, orjson.dumps(spec).decode(), times),
            )
            await _bump_version(tx)

        await self.db.write(work)
        return rule_id

    async def faults(self) -> list[tuple[str, int, dict[str, Any], int | None, int, int]]:
        """Every rule: (id, created_at, spec, remaining, seen, fired), oldest first."""
        rows = await self.db.fetch_all(
            "SELECT id, created_at, spec, remaining, seen, fired FROM fault_rules "
            "ORDER BY created_at, id"
        )
        return [
            (str(r[0]), int(r[1]), orjson.loads(r[2]), _opt_int(r[3]), int(r[4]), int(r[5]))
            for r in rows
        ]

    async def delete_fault(self, rule_id: str) -> bool:
        async def work(tx: Transaction) -> bool:
            changed = await tx.execute("DELETE FROM fault_rules WHERE id = ?", (rule_id,))
            await _bump_version(tx)
            return changed > 0

        return await self.db.write(work)

    async def delete_faults(self) -> int:
        async def work(tx: Transaction) -> int:
            changed = await tx.execute("DELETE FROM fault_rules")
            await _bump_version(tx)
            return changed

        return await self.db.write(work)

    async def take_fault(self, rule_id: str) -> bool:
        """Use one of a counted rule's remaining firings; False when none is left."""

        async def work(tx: Transaction) -> bool:
            row = await tx.fetch_one(
                "UPDATE fault_rules SET remaining = remaining - 1, seen = seen + 1, "
                "fired = fired + 1 WHERE id = ? AND remaining > 0 RETURNING remaining",
                (rule_id,),
            )
            return row is not None

        return await self.db.write(work)

    async def see_fault(self, rule_id: str, fired: bool | None = None) -> int | None:
        """Count one matching request; returns its number (1, 2, ...), None if the rule is gone.

        With `fired` True the firing is counted too (an unconditional rule).
        """
        extra = ", fired = fired + 1" if fired else ""

        async def work(tx: Transaction) -> int | None:
            row = await tx.fetch_one(
                f"UPDATE fault_rules SET seen = seen + 1{extra} WHERE id = ? RETURNING seen",
                (rule_id,),
            )
            return None if row is None else int(row[0])

        return await self.db.write(work)

    async def count_firing(self, rule_id: str) -> None:
        async def work(tx: Transaction) -> None:
            await tx.execute("UPDATE fault_rules SET fired = fired + 1 WHERE id = ?", (rule_id,))

        await self.db.write(work)

    # --- the request journal ---

    async def journal_add(self, entry: Sequence[Any], credential: tuple[str, str] | None) -> None:
        """Record one request. `entry` holds JOURNAL_COLUMNS except `credential_id`.

        `credential` is ("token", token hash) or ("email", email): its id is looked up by
        the same statement, so recording costs one round trip.
        """
        lookup = "NULL"
        params = list(entry[:5])
        if credential is not None:
            kind, value = credential
            lookup = (
                "(SELECT id FROM api_tokens WHERE token_hash = ?)"
                if kind == "token"
                else "(SELECT id FROM admins WHERE email = ?)"
            )
            params.append(value)
        params.extend(entry[5:])
        sql = (
            f"INSERT INTO journal ({JOURNAL_COLUMNS}) "
            f"VALUES (?, ?, ?, ?, ?, {lookup}, ?, ?, ?, ?, ?, ?)"
        )

        async def work(tx: Transaction) -> None:
            await tx.execute(sql, params)

        await self.db.write(work)

    async def journal_prune(self, keep: int) -> None:
        """Delete all but the newest `keep` entries."""

        async def work(tx: Transaction) -> None:
            if keep <= 0:
                await tx.execute("DELETE FROM journal")
                return
            row = await tx.fetch_one(
                "SELECT at, id FROM journal ORDER BY at DESC, id DESC LIMIT 1 OFFSET ?",
                (keep - 1,),
            )
            if row is not None:
                await tx.execute(
                    "DELETE FROM journal WHERE at < ? OR (at = ? AND id < ?)",
                    (row[0], row[0], row[1]),
                )

        await self.db.write(work)

    async def journal(self, where: Sequence[tuple[str, Any]], limit: int) -> list[Row]:
        """The newest entries first. `where` holds (condition with one `?`, value) pairs
        built by the control plane from fixed column names."""
        conditions = " AND ".join(condition for condition, _ in where) or "1 = 1"
        rows = await self.db.fetch_all(
            f"SELECT {JOURNAL_COLUMNS} FROM journal WHERE {conditions} "
            "ORDER BY at DESC, id DESC LIMIT ?",
            [value for _, value in where] + [limit],
        )
        return rows

    async def journal_clear(self) -> None:
        await self.journal_prune(0)

    # --- dump, load and wipe of the registry data ---

    async def data_tables(self) -> list[str]:
        """Registry data tables in load order: DATA_TABLES, then any unknown ones by name."""
        rows = await self.db.fetch_all(_LIST_TABLES[self.db.dialect])
        present = {str(row[0]) for row in rows} - CONTROL_TABLES
        known = [table for table in DATA_TABLES if table in present]
        return known + sorted(present - set(DATA_TABLES))

    async def dump(self) -> dict[str, dict[str, Any]]:
        """Every data table: {"columns": [...], "rows": [[...], ...]}, rows in a fixed order."""
        dumped: dict[str, dict[str, Any]] = {}
        for table in await self.data_tables():
            columns = await self._columns(table)
            rows = await self.db.fetch_all(f"SELECT {', '.join(columns)} FROM {table}")
            values = [list(row) for row in rows]
            # Sorting by the serialised row gives one order on both engines, whatever the
            # table's key and collation.
            values.sort(key=orjson.dumps)
            dumped[table] = {"columns": columns, "rows": values}
        return dumped

    async def replace_data(self, tables: dict[str, dict[str, Any]]) -> None:
        """Delete every data row, then load `tables` (a `dump`), in one transaction.

        Raises ValueError, writing nothing, if a table or column is unknown.
        """
        order = await self.data_tables()
        plan: list[tuple[str, list[str], list[list[Any]]]] = []
        for table in order:
            if table not in tables:
                continue
            columns = list(tables[table]["columns"])
            if set(columns) - set(await self._columns(table)):
                raise ValueError(f"unknown columns in table {table}")
            plan.append((table, columns, tables[table]["rows"]))
        unknown = set(tables) - set(order)
        if unknown:
            raise ValueError(f"unknown tables: {', '.join(sorted(unknown))}")

        async def work(tx: Transaction) -> None:
            await _delete_data(tx, order)
            for table, columns, rows in plan:
                marks = ", ".join("?" * len(columns))
                if rows:
                    await tx.execute_many(
                        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
                    )
            await _clear_control(tx)

        try:
            await self.db.write(work)
        except (ConnectionError, OSError):
            raise
        except Exception as exc:
            # A constraint or a value the engine refuses: the transaction rolled back.
            raise ValueError(f"the rows do not load: {type(exc).__name__}: {exc}") from exc

    async def wipe(self) -> None:
        """Delete every data row and the control state of tests (faults, journal, counts,
        clock); the admin token and the journal size stay."""
        wipe = await self.wiper()
        await self.db.write(wipe)

    async def wiper(self) -> Callable[[Transaction], Awaitable[None]]:
        """`wipe`'s statements, for a caller to run first inside its own transaction (a
        reset that writes the new registry in the same transaction)."""
        order = await self.data_tables()

        async def work(tx: Transaction) -> None:
            await _delete_data(tx, order)
            await _clear_control(tx)

        return work

    async def _columns(self, table: str) -> list[str]:
        rows = await self.db.fetch_all(_LIST_COLUMNS[self.db.dialect], (table,))
        return [str(row[0]) for row in rows]


async def _delete_data(tx: Transaction, order: list[str]) -> None:
    for table in reversed(order):
        await tx.execute(f"DELETE FROM {table}")


async def _clear_control(tx: Transaction) -> None:
    """What a reset or an import leaves behind of earlier tests: nothing but the settings
    an operator chose (admin token, journal size)."""
    await tx.execute("DELETE FROM fault_rules")
    await tx.execute("DELETE FROM journal")
    await tx.execute("DELETE FROM rate_limit_counts")
    await tx.execute(
        "DELETE FROM control_settings WHERE name IN ('clock_frozen_us', 'clock_offset_us')"
    )
    await _bump_version(tx)


async def _put_settings(tx: Transaction, values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            await tx.execute("DELETE FROM control_settings WHERE name = ?", (name,))
        else:
            await tx.execute(
                "INSERT INTO control_settings (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )


async def _bump_version(tx: Transaction) -> None:
    await _put_settings(tx, {VERSION_SETTING: new_uuid()})


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)
