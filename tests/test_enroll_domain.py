"""The enrollment rules on their own: keys, key changes, address allocation, Access JWTs."""

from __future__ import annotations

import base64
import ipaddress
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.warp_test_client import masque_key_pair, wireguard_key_pair
from warp_registry.domain import access_jwt
from warp_registry.domain.enrollment import (
    AddressPool,
    ClientKey,
    client_id,
    key_change,
    resolve_key,
)
from warp_registry.errors import (
    AccessJwtExpired,
    AccessJwtMalformed,
    AddressPoolExhausted,
    InvalidPublicKey,
    InvalidRegistrationRequest,
)

PREFIX = "2606:4700:cf1:1a2b"


def test_key_type_follows_the_bytes_when_not_given() -> None:
    _, wireguard = wireguard_key_pair()
    _, masque = masque_key_pair()
    assert resolve_key(wireguard, None, None) == ClientKey(wireguard, "curve25519", "wireguard")
    assert resolve_key(masque, None, None) == ClientKey(masque, "secp256r1", "masque")
    assert resolve_key(masque, None, "masque").key_type == "secp256r1"


def test_keys_come_back_canonical() -> None:
    canonical = base64.b64encode(bytes(range(32))).decode()
    assert canonical.endswith("Hh8=")
    # The last base64 character of a 32-byte key carries 2 unused bits: set one.
    sloppy = canonical[:-2] + "9="
    assert base64.b64decode(sloppy) == bytes(range(32))
    assert resolve_key(sloppy, None, None).key == canonical


@pytest.mark.parametrize(
    ("key_type", "tunnel_type"), [("rsa", None), (None, "ipsec"), ("curve25519", "masque"),
                                  (7, None)],
)  # fmt: skip
def test_type_fields_are_checked(key_type: object, tunnel_type: object) -> None:
    _, wireguard = wireguard_key_pair()
    with pytest.raises(InvalidRegistrationRequest):
        resolve_key(wireguard, key_type, tunnel_type)


def test_key_changes() -> None:
    _, old = wireguard_key_pair()
    _, new = masque_key_pair()
    current = ClientKey(old, "curve25519", "wireguard")
    rotated = ClientKey(new, "secp256r1", "masque")

    assert key_change(current, rotated, None, None) == rotated
    assert key_change(current, current, None, None) is None  # the same key: no change
    assert key_change(current, None, None, None) is None
    assert key_change(current, None, "curve25519", "wireguard") is None
    with pytest.raises(InvalidPublicKey):
        key_change(current, None, "secp256r1", "masque")
    with pytest.raises(InvalidPublicKey):
        key_change(None, None, "curve25519", None)  # a keyless registration needs a key


def test_allocation_takes_the_lowest_free_hosts() -> None:
    pool = AddressPool()
    assert pool.allocate(PREFIX, [], []) == ("100.96.0.2", f"{PREFIX}::2")

    used_v4 = ["100.96.0.2", "100.96.0.3", "100.96.0.5", None, "not an address"]
    used_v6 = [f"{PREFIX}::2", f"{PREFIX}::4"]
    assert pool.allocate(PREFIX, used_v4, used_v6) == ("100.96.0.4", f"{PREFIX}::3")
    # 100.96.1.0 is an ordinary host inside the /12.
    dense = [str(ipaddress.IPv4Address("100.96.0.0") + h) for h in range(2, 256)]
    assert pool.allocate(PREFIX, dense, [])[0] == "100.96.1.0"


def test_allocation_knows_when_the_pool_is_empty() -> None:
    pool = AddressPool(last_host=3)
    assert pool.allocate(PREFIX, ["100.96.0.2"], [f"{PREFIX}::2"])[0] == "100.96.0.3"
    with pytest.raises(AddressPoolExhausted):
        pool.allocate(PREFIX, ["100.96.0.2", "100.96.0.3"], [])
    assert AddressPool().top == 2**20 - 2  # 100.111.255.254, before the broadcast


@given(st.sets(st.integers(min_value=2, max_value=80)))
def test_allocation_matches_the_definition(used: set[int]) -> None:
    """The first host from 2 that is not used, whatever order and duplicates come in."""
    addresses = [str(ipaddress.IPv4Address("100.96.0.0") + h) for h in sorted(used)] * 2
    expected = min(set(range(2, 83)) - used)
    assert AddressPool().allocate(PREFIX, reversed(addresses), [])[0] == (
        str(ipaddress.IPv4Address("100.96.0.0") + expected)
    )


def test_client_id_is_three_bytes_unique_per_address() -> None:
    ids = {client_id(f"100.{96 + a}.{b}.{c}") for a in (0, 15) for b in (0, 255) for c in (2, 9)}
    assert len(ids) == 8
    assert all(len(base64.b64decode(i)) == 3 for i in ids)


def test_jwt_round_trip_and_expiry() -> None:
    key = access_jwt.new_signing_key("a" * 32)
    token = access_jwt.mint(key, "Someone@Example.com", name="Some One", groups=["x"])
    assert access_jwt.key_id_of(token) == key.key_id
    verified = access_jwt.verify(token, key)
    assert verified.user.email == "someone@example.com"
    assert verified.user.groups == (("x", "x"),)
    assert verified.account_id == key.account_id

    stale = access_jwt.mint(key, "late@example.com", issued_at=int(time.time()) - 61
                            - access_jwt.CLOCK_LEEWAY_S)  # fmt: skip
    with pytest.raises(AccessJwtExpired):
        access_jwt.verify(stale, key)


@pytest.mark.parametrize("groups", ["eng", [1], [{"id": "x"}]])
def test_jwt_groups_must_be_names_or_objects(groups: object) -> None:
    import jwt

    key = access_jwt.new_signing_key("b" * 32)
    now = int(time.time())
    claims = {"aud": [key.audience], "iss": key.issuer, "exp": now + 60, "iat": now,
              "jti": "j", "email": "g@example.com", "groups": groups}  # fmt: skip
    token = jwt.encode(claims, key.private_pem, algorithm="RS256", headers={"kid": key.key_id})
    with pytest.raises(AccessJwtMalformed):
        access_jwt.verify(token, key)
