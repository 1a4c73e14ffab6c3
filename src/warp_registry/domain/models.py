"""The registry's records as the domain sees them, and how the admin API shows them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from warp_registry.clock import format_optional, format_rfc3339

KEY_TYPES = ("curve25519", "secp256r1")
TUNNEL_TYPES = ("wireguard", "masque")
REGISTRATION_TYPES = ("warp", "browser_extension")
PERMISSIONS = ("read", "write")


# Not frozen: a frozen dataclass's __init__ costs twice as much, on the hot GET path.
@dataclass(slots=True)
class PolicySummary:
    """The device settings profile a registration was assigned, as `include=policy` shows it."""

    id: str
    name: str
    is_default: bool
    deleted: bool
    updated_at: int


# Not frozen: a frozen dataclass's __init__ costs twice as much, on the hot GET path.
@dataclass(slots=True)
class Registration:
    """One enrollment of one user (or service token) on one device."""

    id: str
    account_id: str
    created_at: int
    updated_at: int
    last_seen_at: int
    key: str
    key_type: str | None
    tunnel_type: str | None
    registration_type: str
    device_id: str
    device_name: str
    device_client_version: str | None
    user_id: str | None
    user_email: str
    user_name: str
    revoked_at: int | None
    virtual_ipv4: str | None
    virtual_ipv6: str | None
    policy: PolicySummary | None

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


def registration_to_api(reg: Registration, include_policy: bool) -> dict[str, Any]:
    """The registration object of the admin API (api-semantics.md §2.1).

    A registration made by a service token has no user: its `user` object carries nulls
    rather than being omitted, so scripts reading `user.email` get a null, not a KeyError
    (our choice). `deleted_at` is always null because a deleted registration is gone.
    """
    device: dict[str, Any] = {"id": reg.device_id, "name": reg.device_name}
    if reg.device_client_version is not None:
        device["client_version"] = reg.device_client_version

    if reg.user_id is None:
        user: dict[str, Any] = {"id": None, "email": None, "name": None}
    else:
        user = {"id": reg.user_id, "email": reg.user_email, "name": reg.user_name}

    body: dict[str, Any] = {
        "id": reg.id,
        "created_at": format_rfc3339(reg.created_at),
        "updated_at": format_rfc3339(reg.updated_at),
        "last_seen_at": format_rfc3339(reg.last_seen_at),
        "key": reg.key,
        "key_type": reg.key_type,
        "tunnel_type": reg.tunnel_type,
        "device": device,
        "user": user,
        "revoked_at": format_optional(reg.revoked_at),
        "deleted_at": None,
        "registration_type": reg.registration_type,
        "virtual_ipv4": reg.virtual_ipv4,
        "virtual_ipv6": reg.virtual_ipv6,
    }
    if include_policy and reg.policy is not None:
        body["policy"] = policy_summary_to_api(reg.policy)
    return body


def policy_summary_to_api(policy: PolicySummary) -> dict[str, Any]:
    return {
        "id": policy.id,
        "name": policy.name,
        "default": policy.is_default,
        "deleted": policy.deleted,
        "updated_at": format_rfc3339(policy.updated_at),
    }


@dataclass(slots=True, frozen=True)
class ApiToken:
    """An admin API token as `token list` shows it; the secret itself is never stored."""

    id: str
    name: str
    permission: str
    account_ids: tuple[str, ...]
    created_at: int
    revoked_at: int | None


# Not frozen: a frozen dataclass's __init__ costs twice as much, on the hot GET path.
@dataclass(slots=True)
class Access:
    """What a credential may do on one account, as the store found it in one lookup.

    `known` is false when no live credential matches; `account_ok` is false when the
    credential exists but is not scoped to the account (or the account does not exist).
    """

    known: bool
    account_ok: bool
    permission: str | None
    credential_id: str | None

    @property
    def can_write(self) -> bool:
        return self.permission == "write"
