"""Full rows as they are written to the store: what `init`, the demo fleet and seeding make.

These carry every stored column, including secrets' hashes, and are never shown as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class AccountRecord:
    id: str
    name: str
    ipv6_prefix: str
    created_at: int
    multi_user: bool = False


@dataclass(slots=True)
class ProfileRecord:
    id: str
    account_id: str
    is_default: bool
    name: str | None
    match: str | None
    precedence: int | None
    created_at: int
    updated_at: int
    description: str | None = None
    enabled: bool = True
    profile_type: str = "warp"
    settings_json: str = "{}"


@dataclass(slots=True)
class UserRecord:
    id: str
    account_id: str
    email: str | None
    name: str
    groups_json: str
    created_at: int
    updated_at: int


@dataclass(slots=True)
class DeviceRecord:
    id: str
    account_id: str
    name: str
    created_at: int
    updated_at: int
    client_version: str | None = None
    device_type: str | None = None
    model: str | None = None
    manufacturer: str | None = None
    serial_number: str | None = None
    hardware_id: str | None = None
    mac_address: str | None = None
    os_version: str | None = None
    os_version_extra: str | None = None
    install_id: str | None = None
    public_ip: str | None = None
    tags_json: str = "{}"
    last_seen_at: int | None = None
    last_seen_user_id: str | None = None
    last_seen_registration_id: str | None = None


@dataclass(slots=True)
class RegistrationRecord:
    id: str
    account_id: str
    device_id: str
    user_id: str | None
    user_email: str
    user_name: str
    policy_id: str
    policy_name: str
    policy_assigned_at: int
    key: str
    key_type: str | None
    tunnel_type: str | None
    registration_type: str
    virtual_ipv4: str | None
    virtual_ipv6: str | None
    override_secret: str
    created_at: int
    updated_at: int
    last_seen_at: int
    revoked_at: int | None = None
    service_token_id: str | None = None
    client_token_hash: str | None = None


@dataclass(slots=True)
class TokenRecord:
    id: str
    name: str
    token_hash: str
    permission: str
    account_ids: list[str]
    created_at: int


@dataclass(slots=True)
class FleetRecords:
    """Everything one `init` (or one seeding run) writes, in one transaction."""

    accounts: list[AccountRecord] = field(default_factory=list)
    profiles: list[ProfileRecord] = field(default_factory=list)
    users: list[UserRecord] = field(default_factory=list)
    devices: list[DeviceRecord] = field(default_factory=list)
    registrations: list[RegistrationRecord] = field(default_factory=list)
    tokens: list[TokenRecord] = field(default_factory=list)
