"""All SQL of device settings profiles: the profiles API, and assigning registrations.

`ProfileStore` is reached as `SqlStore.profiles`; the handlers check the caller's access
first (`SqlStore.access`). Writes are read-modify-write in one transaction: the domain
function that changes a profile (domain/profiles.py) runs inside it, on the row as it is
then, so two concurrent PATCHes never lose each other's fields.

`assign_profile` runs inside the client API's own transactions (store/enrollment.py), at
enrollment and at every client check-in: it evaluates the account's profiles for the
registration and records the answer in `registrations.policy_id`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from warp_registry.clock import now_us
from warp_registry.domain.profile_fields import MAX_INT
from warp_registry.domain.profiles import (
    DEFAULT_PROFILE_NAME,
    Candidate,
    Profile,
    ProfileChanges,
    ProfileListQuery,
    choose_profile,
    dump_settings,
    facts_for,
    load_settings,
    new_profile,
)
from warp_registry.errors import DefaultProfileNotDeletable, PrecedenceInUse, ProfileNotFound
from warp_registry.ids import new_uuid
from warp_registry.store.database import Database, Row, Transaction, is_unique_violation

T = TypeVar("T")

# (profile as it is, now) -> profile as it should be; raises ApiError to refuse.
Change = Callable[[Profile, int], Profile]

_COLUMNS = (
    "id, account_id, is_default, name, description, match, precedence, enabled, "
    "profile_type, settings, created_at, updated_at"
)
_ORDER = "ORDER BY precedence, id"

_ASSIGNMENT_FACTS = """
    SELECT r.account_id, r.registration_type, r.policy_id, r.policy_name, r.user_email,
        u.groups, r.service_token_id, d.device_type, d.os_version
    FROM registrations r
    JOIN devices d ON d.id = r.device_id
    LEFT JOIN users u ON u.id = r.user_id
    WHERE r.id = ?
"""
_CANDIDATES = """
    SELECT id, name, match, precedence, is_default FROM device_profiles
    WHERE account_id = ? AND (is_default = 1 OR (enabled = 1 AND profile_type = ?))
"""
_DEFAULT_NOT_BY_ID = (
    "Device settings profile not found: the default profile is served at /devices/policy, not by id"
)


def profile_from_row(row: Row) -> Profile:
    (profile_id, account_id, is_default, name, description, match, precedence, enabled,
     profile_type, settings, created_at, updated_at) = row  # fmt: skip
    return Profile(
        id=profile_id,
        account_id=account_id,
        is_default=bool(is_default),
        name=name,
        description=description,
        match=match,
        precedence=None if precedence is None else int(precedence),
        enabled=bool(enabled),
        profile_type=profile_type,
        settings=load_settings(settings),
        created_at=created_at,
        updated_at=updated_at,
    )


class ProfileStore:
    """Device settings profiles of every account, over one Database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- reads ---

    async def default_profile(self, account_id: str) -> Profile | None:
        row = await self.db.fetch_one(
            f"SELECT {_COLUMNS} FROM device_profiles WHERE account_id = ? AND is_default = 1",
            (account_id,),
        )
        return None if row is None else profile_from_row(row)

    async def custom_profile(self, account_id: str, policy_id: str) -> Profile:
        """A custom profile by id; ProfileNotFound otherwise (the default one included)."""
        row = await self.db.fetch_one(
            f"SELECT {_COLUMNS} FROM device_profiles WHERE account_id = ? AND id = ?",
            (account_id, policy_id),
        )
        return _custom(row)

    async def list_profiles(
        self, account_id: str, query: ProfileListQuery
    ) -> tuple[list[Profile], int]:
        """One page of the account's custom profiles of one type, by precedence; and how
        many there are in all."""
        where = "WHERE account_id = ? AND is_default = 0 AND profile_type = ?"
        params = (account_id, query.profile_type)
        rows = await self.db.fetch_all(
            f"SELECT {_COLUMNS} FROM device_profiles {where} {_ORDER} LIMIT ? OFFSET ?",
            (*params, query.per_page, (query.page - 1) * query.per_page),
        )
        total = await self.db.fetch_one(f"SELECT COUNT(*) FROM device_profiles {where}", params)
        return [profile_from_row(row) for row in rows], (int(total[0]) if total else 0)

    # --- writes ---

    async def create(self, account_id: str, changes: ProfileChanges) -> Profile:
        """A new custom profile. Without a precedence it goes after every other one."""

        async def work(tx: Transaction) -> Profile:
            row = await tx.fetch_one(
                "SELECT COALESCE(MAX(precedence), 0) FROM device_profiles "
                "WHERE account_id = ? AND is_default = 0",
                (account_id,),
            )
            # Past the largest precedence there is no room: the clash is then reported.
            after_last = min((int(row[0]) if row else 0) + 1, MAX_INT)
            profile = new_profile(changes, profile_id=new_uuid(), account_id=account_id,
                                  precedence=after_last, now=now_us())  # fmt: skip
            await _check_precedence_free(tx, profile)
            await tx.execute(
                f"INSERT INTO device_profiles ({_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _values(profile),
            )
            return profile

        return await self._write(work)

    async def change_default(self, account_id: str, change: Change) -> Profile:
        """Apply `change` to the account's default profile, in one transaction."""
        return await self._change(
            f"SELECT {_COLUMNS} FROM device_profiles WHERE account_id = ? AND is_default = 1",
            (account_id,),
            change,
        )

    async def change_custom(self, account_id: str, policy_id: str, change: Change) -> Profile:
        """Apply `change` to a custom profile, in one transaction; ProfileNotFound if none."""
        return await self._change(
            f"SELECT {_COLUMNS} FROM device_profiles WHERE account_id = ? AND id = ? "
            "AND is_default = 0",
            (account_id, policy_id),
            change,
            not_found=lambda tx: self._not_found(tx, account_id, policy_id),
        )

    async def delete(self, account_id: str, policy_id: str) -> list[Profile]:
        """Delete a custom profile; return the account's remaining custom profiles.

        Registrations keep the deleted profile's id (the admin API shows it with
        `deleted: true`) and its name, until their client checks in again.
        """

        async def work(tx: Transaction) -> list[Profile]:
            row = await tx.fetch_one(
                "SELECT is_default, name FROM device_profiles WHERE account_id = ? AND id = ?",
                (account_id, policy_id),
            )
            if row is None:
                raise ProfileNotFound()
            if row[0]:
                raise DefaultProfileNotDeletable()
            await tx.execute(
                "UPDATE registrations SET policy_name = ? WHERE account_id = ? AND policy_id = ?",
                (row[1] or "", account_id, policy_id),
            )
            await tx.execute("DELETE FROM device_profiles WHERE id = ?", (policy_id,))
            rows = await tx.fetch_all(
                f"SELECT {_COLUMNS} FROM device_profiles WHERE account_id = ? "
                f"AND is_default = 0 {_ORDER}",
                (account_id,),
            )
            return [profile_from_row(r) for r in rows]

        return await self._write(work)

    async def _change(
        self,
        select: str,
        params: Sequence[Any],
        change: Change,
        not_found: Callable[[Transaction], Awaitable[None]] | None = None,
    ) -> Profile:
        async def work(tx: Transaction) -> Profile:
            row = await tx.fetch_one(select, params)
            if row is None:
                if not_found is not None:
                    await not_found(tx)
                raise ProfileNotFound()
            current = profile_from_row(row)
            updated = change(current, now_us())
            if updated.precedence != current.precedence:
                await _check_precedence_free(tx, updated)
            await tx.execute(
                "UPDATE device_profiles SET name = ?, description = ?, match = ?, "
                "precedence = ?, enabled = ?, settings = ?, updated_at = ? WHERE id = ?",
                (updated.name, updated.description, updated.match, updated.precedence,
                 int(updated.enabled), dump_settings(updated.settings), updated.updated_at,
                 updated.id),
            )  # fmt: skip
            return updated

        return await self._write(work)

    async def _not_found(self, tx: Transaction, account_id: str, policy_id: str) -> None:
        """Say so when the id is the default profile's: it is not addressed by id."""
        row = await tx.fetch_one(
            "SELECT 1 FROM device_profiles WHERE account_id = ? AND id = ? AND is_default = 1",
            (account_id, policy_id),
        )
        if row is not None:
            raise ProfileNotFound(_DEFAULT_NOT_BY_ID)

    async def _write(self, work: Callable[[Transaction], Awaitable[T]]) -> T:
        """`db.write`; a precedence taken by a concurrent writer is PrecedenceInUse."""
        try:
            return await self.db.write(work)
        except Exception as exc:
            if is_unique_violation(exc):
                raise PrecedenceInUse() from None
            raise


def _custom(row: Row | None) -> Profile:
    if row is None:
        raise ProfileNotFound()
    profile = profile_from_row(row)
    if profile.is_default:
        raise ProfileNotFound(_DEFAULT_NOT_BY_ID)
    return profile


def _values(profile: Profile) -> tuple[Any, ...]:
    return (
        profile.id, profile.account_id, int(profile.is_default), profile.name,
        profile.description, profile.match, profile.precedence, int(profile.enabled),
        profile.profile_type, dump_settings(profile.settings), profile.created_at,
        profile.updated_at,
    )  # fmt: skip


async def _check_precedence_free(tx: Transaction, profile: Profile) -> None:
    row = await tx.fetch_one(
        "SELECT name FROM device_profiles WHERE account_id = ? AND is_default = 0 "
        "AND precedence = ? AND id <> ?",
        (profile.account_id, profile.precedence, profile.id),
    )
    if row is not None:
        raise PrecedenceInUse(
            f"precedence {profile.precedence} is already used by the profile {row[0]!r}; "
            "precedences of an account's custom profiles are unique"
        )



# --- assignment (inside the client API's transactions) ---


async def assign_profile(tx: Transaction, registration_id: str, now: int) -> None:
    """Give the registration the profile its user and device match now.

    The first enabled custom profile of the registration's type, in ascending
    precedence, whose match holds; else the account's default profile. The stored
    assignment changes, and `policy_assigned_at` with it, only when the profile does.
    """
    row = await tx.fetch_one(_ASSIGNMENT_FACTS, (registration_id,))
    if row is None:
        return
    (account_id, registration_type, policy_id, policy_name, email, groups, service_token,
     os_name, os_version) = row  # fmt: skip

    rows = await tx.fetch_all(_CANDIDATES, (account_id, registration_type))
    candidates = [
        Candidate(r[0], r[1] or DEFAULT_PROFILE_NAME, r[2], r[3], bool(r[4])) for r in rows
    ]
    facts = facts_for(email, groups, service_token, os_name, os_version)
    chosen = choose_profile(candidates, facts)
    if chosen is None:
        return

    if chosen.id != policy_id:
        await tx.execute(
            "UPDATE registrations SET policy_id = ?, policy_name = ?, policy_assigned_at = ? "
            "WHERE id = ?",
            (chosen.id, chosen.name, now, registration_id),
        )
    elif chosen.name != policy_name:
        await tx.execute(
            "UPDATE registrations SET policy_name = ? WHERE id = ?", (chosen.name, registration_id)
        )
