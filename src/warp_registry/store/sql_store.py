"""The registry's store: every SQL statement the service runs lives in this package.

`SqlStore` speaks the domain's language (registrations, tokens, accounts) and runs the
same SQL on SQLite and PostgreSQL through a `Database`. Statements use `?` placeholders;
the PostgreSQL database rewrites them to `$n`.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import astuple
from typing import Any

from warp_registry.clock import now_us
from warp_registry.domain.listing import Filters, ListQuery
from warp_registry.domain.models import Access, ApiToken, PolicySummary, Registration
from warp_registry.domain.records import FleetRecords
from warp_registry.store.control import ControlStore
from warp_registry.store.database import Database, Row, Transaction
from warp_registry.store.devices import (
    DeviceStore,
    after_fleet_insert,
    refresh_active_counts,
)
from warp_registry.store.enrollment import EnrollmentStore
from warp_registry.store.list_sql import keyset_page, like_pattern, marks, search_clause
from warp_registry.store.profiles import ProfileStore
from warp_registry.store.schema import LATEST_VERSION, MIGRATIONS, render
from warp_registry.store.seeding import FleetSeeder

# The columns `_registration` reads, in order. `p` may be absent (deleted profile).
REGISTRATION_COLUMNS = """
    r.id, r.account_id, r.created_at, r.updated_at, r.last_seen_at, r.key, r.key_type,
    r.tunnel_type, r.registration_type, r.device_id, d.name, d.client_version, r.user_id,
    r.user_email, r.user_name, r.revoked_at, r.virtual_ipv4, r.virtual_ipv6,
    r.policy_id, COALESCE(p.name, r.policy_name), p.is_default, p.id, r.policy_assigned_at
"""
REGISTRATION_JOINS = """
    JOIN devices d ON d.id = r.device_id
    LEFT JOIN device_profiles p ON p.id = r.policy_id
"""
_REG_WIDTH = 23

_GET_REGISTRATION_WITH_TOKEN = f"""
    SELECT t.id, t.permission, ta.account_id, {REGISTRATION_COLUMNS}
    FROM api_tokens t
    LEFT JOIN api_token_accounts ta ON ta.token_id = t.id AND ta.account_id = ?
    LEFT JOIN registrations r ON r.id = ? AND r.account_id = ta.account_id
    LEFT JOIN devices d ON d.id = r.device_id
    LEFT JOIN device_profiles p ON p.id = r.policy_id
    WHERE t.token_hash = ? AND t.revoked_at IS NULL
"""

_TOKEN_ACCESS = """
    SELECT t.id, t.permission, ta.account_id
    FROM api_tokens t
    LEFT JOIN api_token_accounts ta ON ta.token_id = t.id AND ta.account_id = ?
    WHERE t.token_hash = ? AND t.revoked_at IS NULL
"""

_ADMIN_ACCESS = """
    SELECT a.id, a.api_key_hash, aa.account_id
    FROM admins a
    LEFT JOIN admin_accounts aa ON aa.admin_id = a.id AND aa.account_id = ?
    WHERE a.email = ? AND a.revoked_at IS NULL
"""

_UNKNOWN = Access(known=False, account_ok=False, permission=None, credential_id=None)


def registration_from_row(row: Row, start: int = 0) -> Registration:
    """Build a Registration from `REGISTRATION_COLUMNS` found at `row[start:]`."""
    (
        reg_id, account_id, created_at, updated_at, last_seen_at, key, key_type,
        tunnel_type, registration_type, device_id, device_name, client_version, user_id,
        user_email, user_name, revoked_at, vip4, vip6,
        policy_id, policy_name, policy_default, live_policy_id, policy_assigned_at,
    ) = row[start:start + _REG_WIDTH]  # fmt: skip

    policy = None
    if policy_id is not None:
        policy = PolicySummary(
            id=policy_id,
            name=policy_name,
            is_default=bool(policy_default),
            deleted=live_policy_id is None,
            updated_at=policy_assigned_at,
        )

    return Registration(
        id=reg_id,
        account_id=account_id,
        created_at=created_at,
        updated_at=updated_at,
        last_seen_at=last_seen_at,
        key=key,
        key_type=key_type,
        tunnel_type=tunnel_type,
        registration_type=registration_type,
        device_id=device_id,
        device_name=device_name,
        device_client_version=client_version,
        user_id=user_id,
        user_email=user_email,
        user_name=user_name,
        revoked_at=revoked_at,
        virtual_ipv4=vip4,
        virtual_ipv6=vip6,
        policy=policy,
    )


class BearerProbe:
    """An API token as presented: only its hash travels further."""

    __slots__ = ("token_hash",)

    def __init__(self, token_hash: str) -> None:
        self.token_hash = token_hash


class GlobalKeyProbe:
    """The legacy X-Auth-Email + X-Auth-Key pair."""

    __slots__ = ("email", "key_hash")

    def __init__(self, email: str, key_hash: str) -> None:
        self.email = email
        self.key_hash = key_hash


Probe = BearerProbe | GlobalKeyProbe


class SqlStore:
    """Domain operations over one Database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.enrollment = EnrollmentStore(db)  # the WARP client API's SQL
        self.devices = DeviceStore(db)  # physical devices and the legacy v1 view
        self.profiles = ProfileStore(db)  # device settings profiles and their assignment
        self.control = ControlStore(db)  # the control plane for testers (docs/control-plane.md)
        self.seeding = FleetSeeder(db)  # bulk seeding (`warp-registry seed`, store/seeding.py)

    # --- lifecycle ---

    async def migrate(self) -> int:
        """Bring the schema to the latest version; safe when several processes start at once.

        Returns the version found before migrating.
        """

        async def apply(tx: Transaction) -> int:
            await tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)"
            )
            row = await tx.fetch_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
            found = int(row[0]) if row else 0
            for version in range(found + 1, LATEST_VERSION + 1):
                for statement in MIGRATIONS[version - 1]:
                    await tx.execute(render(statement, self.db.dialect))
                await tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (version, now_us()),
                )
            return found

        # Exclusive: concurrent migrators (several processes starting) go one at a time.
        return await self.db.write_exclusive(apply)

    async def schema_version(self) -> int:
        row = await self.db.fetch_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        return int(row[0]) if row else 0

    async def is_empty(self) -> bool:
        row = await self.db.fetch_one("SELECT COUNT(*) FROM accounts")
        return row is None or int(row[0]) == 0

    async def close(self) -> None:
        await self.db.close()

    # --- bulk creation ---

    async def insert_fleet(
        self, fleet: FleetRecords, *, require_empty: bool = False, replace: bool = False
    ) -> bool:
        """Write a whole fleet in one transaction.

        With `require_empty`, nothing is written (and False returned) when the registry
        already holds an account; the check and the writes share the transaction. With
        `replace`, the registry is emptied first (`ControlStore.wipe`) in that same
        transaction, so a failed write leaves the old registry in place.
        """
        wipe = await self.control.wiper() if replace else None

        async def insert(tx: Transaction) -> bool:
            if wipe is not None:
                await wipe(tx)
            if require_empty:
                row = await tx.fetch_one("SELECT COUNT(*) FROM accounts")
                if row is not None and int(row[0]) > 0:
                    return False
            await _insert_fleet(tx, fleet)
            return True

        return await self.db.write(insert)

    # --- credentials ---

    async def access(self, probe: Probe, account_id: str) -> Access:
        """What the credential may do on the account (one indexed lookup)."""
        if isinstance(probe, BearerProbe):
            row = await self.db.fetch_one(_TOKEN_ACCESS, (account_id, probe.token_hash))
            if row is None:
                return _UNKNOWN
            return Access(True, row[2] is not None, row[1], row[0])

        row = await self.db.fetch_one(_ADMIN_ACCESS, (account_id, probe.email))
        if row is None or not hmac.compare_digest(row[1], probe.key_hash):
            return _UNKNOWN
        return Access(True, row[2] is not None, "write", row[0])

    async def get_registration(
        self, probe: Probe, account_id: str, registration_id: str
    ) -> tuple[Access, Registration | None]:
        """The access check and the registration, in one query for API tokens."""
        if isinstance(probe, GlobalKeyProbe):
            access = await self.access(probe, account_id)
            if not access.account_ok:
                return access, None
            return access, await self.find_registration(account_id, registration_id)

        row = await self.db.fetch_one(
            _GET_REGISTRATION_WITH_TOKEN, (account_id, registration_id, probe.token_hash)
        )
        if row is None:
            return _UNKNOWN, None

        access = Access(True, row[2] is not None, row[1], row[0])
        registration = registration_from_row(row, 3) if row[3] is not None else None
        return access, registration

    async def find_registration(self, account_id: str, registration_id: str) -> Registration | None:
        row = await self.db.fetch_one(
            f"SELECT {REGISTRATION_COLUMNS} FROM registrations r {REGISTRATION_JOINS} "
            "WHERE r.id = ? AND r.account_id = ?",
            (registration_id, account_id),
        )
        return None if row is None else registration_from_row(row)

    # --- API tokens and global keys ---

    async def create_token(
        self, token_id: str, name: str, token_hash: str, permission: str,
        account_ids: Sequence[str],
    ) -> bool:
        """Store a token; False if one of the accounts does not exist (nothing written)."""

        async def insert(tx: Transaction) -> bool:
            for account_id in account_ids:
                if await tx.fetch_one("SELECT 1 FROM accounts WHERE id = ?", (account_id,)) is None:
                    return False
            await tx.execute(
                "INSERT INTO api_tokens (id, name, token_hash, permission, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (token_id, name, token_hash, permission, now_us()),
            )
            await tx.execute_many(
                "INSERT INTO api_token_accounts (token_id, account_id) VALUES (?, ?)",
                [(token_id, account_id) for account_id in account_ids],
            )
            return True

        return await self.db.write(insert)

    async def list_tokens(self) -> list[ApiToken]:
        rows = await self.db.fetch_all(
            "SELECT t.id, t.name, t.permission, t.created_at, t.revoked_at, ta.account_id "
            "FROM api_tokens t LEFT JOIN api_token_accounts ta ON ta.token_id = t.id "
            "ORDER BY t.created_at, t.id, ta.account_id"
        )
        tokens: dict[str, ApiToken] = {}
        for token_id, name, permission, created_at, revoked_at, account_id in rows:
            previous = tokens.get(token_id)
            accounts = previous.account_ids if previous else ()
            if account_id is not None:
                accounts = (*accounts, account_id)
            tokens[token_id] = ApiToken(
                token_id, name, permission, accounts, created_at, revoked_at
            )
        return list(tokens.values())

    async def revoke_token(self, token_id: str) -> bool:
        """Revoke a live token; False if there is no such live token."""

        async def revoke(tx: Transaction) -> bool:
            changed = await tx.execute(
                "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (now_us(), token_id),
            )
            return changed > 0

        return await self.db.write(revoke)

    async def create_global_key(
        self, admin_id: str, email: str, key_hash: str, account_id: str
    ) -> bool:
        """Give `email` a global key on the account, replacing any key it had."""

        async def upsert(tx: Transaction) -> bool:
            if await tx.fetch_one("SELECT 1 FROM accounts WHERE id = ?", (account_id,)) is None:
                return False
            row = await tx.fetch_one("SELECT id FROM admins WHERE email = ?", (email,))
            # A known email keeps its admin id; assigning `admin_id` here instead would make
            # it local to `upsert` and unbound on the insert branch.
            member_id = admin_id if row is None else row[0]
            if row is None:
                await tx.execute(
                    "INSERT INTO admins (id, email, api_key_hash, created_at) VALUES (?, ?, ?, ?)",
                    (member_id, email, key_hash, now_us()),
                )
            else:
                await tx.execute(
                    "UPDATE admins SET api_key_hash = ?, revoked_at = NULL WHERE id = ?",
                    (key_hash, member_id),
                )
            await tx.execute(
                "INSERT INTO admin_accounts (admin_id, account_id) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING",
                (member_id, account_id),
            )
            return True

        return await self.db.write(upsert)

    async def account_ids(self) -> list[str]:
        rows = await self.db.fetch_all("SELECT id FROM accounts ORDER BY created_at, id")
        return [row[0] for row in rows]

    async def first_registration_id(self, account_id: str) -> str | None:
        row = await self.db.fetch_one(
            "SELECT id FROM registrations WHERE account_id = ? ORDER BY created_at, id LIMIT 1",
            (account_id,),
        )
        return None if row is None else str(row[0])

    # --- registrations: list, delete, revoke, unrevoke, override secrets (issue 3) ---
    #
    # Each method takes the caller's credential and returns the Access it found with the
    # result, like `get_registration`; a write happens only when the credential may write
    # on the account, so the handler can turn the Access into the right error afterwards.

    async def list_registrations(
        self, probe: Probe, account_id: str, query: ListQuery
    ) -> tuple[Access, list[Registration]]:
        """Up to `per_page + 1` registrations after the query's cursor, in its sort order.

        Two round trips: the credential lookup, then the page. Folding the lookup into
        the page query (as the GET does) would put a LEFT JOIN chain in front of every
        list plan and make index choice depend on it on both engines, for a saving of one
        indexed probe on a query that may read a thousand rows. It also means a refused
        caller never reads registrations.
        """
        access = await self.access(probe, account_id)
        if not access.account_ok:
            return access, []

        sql, params = build_list_sql(account_id, query)
        rows = await self.db.fetch_all(sql, params)
        return access, [registration_from_row(row) for row in rows]

    async def delete_registrations(
        self, probe: Probe, account_id: str, registration_ids: Sequence[str]
    ) -> tuple[Access, int]:
        """Delete registrations of the account for good; returns how many existed.

        Their virtual IPs go back to the pool with the rows. Devices are never deleted;
        ids unknown to the account are ignored.
        """
        sql = (
            f"DELETE FROM registrations WHERE account_id = ? AND id IN ({marks(registration_ids)})"
        )
        return await self._write_registrations(
            probe, account_id, lambda now: (sql, (account_id, *registration_ids))
        )

    async def revoke_registrations(
        self, probe: Probe, account_id: str, registration_ids: Sequence[str]
    ) -> tuple[Access, int]:
        """Revoke the active ones among `registration_ids`; returns how many changed.

        `revoked_at` and `updated_at` get the same instant; an already revoked
        registration keeps its first `revoked_at` and `updated_at`. Virtual IPs stay.
        """
        sql = (
            "UPDATE registrations SET revoked_at = ?, updated_at = ? "
            f"WHERE account_id = ? AND id IN ({marks(registration_ids)}) "
            "AND revoked_at IS NULL"
        )
        return await self._write_registrations(
            probe, account_id, lambda now: (sql, (now, now, account_id, *registration_ids))
        )

    async def unrevoke_registrations(
        self, probe: Probe, account_id: str, registration_ids: Sequence[str]
    ) -> tuple[Access, int]:
        """Clear `revoked_at` of the revoked ones among `registration_ids`, bumping `updated_at`."""
        sql = (
            "UPDATE registrations SET revoked_at = NULL, updated_at = ? "
            f"WHERE account_id = ? AND id IN ({marks(registration_ids)}) "
            "AND revoked_at IS NOT NULL"
        )
        return await self._write_registrations(
            probe, account_id, lambda now: (sql, (now, account_id, *registration_ids))
        )

    async def _write_registrations(
        self,
        probe: Probe,
        account_id: str,
        statement: Callable[[int], tuple[str, tuple[Any, ...]]],
    ) -> tuple[Access, int]:
        """Check that the credential may write, then run one statement in one transaction.

        `statement(now)` gives the SQL and its parameters; it is called inside the
        transaction, so a retried write uses a fresh timestamp. The devices of the rows
        it changed get their active-registration counts refreshed in the same transaction
        (store/devices.py); `RETURNING` names them without a statement of its own.
        """
        access = await self.access(probe, account_id)
        if not (access.account_ok and access.can_write):
            return access, 0

        async def run(tx: Transaction) -> int:
            sql, params = statement(now_us())
            changed = await tx.fetch_all(sql + " RETURNING device_id", params)
            await refresh_active_counts(tx, [row[0] for row in changed])
            return len(changed)

        return access, await self.db.write(run)

    async def registration_override_secret(
        self, probe: Probe, account_id: str, registration_id: str
    ) -> tuple[Access, str | None]:
        """The secret override codes derive from; None when there is no such registration."""
        access = await self.access(probe, account_id)
        if not access.account_ok:
            return access, None

        row = await self.db.fetch_one(
            "SELECT override_secret FROM registrations WHERE id = ? AND account_id = ?",
            (registration_id, account_id),
        )
        return access, None if row is None else str(row[0])


async def _insert_fleet(tx: Transaction, fleet: FleetRecords) -> None:
    """Insert every record of the fleet, parents before children."""
    await tx.execute_many(
        "INSERT INTO accounts (id, name, ipv6_prefix, created_at, multi_user) "
        "VALUES (?, ?, ?, ?, ?)",
        [(a.id, a.name, a.ipv6_prefix, a.created_at, int(a.multi_user)) for a in fleet.accounts],
    )
    await tx.execute_many(
        "INSERT INTO device_profiles (id, account_id, is_default, name, match, precedence, "
        "created_at, updated_at, description, enabled, profile_type, settings) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [_flags(astuple(p)) for p in fleet.profiles],
    )
    await tx.execute_many(
        "INSERT INTO users (id, account_id, email, name, groups, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [astuple(u) for u in fleet.users],
    )
    await tx.execute_many(
        "INSERT INTO devices (id, account_id, name, created_at, updated_at, client_version, "
        "device_type, model, manufacturer, serial_number, hardware_id, mac_address, "
        "os_version, os_version_extra, install_id, public_ip, tags, last_seen_at, "
        "last_seen_user_id, last_seen_registration_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [astuple(d) for d in fleet.devices],
    )
    await tx.execute_many(
        "INSERT INTO registrations (id, account_id, device_id, user_id, user_email, user_name, "
        "policy_id, policy_name, policy_assigned_at, key, key_type, tunnel_type, "
        "registration_type, virtual_ipv4, virtual_ipv6, override_secret, created_at, "
        "updated_at, last_seen_at, revoked_at, service_token_id, client_token_hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [astuple(r) for r in fleet.registrations],
    )
    for token in fleet.tokens:
        await tx.execute(
            "INSERT INTO api_tokens (id, name, token_hash, permission, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (token.id, token.name, token.token_hash, token.permission, token.created_at),
        )
        await tx.execute_many(
            "INSERT INTO api_token_accounts (token_id, account_id) VALUES (?, ?)",
            [(token.id, account_id) for account_id in token.account_ids],
        )
    await after_fleet_insert(tx, fleet)  # device tags, counts and sort keys


def _flags(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Booleans become 0/1: both engines store flags as INTEGER."""
    return tuple(int(v) if isinstance(v, bool) else v for v in values)


# --- registrations list SQL (issue 3) ---

# sort_by -> column. Each has an index (account_id, column, id) (see schema.py), so every
# sort order, and every keyset position within it, is a range of one index.
_SORT_COLUMNS: dict[str, str] = {
    "id": "r.id",
    "user.name": "r.user_name",
    "user.email": "r.user_email",
    "last_seen_at": "r.last_seen_at",
    "created_at": "r.created_at",
}

_TEXT_SORT_COLUMNS = frozenset({"r.id", "r.user_name", "r.user_email"})

# Case-insensitive substring search over these columns. The pattern is lowered in Python
# (ASCII letters only), because `lower()` folds only ASCII on SQLite and on the "C"
# collation columns of PostgreSQL: folding the pattern the same way keeps both engines in
# agreement.
_SEARCH_COLUMNS = ("r.id", "r.device_id", "d.name", "r.user_email", "r.user_name")
_SEARCH_CLAUSE = search_clause(_SEARCH_COLUMNS)


def build_list_sql(account_id: str, query: ListQuery) -> tuple[str, list[Any]]:
    """The one statement that reads a page of registrations, and its parameters.

    Public so tests can EXPLAIN exactly what the store runs. The statement asks for one
    row more than the page holds, so the caller knows whether a next page exists.
    """
    where, params = _list_filters(account_id, query.filters)
    return keyset_page(
        f"SELECT {REGISTRATION_COLUMNS} FROM registrations r {REGISTRATION_JOINS}",
        where,
        params,
        query,
        sort_column=_SORT_COLUMNS[query.sort_by],
        id_column="r.id",
        index_leads=_sort_index_leads(query),
        text_columns=_TEXT_SORT_COLUMNS,
    )


def _sort_index_leads(query: ListQuery) -> bool:
    """Whether the page should be read in sort-index order (else: found, then sorted).

    When the filter names ids or users (at most 200 of them) the matching rows are few,
    so the best plan reads them through the id or user index and sorts them. SQLite
    without ANALYZE statistics assumes `account_id = ?` matches about ten rows and would
    rather walk the whole account in sort order. One user sorted by `created_at` needs
    neither: `reg_user` (account_id, user_id, created_at, id) finds and orders at once.
    """
    filters = query.filters
    if filters.ids:
        return False
    if filters.user_ids:
        return len(filters.user_ids) == 1 and query.sort_by == "created_at"
    return True


def _list_filters(account_id: str, filters: Filters) -> tuple[list[str], list[Any]]:
    """WHERE conditions (AND-combined) and their parameters for the list filters."""
    where = ["r.account_id = ?"]
    params: list[Any] = [account_id]

    if filters.status == "active":
        where.append("r.revoked_at IS NULL")
    elif filters.status == "revoked":
        where.append("r.revoked_at IS NOT NULL")

    equalities = (
        ("r.device_id", filters.device_id),
        ("r.policy_id", filters.policy_id),
        ("r.registration_type", filters.registration_type),
    )
    for column, value in equalities:
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)

    for column, values in (("r.id", filters.ids), ("r.user_id", filters.user_ids)):
        if values:
            where.append(f"{column} IN ({marks(values)})")
            params.extend(values)

    if filters.search is not None:
        where.append(_SEARCH_CLAUSE)
        params.extend([like_pattern(filters.search)] * len(_SEARCH_COLUMNS))
    if filters.seen_after is not None:
        where.append("r.last_seen_at > ?")
        params.append(filters.seen_after)
    if filters.seen_before is not None:
        where.append("r.last_seen_at < ?")
        params.append(filters.seen_before)
    return where, params
