"""The enrollment rules on their own: keys, key changes, address allocation, Access JWTs."""

from __future__ import annotations

import base64
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.warp_test_client import masque_key_pair, wireguard_key_pair
from warp_registry.domain import access_jwt
from warp_registry.domain.enrollment import (
    PROBE_BATCH,
    PROBE_BATCHES,
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


def test_hosts_and_addresses_convert_both_ways() -> None:
    pool = AddressPool()
    v4, v6 = pool.ipv4(), pool.ipv6(PREFIX)
    assert (v4.text(2), v6.text(2)) == ("100.96.0.2", f"{PREFIX}::2")
    assert v4.text(256) == "100.96.1.0"  # an ordinary host inside the /12
    assert v6.text(0x10002) == f"{PREFIX}::1:2"
    used = ["100.96.0.2", "100.96.1.0", None, "not an address", f"{PREFIX}::3"]
    assert v4.hosts(used) == [2, 256]
    assert v6.hosts(used) == [3]
    # Spelled differently, an IPv6 address is still the same host.
    assert v6.hosts(["2606:4700:0cf1:1a2b:0:0:0:0a"]) == [10]


def test_the_fast_path_probes_upwards_from_the_mark_in_bounded_batches() -> None:
    pool = AddressPool()
    batches = pool.candidates(10)
    assert len(batches) == PROBE_BATCHES
    assert all(len(batch) == PROBE_BATCH for batch in batches)
    flat = [host for batch in batches for host in batch]
    assert flat == list(range(10, 10 + PROBE_BATCH * PROBE_BATCHES))

    small = AddressPool(last_host=12)
    assert small.candidates(10) == [[10, 11, 12]]  # never past the top
    # Unknown, past the top, or below the pool: only the full read can tell.
    assert small.candidates(None) == small.candidates(13) == small.candidates(1) == []

    assert pool.first_free([5, 6, 7], [5, 7]) == 6
    assert pool.first_free([5, 6], [6, 5]) is None


def test_the_slow_path_goes_on_from_the_mark() -> None:
    pool = AddressPool()
    assert pool.choose([], None) == 2  # a fresh account starts at the first host
    assert pool.choose([2, 3, 5], None) == 6  # unknown mark: after the highest in use
    assert pool.choose([2, 3, 5], 3) == 4  # the first free at or above the mark
    assert pool.choose([2, 3, 5], 9) == 9  # gaps below the mark wait for the wrap
    assert pool.choose([2, 3, 5], 0) == 4  # a mark below the pool starts at its bottom


def test_the_slow_path_wraps_to_the_lowest_gap_at_the_top() -> None:
    pool = AddressPool(last_host=6)
    assert pool.choose([2, 4, 5, 6], None) == 3  # highest + 1 is past the top
    assert pool.choose([2, 4, 5, 6], 7) == 3
    assert pool.choose([2, 3, 5, 6], 5) == 4  # wrapped from the mark
    assert pool.choose([2, 5, 6, 9, 100], 5) == 3  # hosts outside the pool do not count
    with pytest.raises(AddressPoolExhausted):
        pool.choose([2, 3, 4, 5, 6], None)
    with pytest.raises(AddressPoolExhausted):
        pool.choose([6, 5, 4, 3, 2, 2], 3)
    assert AddressPool().top == 2**20 - 2  # 100.111.255.254, before the broadcast


@given(st.sets(st.integers(min_value=2, max_value=40)), st.none() | st.integers(0, 45))
def test_allocation_matches_the_definition(used: set[int], mark: int | None) -> None:
    """The first free host from the mark (unknown: after the highest used) up to the top,
    else the lowest free one; and the fast path's first free candidate is the same host."""
    pool = AddressPool(last_host=40)
    free = sorted(set(range(2, 41)) - used)
    start = mark if mark is not None else max(used, default=1) + 1
    expected = next((h for h in free if h >= start), free[0] if free else None)
    if expected is None:
        with pytest.raises(AddressPoolExhausted):
            pool.choose(sorted(used, reverse=True) * 2, mark)
        return
    assert pool.choose(sorted(used, reverse=True) * 2, mark) == expected

    probed = [pool.first_free(batch, used) for batch in pool.candidates(mark)]
    fast = next((host for host in probed if host is not None), None)
    assert fast is None or fast == expected


@given(
    st.sets(st.integers(min_value=2, max_value=40)),
    st.none() | st.integers(0, 45),
    st.integers(1, 45),
)
def test_handing_out_many_is_choosing_one_at_a_time(
    used: set[int], mark: int | None, count: int
) -> None:
    """What a bulk seed gets equals `count` enrollments in a row, each moving the mark."""
    pool = AddressPool(last_host=40)
    one_by_one: list[int] = []
    taken, next_mark = set(used), mark
    try:
        for _ in range(count):
            host = pool.choose(taken, next_mark)
            one_by_one.append(host)
            taken.add(host)
            next_mark = host + 1
    except AddressPoolExhausted:
        with pytest.raises(AddressPoolExhausted):
            pool.hand_out(used, mark, count)
        return
    assert pool.hand_out(used, mark, count) == one_by_one


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
