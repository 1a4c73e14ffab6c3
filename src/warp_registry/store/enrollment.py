"""All SQL of the WARP client API: enrollment, the client's own calls, keys, service tokens.

`EnrollmentStore` is reached as `SqlStore.enrollment`. Its writes follow the rules of
`Database.write` (one transaction, retried whole on engine conflicts); an ApiError raised
inside a transaction rolls it back, so a refused enrollment leaves no row behind, and an
Access JWT is only spent by an enrollment that commits.

Virtual addresses are chosen inside the enrollment's transaction by `AddressPool`'s rule:
the first free host at or above the account's mark (`accounts.next_ipv4_host` /
`next_ipv6_host`), wrapping to the lowest free host past the top. The store probes the
mark's first candidates through the unique indexes `reg_vip4`/`reg_vip6`, a few rows
whatever the account's size, and reads every address of the account only when the mark
is unknown (NULL), past the top, or its candidates are all taken; then it moves the mark
past the chosen host. The unique indexes are the final word: if another process took the
same address first, the insert fails with a unique violation and the enrollment runs
again from the start, seeing that address taken.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from warp_registry.clock import now_us
from warp_registry.domain.access_jwt import CLOCK_LEEWAY_S, SigningKey, new_signing_key
from warp_registry.domain.client_view import ClientRegistration
from warp_registry.domain.enrollment import (
    TUNNEL_MASQUE,
    TUNNEL_WIREGUARD,
    AddressPool,
    ClientKey,
    DeviceFacts,
    Enrollee,
    EnrollmentBody,
    HostNumbering,
    RegistrationUpdate,
    ServiceToken,
    UserClaims,
    groups_json,
    key_change,
    new_masque_peer_key,
    new_wireguard_peer_key,
)
from warp_registry.errors import (
    AccessJwtReplayed,
    AccessJwtWrongAccount,
    ClientTokenInvalid,
    PublicKeyInUse,
    RegistrationRevoked,
)
from warp_registry.ids import new_uuid
from warp_registry.store.database import Database, Transaction, is_unique_violation
from warp_registry.store.devices import refresh_devices
from warp_registry.store.profiles import assign_profile

T = TypeVar("T")

ACCESS_KEY = "access"  # account_keys.purpose of the Access JWT signing key
_PEER_KEY_MAKERS = {TUNNEL_WIREGUARD: new_wireguard_peer_key, TUNNEL_MASQUE: new_masque_peer_key}
DEFAULT_PROFILE_NAME = "Default"

# Unique violations other than on virtual addresses cannot repeat on a second run (users
# and tokens are found then), so any unique violation is worth one more attempt.
_MAX_UNIQUE_RETRIES = 20
# Spent JWT ids are cleared once they have expired, every this many enrollments.
_PURGE_EVERY = 32

_SIGNING_KEY_COLUMNS = "account_id, key_id, audience, private_key, public_key"

_CLIENT_VIEW = """
    SELECT r.id, r.account_id, a.name, a.created_at, r.created_at, r.updated_at, r.key,
        r.key_type, r.tunnel_type, r.device_id, d.name, COALESCE(d.model, ''),
        COALESCE(d.serial_number, ''), COALESCE(d.install_id, ''), c.client_type, c.locale,
        c.fcm_token, c.tos, c.warp_enabled, r.virtual_ipv4, r.virtual_ipv6, k.public_key,
        p.id, p.is_default, p.settings
    FROM registrations r
    JOIN accounts a ON a.id = r.account_id
    JOIN devices d ON d.id = r.device_id
    JOIN client_registrations c ON c.registration_id = r.id
    LEFT JOIN account_keys k ON k.account_id = r.account_id
        AND k.purpose = COALESCE(r.tunnel_type, 'wireguard')
    LEFT JOIN device_profiles p ON p.id = r.policy_id
    WHERE r.id = ?
"""

_AUTHENTICATE = """
    SELECT id, revoked_at, device_id, user_id, key, key_type, tunnel_type
    FROM registrations WHERE client_token_hash = ?
"""


class EnrollmentStore:
    """Enrollment and the client API's reads and writes over one Database."""

    def __init__(self, db: Database, pool: AddressPool | None = None) -> None:
        self.db = db
        self.pool = pool or AddressPool()
        # Enrollments of one process go one at a time. Correctness does not need it (the
        # transaction and unique indexes see to that), but every enrollment of an account
        # reads and moves the account's address marks, so concurrent ones would mostly
        # abort each other on PostgreSQL and spend their retries; queued, each commits at
        # once.
        self._enroll_lock = asyncio.Lock()
        self._enrollments = 0

    # --- Access signing keys ---

    async def signing_key(self, account_id: str) -> SigningKey | None:
        """The account's Access signing key, made on first use; None if no such account."""
        found = await self._signing_key_where("account_id = ?", account_id)
        if found is not None:
            return found
        fresh = new_signing_key(account_id)

        async def insert(tx: Transaction) -> SigningKey | None:
            if await tx.fetch_one("SELECT 1 FROM accounts WHERE id = ?", (account_id,)) is None:
                return None
            # Another process may have made one meanwhile: the first one stays.
            await tx.execute(
                f"INSERT INTO account_keys (purpose, created_at, {_SIGNING_KEY_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (ACCESS_KEY, now_us(), fresh.account_id, fresh.key_id, fresh.audience,
                 fresh.private_pem, fresh.public_pem),
            )  # fmt: skip
            row = await tx.fetch_one(
                f"SELECT {_SIGNING_KEY_COLUMNS} FROM account_keys "
                "WHERE account_id = ? AND purpose = ?",
                (account_id, ACCESS_KEY),
            )
            return None if row is None else SigningKey(*row)

        return await self.db.write(insert)

    async def signing_key_by_id(self, key_id: str) -> SigningKey | None:
        """The signing key a JWT header's `kid` names, if this registry holds it."""
        return await self._signing_key_where("key_id = ?", key_id)

    async def signing_keys(self) -> list[SigningKey]:
        """Every account's signing key, for the published JWKS."""
        rows = await self.db.fetch_all(
            f"SELECT {_SIGNING_KEY_COLUMNS} FROM account_keys WHERE purpose = ? "
            "ORDER BY account_id",
            (ACCESS_KEY,),
        )
        return [SigningKey(*row) for row in rows]

    async def _signing_key_where(self, condition: str, value: str) -> SigningKey | None:
        row = await self.db.fetch_one(
            f"SELECT {_SIGNING_KEY_COLUMNS} FROM account_keys WHERE {condition} AND purpose = ?",
            (value, ACCESS_KEY),
        )
        return None if row is None else SigningKey(*row)

    # --- service tokens ---

    async def create_service_token(self, token: ServiceToken) -> bool:
        """Store a service token; False (nothing written) if its account does not exist."""

        async def insert(tx: Transaction) -> bool:
            if await tx.fetch_one("SELECT 1 FROM accounts WHERE id = ?", (token.account_id,)):
                await tx.execute(
                    "INSERT INTO service_tokens (id, account_id, name, client_id, "
                    "secret_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (token.id, token.account_id, token.name, token.client_id,
                     token.secret_hash, now_us()),
                )  # fmt: skip
                return True
            return False

        return await self.db.write(insert)

    async def service_token(self, client_id: str) -> ServiceToken | None:
        """The service token with this client id, revoked or not."""
        row = await self.db.fetch_one(
            "SELECT id, account_id, name, client_id, secret_hash, revoked_at "
            "FROM service_tokens WHERE client_id = ?",
            (client_id,),
        )
        return None if row is None else ServiceToken(*row)

    # --- enrollment ---

    async def enroll(
        self, enrollee: Enrollee, body: EnrollmentBody, device: DeviceFacts, token_hash: str
    ) -> ClientRegistration:
        """Create a registration for a verified enrollee, in one transaction.

        Spends the enrollee's JWT (AccessJwtReplayed if it was spent), creates or updates
        the user from the JWT's claims, finds or creates the device, replaces the same
        user's (or service token's) active registration on that device, checks the key is
        nobody's, and gives the registration the next free addresses of the account
        (`AddressPool` has the rule).
        """
        async with self._enroll_lock:
            self._enrollments += 1
            purge = self._enrollments % _PURGE_EVERY == 1

            async def work(tx: Transaction) -> ClientRegistration:
                return await _enroll(tx, self.pool, enrollee, body, device, token_hash, purge)

            return await self._write_retrying(work)

    async def _write_retrying(self, work: Callable[[Transaction], Awaitable[T]]) -> T:
        """`db.write`, run again when a unique index refused an insert (see the module doc)."""
        for attempt in range(1, _MAX_UNIQUE_RETRIES + 1):
            try:
                return await self.db.write(work)
            except Exception as exc:
                if not is_unique_violation(exc) or attempt == _MAX_UNIQUE_RETRIES:
                    raise
                await asyncio.sleep(0.001 * attempt)
        raise AssertionError("unreachable")

    # --- the client's own calls (Authorization: Bearer <registration token>) ---

    async def seen(self, registration_id: str, token_hash: str) -> ClientRegistration:
        """`GET /reg/{id}`: authenticate, record the call as seen, return the view."""

        async def work(tx: Transaction) -> ClientRegistration:
            found = await _authenticate(tx, registration_id, token_hash)
            now = now_us()
            await _mark_seen(tx, found, now)
            # A check-in is when admin changes to profiles reach the registration.
            await assign_profile(tx, registration_id, now)
            return await _view(tx, registration_id)

        return await self.db.write(work)

    async def update(
        self, registration_id: str, token_hash: str, update: RegistrationUpdate
    ) -> ClientRegistration:
        """`PATCH /reg/{id}`: rotate the key, rename the device, switch WARP on or off."""

        async def work(tx: Transaction) -> ClientRegistration:
            found = await _authenticate(tx, registration_id, token_hash)
            now = now_us()
            await _mark_seen(tx, found, now)
            await _apply_update(tx, found, update, now)
            await assign_profile(tx, registration_id, now)
            return await _view(tx, registration_id)

        return await self.db.write(work)

    async def delete(self, registration_id: str, token_hash: str) -> None:
        """`DELETE /reg/{id}`: the client leaves; its addresses go back to the pool."""

        async def work(tx: Transaction) -> None:
            found = await _authenticate(tx, registration_id, token_hash)
            await tx.execute("DELETE FROM registrations WHERE id = ?", (found.id,))
            # The device was seen, through a registration that no longer exists.
            await tx.execute(
                "UPDATE devices SET last_seen_at = ?, last_seen_user_id = ?, "
                "last_seen_registration_id = NULL WHERE id = ?",
                (now_us(), found.user_id, found.device_id),
            )
            await refresh_devices(tx, [found.device_id])  # one active registration fewer

        await self.db.write(work)


@dataclass(frozen=True, slots=True)
class _Caller:
    """The registration a client token belongs to, as `_authenticate` found it."""

    id: str
    device_id: str
    user_id: str | None
    key: ClientKey | None


async def _authenticate(tx: Transaction, registration_id: str, token_hash: str) -> _Caller:
    """The caller's registration; ClientTokenInvalid or RegistrationRevoked otherwise."""
    row = await tx.fetch_one(_AUTHENTICATE, (token_hash,))
    # A token of another registration is as good as no token for this one.
    if row is None or row[0] != registration_id:
        raise ClientTokenInvalid()
    reg_id, revoked_at, device_id, user_id, key, key_type, tunnel_type = row
    if revoked_at is not None:
        raise RegistrationRevoked()
    current = ClientKey(key, key_type, tunnel_type) if key and key_type and tunnel_type else None
    return _Caller(reg_id, device_id, user_id, current)


async def _mark_seen(tx: Transaction, caller: _Caller, now: int) -> None:
    """A successful client call: the registration and its device were seen now."""
    await tx.execute("UPDATE registrations SET last_seen_at = ? WHERE id = ?", (now, caller.id))
    await _mark_device_seen(tx, caller, now)


async def _mark_device_seen(tx: Transaction, caller: _Caller, now: int) -> None:
    await tx.execute(
        "UPDATE devices SET last_seen_at = ?, last_seen_user_id = ?, "
        "last_seen_registration_id = ? WHERE id = ?",
        (now, caller.user_id, caller.id, caller.device_id),
    )
    # The list's sort keys follow the last-seen facts; at enrollment (the last step of
    # `_enroll`'s writes to the device) the active-registration count changes too.
    await refresh_devices(tx, [caller.device_id])


async def _apply_update(
    tx: Transaction, caller: _Caller, update: RegistrationUpdate, now: int
) -> None:
    new_key = key_change(caller.key, update.key, update.key_type, update.tunnel_type)
    if new_key is not None:
        await _check_key_free(tx, new_key.key, caller.id)
        await tx.execute(
            "UPDATE registrations SET key = ?, key_type = ?, tunnel_type = ?, updated_at = ? "
            "WHERE id = ?",
            (new_key.key, new_key.key_type, new_key.tunnel_type, now, caller.id),
        )
        await _ensure_peer_key(tx, caller.id, new_key.tunnel_type)

    if update.name is not None:
        await tx.execute(
            "UPDATE devices SET name = ?, updated_at = ? WHERE id = ? AND name <> ?",
            (update.name, now, caller.device_id, update.name),
        )
    if update.warp_enabled is not None:
        await tx.execute(
            "UPDATE client_registrations SET warp_enabled = ? WHERE registration_id = ?",
            (int(update.warp_enabled), caller.id),
        )


async def _check_key_free(tx: Transaction, key: str, own_id: str | None) -> None:
    """PublicKeyInUse if any other registration, in any account, holds `key`.

    Revoked registrations still hold their key: unrevoking one must not leave two
    active registrations with the same key.
    """
    row = await tx.fetch_one(
        "SELECT 1 FROM registrations WHERE key = ? AND id <> ? LIMIT 1", (key, own_id or "")
    )
    if row is not None:
        raise PublicKeyInUse()


async def _ensure_peer_key(tx: Transaction, registration_id: str, tunnel_type: str) -> None:
    """Give the registration's account a server key pair for `tunnel_type` if it has none."""
    row = await tx.fetch_one(
        "SELECT r.account_id, k.key_id FROM registrations r LEFT JOIN account_keys k "
        "ON k.account_id = r.account_id AND k.purpose = ? WHERE r.id = ?",
        (tunnel_type, registration_id),
    )
    if row is None or row[1] is not None:
        return
    private, public = _PEER_KEY_MAKERS[tunnel_type]()
    await tx.execute(
        "INSERT INTO account_keys (account_id, purpose, key_id, private_key, public_key, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (row[0], tunnel_type, new_uuid(), private, public, now_us()),
    )


async def _enroll(
    tx: Transaction,
    pool: AddressPool,
    enrollee: Enrollee,
    body: EnrollmentBody,
    device: DeviceFacts,
    token_hash: str,
    purge: bool,
) -> ClientRegistration:
    now = now_us()
    account_id = enrollee.account_id
    if enrollee.jti is not None:
        await _spend_jti(tx, enrollee, now, purge)

    account = await tx.fetch_one(
        "SELECT ipv6_prefix, next_ipv4_host, next_ipv6_host FROM accounts WHERE id = ?",
        (account_id,),
    )
    if account is None:
        raise AccessJwtWrongAccount("The account of this credential no longer exists")

    user_id, user_name = None, ""
    if enrollee.user is not None:
        user_id, user_name = await _upsert_user(tx, account_id, enrollee.user, now)
    device_id, new_device = await _find_or_create_device(tx, account_id, device, now)
    await _replace_previous(tx, device_id, user_id, enrollee.service_token_id)
    if body.key is not None:
        await _check_key_free(tx, body.key.key, None)

    marks = (account[1], account[2])
    ipv4, ipv6 = await _allocate_addresses(tx, pool, account_id, account[0], marks)

    # Outside multi-user mode a registration's id is its device's id (api-semantics §2);
    # later registrations on the device get ids of their own, never reused.
    reg_id = device_id if new_device else new_uuid()
    await _insert_registration(
        tx,
        reg_id,
        enrollee,
        (user_id, user_name),
        device_id,
        body,
        (ipv4, ipv6),
        token_hash,
        now,
    )
    await _mark_device_seen(tx, _Caller(reg_id, device_id, user_id, body.key), now)
    await _ensure_peer_key(tx, reg_id, body.key.tunnel_type if body.key else TUNNEL_WIREGUARD)
    await assign_profile(tx, reg_id, now)  # the default profile, unless a custom one matches
    return await _view(tx, reg_id)


async def set_address_marks(
    tx: Transaction, account_id: str, next_v4: int | None, next_v6: int | None
) -> None:
    """Set the account's address marks: the host numbers enrollment tries first.

    A mark is a host number relative to the network (like FIRST_HOST): the next
    enrollment gets the first free host at or above it (`AddressPool`). None makes the
    mark unknown: the next enrollment reads every address of the account once and starts
    after the highest one in use. For writers of registrations other than enrollment
    (the bulk seeder), inside their own transaction; a mark set below hosts still in use
    is safe (taken hosts are skipped), only slower.
    """
    await tx.execute(
        "UPDATE accounts SET next_ipv4_host = ?, next_ipv6_host = ? WHERE id = ?",
        (next_v4, next_v6, account_id),
    )


async def _allocate_addresses(
    tx: Transaction,
    pool: AddressPool,
    account_id: str,
    ipv6_prefix: str,
    marks: tuple[int | None, int | None],
) -> tuple[str, str]:
    """The registration's (IPv4, IPv6), each the next free host from its family's mark;
    the marks move past them. AddressPoolExhausted when either family is full."""
    v4, v6 = pool.ipv4(), pool.ipv6(ipv6_prefix)
    v4_mark, v6_mark = (None if mark is None else int(mark) for mark in marks)
    v4_host = await _next_host(tx, pool, v4, "virtual_ipv4", account_id, v4_mark)
    v6_host = await _next_host(tx, pool, v6, "virtual_ipv6", account_id, v6_mark)
    await set_address_marks(tx, account_id, v4_host + 1, v6_host + 1)
    return v4.text(v4_host), v6.text(v6_host)


async def _next_host(
    tx: Transaction,
    pool: AddressPool,
    numbering: HostNumbering,
    column: str,  # virtual_ipv4 or virtual_ipv6, never user input
    account_id: str,
    mark: int | None,
) -> int:
    """The host `pool` hands out in one family: probed from the mark, else from every
    address of the account."""
    for batch in pool.candidates(mark):
        placeholders = ", ".join("?" * len(batch))
        # One range of the unique index (account_id, column) per candidate.
        rows = await tx.fetch_all(
            f"SELECT {column} FROM registrations "
            f"WHERE account_id = ? AND {column} IN ({placeholders})",
            (account_id, *(numbering.text(host) for host in batch)),
        )
        free = pool.first_free(batch, numbering.hosts(row[0] for row in rows))
        if free is not None:
            return free
    rows = await tx.fetch_all(
        f"SELECT {column} FROM registrations WHERE account_id = ?", (account_id,)
    )
    return pool.choose(numbering.hosts(row[0] for row in rows), mark)


async def _spend_jti(tx: Transaction, enrollee: Enrollee, now: int, purge: bool) -> None:
    """Record the JWT's id; AccessJwtReplayed if an earlier enrollment recorded it."""
    assert enrollee.jwt_expires_at is not None
    if purge:
        # Kept until the JWT could no longer pass the expiry check anyway.
        await tx.execute(
            "DELETE FROM access_jwt_uses WHERE expires_at < ?",
            (now - CLOCK_LEEWAY_S * 1_000_000,),
        )
    spent = await tx.execute(
        "INSERT INTO access_jwt_uses (account_id, jti, expires_at) VALUES (?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        (enrollee.account_id, enrollee.jti, enrollee.jwt_expires_at),
    )
    if spent == 0:
        raise AccessJwtReplayed()


async def _upsert_user(
    tx: Transaction, account_id: str, claims: UserClaims, now: int
) -> tuple[str, str]:
    """(id, name) of the user with the JWT's email, created or updated from its claims.

    A claim the JWT leaves out (`name`, `groups`) keeps what the user had.
    """
    row = await tx.fetch_one(
        "SELECT id, name, groups FROM users WHERE account_id = ? AND email = ?",
        (account_id, claims.email),
    )
    name = claims.name if claims.name is not None else (row[1] if row else "")
    groups = groups_json(claims.groups) if claims.groups is not None else (row[2] if row else "[]")

    if row is None:
        user_id = new_uuid()
        await tx.execute(
            "INSERT INTO users (id, account_id, email, name, groups, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (user_id, account_id, claims.email, name, groups, now, now),
        )
        return user_id, name

    user_id = row[0]
    if (name, groups) != (row[1], row[2]):
        await tx.execute(
            "UPDATE users SET name = ?, groups = ?, updated_at = ? WHERE id = ?",
            (name, groups, now, user_id),
        )
        # registrations.user_email/user_name copy the user's for sorting and search.
        await tx.execute(
            "UPDATE registrations SET user_email = ?, user_name = ? WHERE user_id = ?",
            (claims.email, name, user_id),
        )
    return str(user_id), name


async def _find_or_create_device(
    tx: Transaction, account_id: str, facts: DeviceFacts, now: int
) -> tuple[str, bool]:
    """(device id, whether it is new): found by serial number, else by install id."""
    row = None
    for column, value in (("serial_number", facts.serial_number),
                          ("install_id", facts.install_id)):  # fmt: skip
        if value:
            row = await tx.fetch_one(
                "SELECT id, name, client_version, model, device_type, os_version, "
                f"serial_number, install_id FROM devices WHERE account_id = ? AND {column} = ? "
                "ORDER BY created_at, id LIMIT 1",
                (account_id, value),
            )
            if row is not None:
                break

    if row is None:
        device_id = new_uuid()
        await tx.execute(
            "INSERT INTO devices (id, account_id, name, client_version, device_type, model, "
            "serial_number, install_id, os_version, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (device_id, account_id, facts.new_device_name, facts.client_version,
             facts.device_type, facts.model or None, facts.serial_number or None,
             facts.install_id or None, facts.os_version or None, now, now),
        )  # fmt: skip
        return device_id, True

    current = tuple(row[1:])
    updated = tuple(
        told or had
        for told, had in zip(
            (facts.name, facts.client_version, facts.model, facts.device_type,
             facts.os_version, facts.serial_number, facts.install_id),
            current,
            strict=True,
        )
    )  # fmt: skip
    if updated != current:
        await tx.execute(
            "UPDATE devices SET name = ?, client_version = ?, model = ?, device_type = ?, "
            "os_version = ?, serial_number = ?, install_id = ?, updated_at = ? WHERE id = ?",
            (*updated, now, row[0]),
        )
    return str(row[0]), False


async def _replace_previous(
    tx: Transaction, device_id: str, user_id: str | None, service_token_id: str | None
) -> None:
    """Delete the enrollee's active registration on this device (our choice: replace).

    A revoked one stays, with its addresses, until an admin deletes it: re-enrolling
    does not erase the trace of a revoke.
    """
    column, value = (
        ("user_id", user_id) if user_id is not None else ("service_token_id", service_token_id)
    )
    if value is None:
        return
    await tx.execute(
        f"DELETE FROM registrations WHERE device_id = ? AND {column} = ? AND revoked_at IS NULL",
        (device_id, value),
    )


async def _insert_registration(
    tx: Transaction,
    reg_id: str,
    enrollee: Enrollee,
    user: tuple[str | None, str],
    device_id: str,
    body: EnrollmentBody,
    addresses: tuple[str, str],
    token_hash: str,
    now: int,
) -> None:
    profile = await tx.fetch_one(
        "SELECT id, name FROM device_profiles WHERE account_id = ? AND is_default = 1",
        (enrollee.account_id,),
    )
    profile_id, profile_name = (
        (profile[0], profile[1] or DEFAULT_PROFILE_NAME) if profile else (None, "")
    )
    user_id, user_name = user
    email = enrollee.user.email if enrollee.user else ""
    key = body.key
    await tx.execute(
        "INSERT INTO registrations (id, account_id, device_id, user_id, user_email, user_name, "
        "service_token_id, policy_id, policy_name, policy_assigned_at, key, key_type, "
        "tunnel_type, registration_type, virtual_ipv4, virtual_ipv6, client_token_hash, "
        "override_secret, created_at, updated_at, last_seen_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (reg_id, enrollee.account_id, device_id, user_id, email, user_name,
         enrollee.service_token_id, profile_id,
         profile_name, now, key.key if key else "", key.key_type if key else None,
         key.tunnel_type if key else None, "warp", addresses[0], addresses[1], token_hash,
         secrets.token_hex(20), now, now, now),
    )  # fmt: skip
    await tx.execute(
        "INSERT INTO client_registrations (registration_id, client_type, locale, fcm_token, "
        "tos, warp_enabled) VALUES (?, ?, ?, ?, ?, ?)",
        (reg_id, body.client_type, body.locale, body.fcm_token, body.tos,
         int(body.warp_enabled)),
    )  # fmt: skip


async def _view(tx: Transaction, registration_id: str) -> ClientRegistration:
    row = await tx.fetch_one(_CLIENT_VIEW, (registration_id,))
    assert row is not None, "the registration was written in this transaction"
    values = list(row)
    values[18] = bool(values[18])  # warp_enabled
    values[23] = bool(values[23])  # profile is_default
    values[24] = values[24] or "{}"  # profile settings
    return ClientRegistration(*values)

