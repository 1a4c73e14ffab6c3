"""The registry's store: every SQL statement the service runs lives in this package.

`SqlStore` speaks the domain's language (registrations, tokens, accounts) and runs the
same SQL on SQLite and PostgreSQL through a `Database`. Statements use `?` placeholders;
the PostgreSQL database rewrites them to `$n`.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import astuple
from typing import Any

from warp_registry.clock import now_us
from warp_registry.domain.models import Access, ApiToken, PolicySummary, Registration
from warp_registry.domain.records import FleetRecords
from warp_registry.store.database import Database, Row, Transaction
from warp_registry.store.schema import LATEST_VERSION, MIGRATIONS, render

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

    # --- lifecycle ---

    async def migrate(self) -> int:
        """Bring the schema to the latest version; safe when several processes start at once.

        Returns the version found before migrating.
        """
        await self.db.run_script(
            ["CREATE TABLE IF NOT EXISTS schema_migrations "
             "(version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)"]
        )  # fmt: skip

        async def apply(tx: Transaction) -> int:
            if self.db.dialect == "postgresql":
                # Serialise concurrent migrators; released at commit.
                await tx.fetch_one("SELECT pg_advisory_xact_lock(7436521)")
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

        return await self.db.write(apply)

    async def schema_version(self) -> int:
        row = await self.db.fetch_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        return int(row[0]) if row else 0

    async def is_empty(self) -> bool:
        row = await self.db.fetch_one("SELECT COUNT(*) FROM accounts")
        return row is None or int(row[0]) == 0

    async def close(self) -> None:
        await self.db.close()

    # --- bulk creation ---

    async def insert_fleet(self, fleet: FleetRecords, *, require_empty: bool = False) -> bool:
        """Write a whole fleet in one transaction.

        With `require_empty`, nothing is written (and False returned) when the registry
        already holds an account; the check and the writes share the transaction.
        """

        async def insert(tx: Transaction) -> bool:
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
            if row is None:
                await tx.execute(
                    "INSERT INTO admins (id, email, api_key_hash, created_at) VALUES (?, ?, ?, ?)",
                    (admin_id, email, key_hash, now_us()),
                )
            else:
                admin_id = row[0]
                await tx.execute(
                    "UPDATE admins SET api_key_hash = ?, revoked_at = NULL WHERE id = ?",
                    (key_hash, admin_id),
                )
            await tx.execute(
                "INSERT INTO admin_accounts (admin_id, account_id) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING",
                (admin_id, account_id),
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


def _flags(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Booleans become 0/1: both engines store flags as INTEGER."""
    return tuple(int(v) if isinstance(v, bool) else v for v in values)
