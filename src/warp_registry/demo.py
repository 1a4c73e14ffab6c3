"""The demo fleet: a realistic, deterministic set of users, devices and registrations.

For a given seed and anchor time the fleet is always the same, so tests can rebuild it in
memory and compute what the API should answer without asking the server. It covers what
fleet scripts meet in practice: several users sharing a device, revoked registrations,
a service-token registration with no user, browser-extension registrations, WireGuard and
MASQUE keys, and last-seen times spread over the last 90 days.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import random
import uuid
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from warp_registry.domain.enrollment import VIRTUAL_IPV4_NETWORK
from warp_registry.domain.profiles import Candidate, choose_profile, facts_for
from warp_registry.domain.records import (
    DeviceRecord,
    FleetRecords,
    ProfileRecord,
    RegistrationRecord,
    UserRecord,
)

DAY_US = 86_400 * 1_000_000

# Names and groups of demo users; `store/seed_rows.py` draws large fleets from them too.
FIRST_NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan",
               "judy", "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "uma",
               "victor", "walter", "xena", "yusuf", "zoe", "amara", "bjorn", "chen", "dmitri",
               "esme"]  # fmt: skip
LAST_NAMES = ["smith", "garcia", "nguyen", "kowalski", "okafor", "tanaka", "muller", "rossi",
              "haddad", "silva", "novak", "jensen"]  # fmt: skip
GROUPS = ["engineering", "sales", "support", "finance", "contractors"]
_PLATFORMS = [
    # device_type, model, manufacturer, os_version, name pattern, client_version prefix
    ("mac", "MacBookPro18,3", "Apple Inc.", "15.6.1", "{u}-MacBook-Pro", "2026.7.1377.0"),
    ("windows", "Latitude 7440", "Dell Inc.", "10.0.22631", "DESKTOP-{tag}", "2026.6.1325.0"),
    ("linux", "ThinkPad X1 Carbon Gen 11", "LENOVO", "6.8.0", "{u}-thinkpad", "2026.7.1377.0"),
    ("ios", "iPhone15,2", "Apple Inc.", "18.5", "{u}'s iPhone", "1.1.1.1/6.23"),
    ("android", "Pixel 8", "Google", "15", "Pixel-8-{tag}", "a-6.81-4616"),
    ("chromeos", "Chromebook Plus", "Acer", "124.0", "chromebook-{tag}", "2026.5.1000.0"),
]

DEFAULT_PROFILE_NAME = "Default"
_SITES = ["berlin", "lisbon", "austin"]


@dataclass(frozen=True, slots=True)
class DemoProfile:
    """A custom profile of the demo account; registrations get it by its match expression."""

    name: str
    match: str
    precedence: int
    audience: str  # for the description
    enabled: bool = True


# The demo's first profiles: their ids come from the fleet's random stream, before users.
CUSTOM_PROFILES = [
    DemoProfile("Engineering", 'any(identity.groups.name[*] in {"engineering"})', 10,
                "engineering"),
    DemoProfile("Contractors", 'identity.email matches ".*@contractors\\.example\\.com"', 20,
                "contractors"),
    DemoProfile("Linux workstations", 'os.name == "linux"', 30, "linux"),
]  # fmt: skip
# Added with match-based assignment. Their ids come from a stream of their own, so that
# every other record of a seed's fleet stays what it was before they existed.
MORE_PROFILES = [
    DemoProfile("Service tokens", 'identity.service_token_uuid matches "^[0-9a-f-]{36}$"', 5,
                "headless devices enrolled with a service token"),
    DemoProfile("Finance laptops", 'any(identity.groups.id[*] == "group-finance") and '
                'os.name in {"windows" "mac"}', 15, "finance on Windows and macOS"),
    DemoProfile("iPhones on iOS 18", 'os.name == "ios" and os.version matches "^18\\."', 40,
                "iPhones"),
    DemoProfile("Support (paused)", 'any(identity.groups.name[*] == "support") or '
                'identity.email contains "+support@"', 50, "support", enabled=False),
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class DemoSize:
    users: int = 24
    devices: int = 40
    shared_devices: int = 10
    revoked: int = 6
    browser_extensions: int = 4


def build_demo_fleet(
    seed: int,
    anchor_us: int,
    account_id: str,
    ipv6_prefix: str,
    default_profile_id: str,
    size: DemoSize = DemoSize(),
) -> FleetRecords:
    """Build the fleet for `seed`, with times relative to `anchor_us` (normally now)."""
    rng = random.Random(seed)
    fleet = FleetRecords()
    profiles = _profiles(rng, account_id, anchor_us, CUSTOM_PROFILES)
    profiles += _profiles(random.Random(f"profiles:{seed}"), account_id, anchor_us, MORE_PROFILES)
    fleet.profiles.extend(profiles)
    users = _users(rng, account_id, anchor_us, size.users)
    fleet.users.extend(users)

    devices: list[DeviceRecord] = []
    owners: list[int] = []
    for index in range(size.devices):
        owner = index % len(users)
        devices.append(_device(rng, account_id, anchor_us, users[owner], index))
        owners.append(owner)
    fleet.devices.extend(devices)

    # Who enrolled on which device: the owner first, then extra users on shared devices.
    enrollments: list[tuple[DeviceRecord, UserRecord | None]] = [
        (device, users[owner]) for device, owner in zip(devices, owners, strict=True)
    ]
    for device_index in rng.sample(range(size.devices), size.shared_devices):
        extra = rng.sample([u for i, u in enumerate(users) if i != owners[device_index]],
                           rng.choice((1, 2)))  # fmt: skip
        enrollments.extend((devices[device_index], user) for user in extra)
    enrollments.append((rng.choice(devices), None))  # a service token enrolled once

    allocator = _Allocator(ipv6_prefix)
    first_on_device: set[str] = set()
    for device, user in enrollments:
        # Outside multi-user mode a registration's id equals its device's id.
        reg_id = device.id if device.id not in first_on_device else _uuid(rng)
        first_on_device.add(device.id)
        fleet.registrations.append(
            _registration(rng, reg_id, device, user, default_profile_id, anchor_us, allocator)
        )

    _mark_revoked(rng, fleet.registrations, size.revoked, anchor_us)
    _mark_browser_extensions(rng, fleet.registrations, size.browser_extensions)
    _assign_profiles(fleet, default_profile_id)
    _touch_devices(fleet)
    _tag_devices(fleet.devices)
    return fleet


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _profiles(
    rng: random.Random, account_id: str, now: int, demo_profiles: list[DemoProfile]
) -> list[ProfileRecord]:
    return [
        ProfileRecord(
            id=_uuid(rng),
            account_id=account_id,
            is_default=False,
            name=profile.name,
            match=profile.match,
            precedence=profile.precedence,
            created_at=now - 200 * DAY_US,
            updated_at=now - 100 * DAY_US,
            description=f"Demo profile for {profile.audience}",
            enabled=profile.enabled,
        )
        for profile in demo_profiles
    ]


def _users(rng: random.Random, account_id: str, now: int, count: int) -> list[UserRecord]:
    users = []
    emails: set[str] = set()
    for index in range(count):
        first = FIRST_NAMES[index % len(FIRST_NAMES)]
        last = rng.choice(LAST_NAMES)
        group = GROUPS[index % len(GROUPS)]
        domain = "contractors.example.com" if group == "contractors" else "example.com"
        created = now - rng.randint(120, 400) * DAY_US
        email = f"{first}.{last}@{domain}"
        if email in emails:  # a large fleet repeats names; emails are unique per account
            email = f"{first}.{last}{index}@{domain}"
        emails.add(email)
        users.append(
            UserRecord(
                id=_uuid(rng),
                account_id=account_id,
                email=email,
                name=f"{first.title()} {last.title()}",
                groups_json=json.dumps([{"id": f"group-{group}", "name": group}]),
                created_at=created,
                updated_at=created,
            )
        )
    return users


def _device(
    rng: random.Random, account_id: str, now: int, owner: UserRecord, index: int
) -> DeviceRecord:
    device_type, model, maker, os_version, pattern, version = _PLATFORMS[index % len(_PLATFORMS)]
    tag = f"{rng.getrandbits(24):06X}"
    handle = (owner.email or "device").split(".")[0]
    created = now - rng.randint(95, 300) * DAY_US
    return DeviceRecord(
        id=_uuid(rng),
        account_id=account_id,
        name=pattern.format(u=handle, tag=tag),
        created_at=created,
        updated_at=created,
        client_version=version,
        device_type=device_type,
        model=model,
        manufacturer=maker,
        serial_number=f"{rng.getrandbits(64):016X}",
        mac_address=":".join(f"{rng.getrandbits(8):02x}" for _ in range(6)),
        os_version=os_version,
        install_id=base64.urlsafe_b64encode(rng.randbytes(16)).decode()[:22],
    )


def _assign_profiles(fleet: FleetRecords, default_id: str) -> None:
    """Each registration gets the profile the server would assign at a check-in.

    The same rule and evaluator as the store (domain/profiles.py `choose_profile`): the
    first enabled custom profile of the registration's type, by precedence, whose match
    holds for its user and device; else the default profile.
    """
    users = {user.id: user for user in fleet.users}
    devices = {device.id: device for device in fleet.devices}
    default = Candidate(default_id, DEFAULT_PROFILE_NAME, None, None, True)
    for reg in fleet.registrations:
        candidates = [default] + [
            Candidate(p.id, p.name or "", p.match, p.precedence, False)
            for p in fleet.profiles
            if p.enabled and p.profile_type == reg.registration_type
        ]
        user = users.get(reg.user_id or "")
        device = devices[reg.device_id]
        facts = facts_for(
            user.email if user else None,
            user.groups_json if user else None,
            reg.service_token_id,
            device.device_type,
            device.os_version,
        )
        chosen = choose_profile(candidates, facts) or default
        reg.policy_id, reg.policy_name = chosen.id, chosen.name


class _Allocator:
    """Hands out virtual IPs in order, as a fresh account's pool would."""

    def __init__(self, ipv6_prefix: str) -> None:
        self._next = 2
        self._ipv6_prefix = ipv6_prefix

    def next_pair(self) -> tuple[str, str]:
        host = self._next
        self._next += 1
        ipv4 = str(VIRTUAL_IPV4_NETWORK.network_address + host)
        ipv6 = str(ipaddress.IPv6Address(f"{self._ipv6_prefix}::{host:x}"))
        return ipv4, ipv6


def _registration(
    rng: random.Random,
    reg_id: str,
    device: DeviceRecord,
    user: UserRecord | None,
    profile_id: str,
    now: int,
    allocator: _Allocator,
) -> RegistrationRecord:
    masque = rng.random() < 0.4
    key = _p256_public_key(rng) if masque else base64.b64encode(rng.randbytes(32)).decode()
    created = device.created_at + rng.randint(0, 5) * DAY_US + rng.randint(0, DAY_US)
    last_seen = now - rng.randint(0, 90 * DAY_US - 1)
    last_seen = max(last_seen, created)
    ipv4, ipv6 = allocator.next_pair()
    return RegistrationRecord(
        id=reg_id,
        account_id=device.account_id,
        device_id=device.id,
        user_id=user.id if user else None,
        user_email=(user.email or "") if user else "",
        user_name=user.name if user else "",
        policy_id=profile_id,  # the default profile until `_assign_profiles` runs
        policy_name=DEFAULT_PROFILE_NAME,
        policy_assigned_at=created,
        key=key,
        key_type="secp256r1" if masque else "curve25519",
        tunnel_type="masque" if masque else "wireguard",
        registration_type="warp",
        virtual_ipv4=ipv4,
        virtual_ipv6=ipv6,
        override_secret=rng.randbytes(20).hex(),
        created_at=created,
        updated_at=created,
        last_seen_at=last_seen,
        service_token_id=None if user else _uuid(rng),
    )


def _p256_public_key(rng: random.Random) -> str:
    """A real P-256 public key (DER SubjectPublicKeyInfo, base64), from the seeded RNG."""
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    private = ec.derive_private_key(rng.randrange(1, order), ec.SECP256R1())
    der = private.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def _mark_revoked(
    rng: random.Random, registrations: list[RegistrationRecord], count: int, now: int
) -> None:
    for reg in rng.sample(registrations, count):
        reg.revoked_at = min(reg.last_seen_at + rng.randint(1, DAY_US), now)
        reg.updated_at = reg.revoked_at


def _mark_browser_extensions(
    rng: random.Random, registrations: list[RegistrationRecord], count: int
) -> None:
    candidates = [r for r in registrations if r.user_id is not None]
    for reg in rng.sample(candidates, count):
        reg.registration_type = "browser_extension"


def _touch_devices(fleet: FleetRecords) -> None:
    """A device was last seen when its most recently seen registration was."""
    latest: dict[str, RegistrationRecord] = {}
    for reg in fleet.registrations:
        current = latest.get(reg.device_id)
        if current is None or reg.last_seen_at > current.last_seen_at:
            latest[reg.device_id] = reg
    for device in fleet.devices:
        seen = latest.get(device.id)
        if seen is not None:
            device.last_seen_at = seen.last_seen_at
            device.last_seen_user_id = seen.user_id
            device.last_seen_registration_id = seen.id


def _tag_devices(devices: list[DeviceRecord]) -> None:
    """Tags from each device's place in the list (no random draw, so the rest of the
    fleet stays what it was): most devices have an `os` and a `site`, every fifth also
    `compliance: pci`, and every fourth has none at all."""
    for index, device in enumerate(devices):
        if index % 4 == 3:
            continue
        tags = {"os": device.device_type or "unknown", "site": _SITES[index % len(_SITES)]}
        if index % 5 == 0:
            tags["compliance"] = "pci"
        device.tags_json = json.dumps(tags, separators=(",", ":"))
