"""Build a benchmark registry: the demo fleet plus N extra registrations, in one transaction.

The database is written through the project's own store API (`open_store` and
`SqlStore.insert_fleet`), so it has exactly the schema, indexes and row shapes that
`warp-registry serve` reads. Each extra registration gets its own device (its id equals the
device id, as for the first registration on a device outside multi-user mode), a demo user
(or, for a few, a service token), a WireGuard or MASQUE key, a device settings profile and
virtual IPs that are unique in the account.

Besides the database it writes two files the load generator reads: the ids of the extra
registrations, one per line, and a JSON file with the account id and an API token.

    python bench/make_fleet.py --database /tmp/bench.db --registrations 100000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ipaddress
import json
import random
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from warp_registry.bootstrap import plan_registry
from warp_registry.clock import now_us
from warp_registry.demo import DAY_US, DEFAULT_PROFILE_NAME
from warp_registry.domain.enrollment import VIRTUAL_IPV4_NETWORK
from warp_registry.domain.records import (
    DeviceRecord,
    FleetRecords,
    ProfileRecord,
    RegistrationRecord,
    TokenRecord,
    UserRecord,
)
from warp_registry.ids import new_uuid
from warp_registry.secrets import hash_secret, new_api_token
from warp_registry.store import open_store

DEFAULT_REGISTRATIONS = 100_000
DEFAULT_SEED = 1

# Share of extra registrations that use MASQUE (P-256) keys, are revoked, or were made by
# a service token rather than a user. Roughly what the demo fleet has.
MASQUE_SHARE = 0.4
REVOKED_SHARE = 0.02
SERVICE_TOKEN_SHARE = 0.03

_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_PLATFORMS = [
    # name pattern, client version
    ("{u}-MacBook-Pro-{tag}", "2026.7.1377.0"),
    ("DESKTOP-{tag}", "2026.6.1325.0"),
    ("{u}-thinkpad-{tag}", "2026.7.1377.0"),
    ("{u}'s iPhone {tag}", "1.1.1.1/6.23"),
    ("Pixel-8-{tag}", "a-6.81-4616"),
]


@dataclass(frozen=True, slots=True)
class BenchFleet:
    """What the load generator needs to know about the registry it drives."""

    account_id: str
    api_token: str
    registration_ids: list[str]


def build_records(registrations: int, seed: int, anchor_us: int) -> tuple[FleetRecords, BenchFleet]:
    """The demo fleet plus `registrations` extra ones, and a read token for the bench."""
    fleet, account_id, _ = plan_registry(seed, True, anchor_us)
    rng = random.Random(f"bench:{seed}")
    account = fleet.accounts[0]

    # Virtual IPs continue after the demo's, so they stay unique in the account.
    first_host = 2 + len(fleet.registrations)
    if first_host + registrations >= VIRTUAL_IPV4_NETWORK.num_addresses:
        raise ValueError("more registrations than the virtual IPv4 pool holds")

    extra_ids: list[str] = []
    for index in range(registrations):
        device = _device(rng, account_id, anchor_us, index)
        user = None if rng.random() < SERVICE_TOKEN_SHARE else rng.choice(fleet.users)
        profile = rng.choice(fleet.profiles)
        registration = _registration(
            rng, device, user, profile, anchor_us, account.ipv6_prefix, first_host + index
        )
        fleet.devices.append(device)
        fleet.registrations.append(registration)
        extra_ids.append(registration.id)

    token = new_api_token()
    fleet.tokens.append(
        TokenRecord(
            id=new_uuid(),
            name="Benchmark (read)",
            token_hash=hash_secret(token),
            permission="read",
            account_ids=[account_id],
            created_at=anchor_us,
        )
    )
    return fleet, BenchFleet(account_id, token, extra_ids)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _device(rng: random.Random, account_id: str, now: int, index: int) -> DeviceRecord:
    pattern, version = _PLATFORMS[index % len(_PLATFORMS)]
    created = now - rng.randint(95, 300) * DAY_US
    name = pattern.format(u=f"user{index % 997}", tag=f"{rng.getrandbits(24):06X}")
    return DeviceRecord(
        id=_uuid(rng),
        account_id=account_id,
        name=name,
        created_at=created,
        updated_at=created,
        client_version=version,
    )


def _registration(
    rng: random.Random,
    device: DeviceRecord,
    user: UserRecord | None,
    profile: ProfileRecord,
    now: int,
    ipv6_prefix: str,
    host: int,
) -> RegistrationRecord:
    masque = rng.random() < MASQUE_SHARE
    key = _p256_public_key(rng) if masque else base64.b64encode(rng.randbytes(32)).decode()
    created = device.created_at + rng.randint(0, DAY_US)
    last_seen = max(now - rng.randint(0, 90 * DAY_US - 1), created)
    revoked_at = last_seen + 1 if rng.random() < REVOKED_SHARE else None
    return RegistrationRecord(
        id=device.id,
        account_id=device.account_id,
        device_id=device.id,
        user_id=user.id if user else None,
        user_email=(user.email or "") if user else "",
        user_name=user.name if user else "",
        policy_id=profile.id,
        policy_name=profile.name or DEFAULT_PROFILE_NAME,
        policy_assigned_at=created,
        key=key,
        key_type="secp256r1" if masque else "curve25519",
        tunnel_type="masque" if masque else "wireguard",
        registration_type="warp",
        virtual_ipv4=str(VIRTUAL_IPV4_NETWORK.network_address + host),
        virtual_ipv6=_ipv6(ipv6_prefix, host),
        override_secret=rng.randbytes(20).hex(),
        created_at=created,
        updated_at=revoked_at or created,
        last_seen_at=last_seen,
        revoked_at=revoked_at,
        service_token_id=None if user else _uuid(rng),
    )


def _ipv6(prefix: str, host: int) -> str:
    """The host-th address of the account's /64 (the demo's `prefix::host` form, widened)."""
    return str(ipaddress.IPv6Address(f"{prefix}::{host >> 16:x}:{host & 0xFFFF:x}"))


def _p256_public_key(rng: random.Random) -> str:
    """A real P-256 public key (DER SubjectPublicKeyInfo, base64) from the seeded RNG."""
    private = ec.derive_private_key(rng.randrange(1, _P256_ORDER), ec.SECP256R1())
    der = private.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


async def write_registry(database: str, fleet: FleetRecords) -> None:
    """Insert the whole fleet through the store, in one transaction."""
    store = await open_store(database)
    try:
        if not await store.insert_fleet(fleet, require_empty=True):
            raise SystemExit(f"{database} already holds a registry; remove it first")
    finally:
        await store.close()


def make_fleet(database: Path, registrations: int, seed: int, out_dir: Path) -> BenchFleet:
    """Create `database` (which must not exist) and the id and meta files in `out_dir`."""
    if database.exists():
        raise SystemExit(f"{database} exists; the bench builds a fresh database")

    started = time.perf_counter()
    fleet, bench = build_records(registrations, seed, now_us())
    built = time.perf_counter()
    asyncio.run(write_registry(str(database), fleet))
    written = time.perf_counter()

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "registration_ids.txt").write_text("\n".join(bench.registration_ids) + "\n")
    meta = {
        "database": str(database),
        "account_id": bench.account_id,
        "api_token": bench.api_token,
        "registrations": len(fleet.registrations),
        "bench_registrations": len(bench.registration_ids),
    }
    (out_dir / "fleet.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(
        f"fleet: {len(fleet.registrations)} registrations, {len(fleet.devices)} devices; "
        f"records built in {built - started:.1f} s, written in {written - built:.1f} s",
        file=sys.stderr,
    )
    return bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", type=Path, required=True, help="SQLite file to create")
    parser.add_argument("--registrations", type=int, default=DEFAULT_REGISTRATIONS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--out-dir", type=Path, default=None,
        help="where registration_ids.txt and fleet.json go (default: beside the database)",
    )  # fmt: skip
    args = parser.parse_args()
    make_fleet(args.database, args.registrations, args.seed, args.out_dir or args.database.parent)


if __name__ == "__main__":
    main()
