"""First start: an account, its default profile, an API token and (optionally) the demo fleet."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass

from warp_registry import demo
from warp_registry.clock import now_us
from warp_registry.domain.records import AccountRecord, FleetRecords, ProfileRecord, TokenRecord
from warp_registry.ids import new_uuid
from warp_registry.secrets import hash_secret, new_api_token
from warp_registry.store.sql_store import SqlStore

DEFAULT_SEED = 1


@dataclass(frozen=True, slots=True)
class InitResult:
    account_id: str
    api_token: str
    example_registration_id: str | None


class RegistryNotEmpty(Exception):
    """`init` refuses to touch a database that already holds an account."""


def plan_registry(
    seed: int, with_demo: bool, anchor_us: int, size: demo.DemoSize | None = None
) -> tuple[FleetRecords, str, str | None]:
    """Everything `init` writes, except the token; returns (records, account id, example).

    `size` changes how many users and devices the demo fleet has (the control plane's
    `seed` action); the default is the standard demo fleet.
    """
    rng = random.Random(f"account:{seed}")
    account_id = uuid.UUID(int=rng.getrandbits(128)).hex
    ipv6_prefix = f"2606:4700:cf1:{rng.randrange(0x1000, 0xFFFF):x}"
    default_profile = ProfileRecord(
        id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        account_id=account_id,
        is_default=True,
        name=None,
        match=None,
        precedence=None,
        created_at=anchor_us - 365 * demo.DAY_US if with_demo else anchor_us,
        updated_at=anchor_us - 365 * demo.DAY_US if with_demo else anchor_us,
    )
    account = AccountRecord(
        id=account_id,
        name="Demo account" if with_demo else "warp-registry account",
        ipv6_prefix=ipv6_prefix,
        created_at=default_profile.created_at,
    )

    if with_demo:
        fleet = demo.build_demo_fleet(
            seed, anchor_us, account_id, ipv6_prefix, default_profile.id, size or demo.DemoSize()
        )
    else:
        fleet = FleetRecords()
    fleet.accounts.insert(0, account)
    fleet.profiles.insert(0, default_profile)
    example = fleet.registrations[0].id if fleet.registrations else None
    return fleet, account_id, example


async def initialise(
    store: SqlStore,
    *,
    seed: int = DEFAULT_SEED,
    with_demo: bool = True,
    anchor_us: int | None = None,
    size: demo.DemoSize | None = None,
    replace: bool = False,
) -> InitResult:
    """Create the first account, a Zero Trust Write token and the demo fleet, in one go.

    Raises RegistryNotEmpty, writing nothing, when the registry already has an account,
    unless `replace`: then what the registry held is deleted in the same transaction.
    """
    fleet, account_id, example = plan_registry(seed, with_demo, anchor_us or now_us(), size)
    token = new_api_token()
    fleet.tokens.append(
        TokenRecord(
            id=new_uuid(),
            name="Created by init",
            token_hash=hash_secret(token),
            permission="write",
            account_ids=[account_id],
            created_at=now_us(),
        )
    )

    if not await store.insert_fleet(fleet, require_empty=True, replace=replace):
        raise RegistryNotEmpty()
    return InitResult(account_id, token, example)
