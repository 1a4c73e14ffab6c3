"""Every way to get enrollment or a client call wrong: a 4xx envelope with its own code,
never a 500, and nothing written.

Codes (docs/enrollment.md): 1000 bad field, 1001 bad or taken key, 2003 bad JSON, 1010-1018
identity at enrollment, 1020-1022 the client token, 1030 no free address.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cloudflare import AsyncCloudflare, NotFoundError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, x25519

from tests.conftest import Registry
from tests.enroll_support import AccessRole, admin_get, assert_error, result_of, row_counts
from tests.warp_test_client import Identity, WarpTestClient, masque_key_pair, wireguard_key_pair
from warp_registry.domain import access_jwt
from warp_registry.domain.enrollment import AddressPool, ServiceToken
from warp_registry.domain.records import AccountRecord, FleetRecords
from warp_registry.secrets import hash_secret

pytest_plugins = ["tests.enroll_fixtures"]

# --- keys no server should accept ---


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _spki(public: Any) -> bytes:
    return bytes(
        public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def p256_point_off_the_curve() -> str:
    """A well-formed P-256 SubjectPublicKeyInfo whose point (x, y + 1) is not on the curve."""
    der = _spki(ec.generate_private_key(ec.SECP256R1()).public_key())
    prefix, point = der[:-65], der[-65:]
    y = int.from_bytes(point[33:], "big")
    p = 2**256 - 2**224 + 2**192 + 2**96 - 1
    return _b64(prefix + point[:33] + ((y + 1) % p).to_bytes(32, "big"))


def rsa_spki() -> str:
    return _b64(_spki(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()))


def p384_spki() -> str:
    return _b64(_spki(ec.generate_private_key(ec.SECP384R1()).public_key()))


def x25519_spki() -> str:
    return _b64(_spki(x25519.X25519PrivateKey.generate().public_key()))


BAD_KEYS: list[tuple[str, Callable[[], Any], str | None]] = [
    ("31 bytes", lambda: _b64(bytes(31)), "curve25519"),
    ("31 bytes, no key_type", lambda: _b64(bytes(31)), None),
    ("33 bytes", lambda: _b64(bytes(33)), "curve25519"),
    ("not base64", lambda: "not*base64!", None),
    ("urlsafe base64", lambda: "-" * 43 + "=", "curve25519"),
    ("a number", lambda: 12345, None),
    ("P-256 point off the curve", p256_point_off_the_curve, "secp256r1"),
    ("RSA where P-256 is expected", rsa_spki, "secp256r1"),
    ("RSA, no key_type", rsa_spki, None),
    ("P-384 where P-256 is expected", p384_spki, "secp256r1"),
    ("X25519 SPKI where P-256 is expected", x25519_spki, "secp256r1"),
    ("P-256 where curve25519 is expected", lambda: masque_key_pair()[1], "curve25519"),
    ("32 bytes where P-256 is expected", lambda: wireguard_key_pair()[1], "secp256r1"),
]


@pytest.mark.parametrize(("make_key", "key_type"), [c[1:] for c in BAD_KEYS],
                         ids=[c[0] for c in BAD_KEYS])  # fmt: skip
async def test_bad_keys_are_refused_at_enrollment(
    warp: WarpTestClient,
    access: AccessRole,
    registry: Registry,
    make_key: Callable[[], Any],
    key_type: str | None,
) -> None:
    before = await row_counts(registry.store)
    body: dict[str, Any] = {"key": make_key(), "serial_number": warp.serial_number}
    if key_type is not None:
        body["key_type"] = key_type

    assert_error(await warp.post_reg(access.identity("bad.key@example.com"), body), 400, 1001)
    assert await row_counts(registry.store) == before


@pytest.mark.parametrize(("make_key", "key_type"), [c[1:] for c in BAD_KEYS],
                         ids=[c[0] for c in BAD_KEYS])  # fmt: skip
async def test_bad_keys_are_refused_on_update(
    warp: WarpTestClient,
    access: AccessRole,
    sdk: AsyncCloudflare,
    registry: Registry,
    make_key: Callable[[], Any],
    key_type: str | None,
) -> None:
    reg = await warp.register_wireguard(access.identity("rotate.bad@example.com"))
    before = await admin_get(sdk, registry, reg.id)
    body: dict[str, Any] = {"key": make_key()}
    if key_type is not None:
        body["key_type"] = key_type

    assert_error(await warp.patch(reg, body), 400, 1001)
    after = await admin_get(sdk, registry, reg.id)
    assert (after.key, after.key_type, after.updated_at) == (
        before.key,
        before.key_type,
        before.updated_at,
    )


async def test_a_key_held_by_another_registration_is_refused(
    warp: WarpTestClient,
    warp_http: httpx.AsyncClient,
    access: AccessRole,
    registry: Registry,
    sdk: AsyncCloudflare,
) -> None:
    demo_key = registry.fleet.registrations[0].key
    taken = {"key": demo_key, "serial_number": "TAKEN-1"}
    error = assert_error(await warp.post_reg(access.identity("copy@example.com"), taken), 400, 1001)
    assert "in use" in error["message"]

    mine = await warp.register_wireguard(access.identity("owner@example.com"))
    other = WarpTestClient(warp_http)
    theirs = await other.register_wireguard(access.identity("thief@example.com"))
    assert_error(await other.patch(theirs, {"key": mine.result["key"]}), 400, 1001)
    assert (await admin_get(sdk, registry, theirs.id)).key == theirs.result["key"]


async def test_changing_the_tunnel_needs_a_new_key(
    warp: WarpTestClient, access: AccessRole
) -> None:
    reg = await warp.register_wireguard(access.identity("tunnel@example.com"))
    body = {"key_type": "secp256r1", "tunnel_type": "masque"}
    assert_error(await warp.patch(reg, body), 400, 1001)


BAD_FIELDS: list[tuple[str, dict[str, Any]]] = [
    ("model not a string", {"model": 5}),
    ("warp_enabled not a bool", {"warp_enabled": "yes"}),
    ("tos not a timestamp", {"tos": "yesterday"}),
    ("name with NUL", {"name": "pc\u0000"}),
    ("name too long", {"name": "n" * 256}),
    ("unknown key_type", {"key_type": "rsa"}),
    ("key_type a list", {"key_type": ["curve25519"]}),
    ("unknown tunnel_type", {"tunnel_type": "ipsec"}),
    ("tunnel and key type disagree", {"key_type": "curve25519", "tunnel_type": "masque"}),
]


@pytest.mark.parametrize("fields", [c[1] for c in BAD_FIELDS], ids=[c[0] for c in BAD_FIELDS])
async def test_bad_fields_are_refused(
    warp: WarpTestClient, access: AccessRole, registry: Registry, fields: dict[str, Any]
) -> None:
    before = await row_counts(registry.store)
    _, key = wireguard_key_pair()
    body = {"key": key, **fields}
    assert_error(await warp.post_reg(access.identity("fields@example.com"), body), 400, 1000)
    assert await row_counts(registry.store) == before


@pytest.mark.parametrize("raw", [b'{"key":', b"[1, 2]", b'"text"', b"\xff\xfe", b"{'a': 1}"])
async def test_malformed_json_is_refused(
    warp: WarpTestClient,
    warp_http: httpx.AsyncClient,
    access: AccessRole,
    registry: Registry,
    raw: bytes,
) -> None:
    before = await row_counts(registry.store)
    identity = access.identity("json@example.com")
    response = await warp_http.post(warp.path(), content=raw, headers=identity.headers())
    error = assert_error(response, 400, 2003)
    assert error["message"].startswith("invalid json request")
    assert await row_counts(registry.store) == before

    reg = await warp.register_wireguard(access.identity("json.patch@example.com"))
    response = await warp_http.patch(warp.path(f"/{reg.id}"), content=raw, headers=reg.auth)
    assert_error(response, 400, 2003)


async def test_an_empty_name_is_refused_on_update(warp: WarpTestClient, access: AccessRole) -> None:
    reg = await warp.register_wireguard(access.identity("noname@example.com"))
    assert_error(await warp.patch(reg, {"name": "   "}), 400, 1000)


# --- identity at enrollment ---


def _claims(access: AccessRole, **override: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "aud": [access.key.audience], "email": "forger@example.com", "exp": now + 60,
        "iat": now, "nbf": now, "iss": access.key.issuer, "jti": f"jti-{time.time_ns()}",
    }  # fmt: skip
    claims.update(override)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(access: AccessRole, claims: dict[str, Any], private: Any = None) -> str:
    key = private if private is not None else access.key.private_pem
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": access.key.key_id})


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged_by_another_key(access: AccessRole) -> str:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _sign(access, _claims(access), stranger)


def tampered_email(access: AccessRole) -> str:
    header, _, signature = access.jwt("victim@example.com").split(".")
    payload = _b64url(json.dumps(_claims(access, email="admin@example.com")).encode())
    return f"{header}.{payload}.{signature}"


def alg_none(access: AccessRole) -> str:
    header = _b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": access.key.key_id}).encode())
    return f"{header}.{_b64url(json.dumps(_claims(access)).encode())}."


def hs256_with_the_public_key(access: AccessRole) -> str:
    """The classic algorithm-confusion forgery: HMAC keyed with the published RSA key."""
    header = {"alg": "HS256", "typ": "JWT", "kid": access.key.key_id}
    signing_input = f"{_b64url(json.dumps(header).encode())}." + _b64url(
        json.dumps(_claims(access)).encode()
    )
    mac = hmac.new(access.key.public_pem.encode(), signing_input.encode(), hashlib.sha256)
    return f"{signing_input}.{_b64url(mac.digest())}"


def expired(access: AccessRole) -> str:
    # The default lifetime is 60 s: a JWT issued 70 s ago has expired.
    return access.jwt("late@example.com", issued_at=int(time.time()) - 70)


def not_yet_valid(access: AccessRole) -> str:
    return access.jwt("early@example.com", issued_at=int(time.time()) + 600)


def unknown_signing_key(access: AccessRole) -> str:
    """Minted by another registry's Access, for an account this one does not have."""
    return access_jwt.mint(access_jwt.new_signing_key("f" * 32), "elsewhere@example.com")


def other_audience(access: AccessRole) -> str:
    return _sign(access, _claims(access, aud=["0" * 64]))


def other_issuer(access: AccessRole) -> str:
    return _sign(access, _claims(access, iss=access_jwt.issuer_for("e" * 32)))


BAD_JWTS: list[tuple[str, Callable[[AccessRole], str], int, int]] = [
    ("not a JWT", lambda a: "not-a-jwt", 401, 1011),
    ("three garbage parts", lambda a: "a.b.c", 401, 1011),
    ("no kid", lambda a: jwt.encode(_claims(a), a.key.private_pem, algorithm="RS256"), 401, 1011),
    ("no email", lambda a: _sign(a, _claims(a, email=None)), 401, 1011),
    ("no jti", lambda a: _sign(a, _claims(a, jti=None)), 401, 1011),
    ("email not an address", lambda a: _sign(a, _claims(a, email="nobody")), 401, 1011),
    ("forged: another key", forged_by_another_key, 401, 1012),
    ("forged: tampered payload", tampered_email, 401, 1012),
    ("alg none", alg_none, 401, 1013),
    ("alg HS256 keyed with the public key", hs256_with_the_public_key, 401, 1013),
    ("expired", expired, 401, 1014),
    ("not yet valid", not_yet_valid, 401, 1015),
    ("wrong account: unknown signing key", unknown_signing_key, 403, 1017),
    ("wrong account: other audience", other_audience, 403, 1017),
    ("wrong account: other issuer", other_issuer, 403, 1017),
]


@pytest.mark.parametrize(("make_jwt", "status", "code"), [c[1:] for c in BAD_JWTS],
                         ids=[c[0] for c in BAD_JWTS])  # fmt: skip
async def test_bad_jwts_are_refused(
    warp: WarpTestClient,
    access: AccessRole,
    registry: Registry,
    make_jwt: Callable[[AccessRole], str],
    status: int,
    code: int,
) -> None:
    before = await row_counts(registry.store)
    _, key = wireguard_key_pair()
    response = await warp.post_reg(Identity(jwt=make_jwt(access)), {"key": key})
    assert_error(response, status, code)
    assert await row_counts(registry.store) == before


async def test_a_jwt_enrolls_once(
    warp: WarpTestClient, access: AccessRole, registry: Registry
) -> None:
    identity = access.identity("once@example.com")
    await warp.register_wireguard(identity)
    before = await row_counts(registry.store)

    _, key = wireguard_key_pair()
    assert_error(await warp.post_reg(identity, {"key": key}), 401, 1016)
    assert await row_counts(registry.store) == before


async def test_a_refused_enrollment_does_not_spend_the_jwt(
    warp: WarpTestClient, access: AccessRole
) -> None:
    identity = access.identity("retry@example.com")
    assert_error(await warp.post_reg(identity, {"key": _b64(bytes(31))}), 400, 1001)
    # The client regenerates its key and tries again within the JWT's minute.
    await warp.register_wireguard(identity)


async def test_enrollment_needs_an_identity(warp: WarpTestClient, registry: Registry) -> None:
    before = await row_counts(registry.store)
    _, key = wireguard_key_pair()
    assert_error(await warp.post_reg(Identity(), {"key": key}), 401, 1010)
    assert await row_counts(registry.store) == before


@pytest.mark.parametrize(
    ("client_id", "secret"),
    [("svc.access", "wrong"), ("nobody.access", "s3cret"), ("svc.access", None),
     (None, "s3cret")],
    ids=["wrong secret", "unknown id", "no secret", "no id"],
)  # fmt: skip
async def test_bad_service_tokens_are_refused(
    warp: WarpTestClient, registry: Registry, client_id: str | None, secret: str | None
) -> None:
    token = ServiceToken("0f6f4f0e-1f43-4a4b-9bd3-0a5c6d7e8f90", registry.account_id, "svc",
                         "svc.access", hash_secret("s3cret"), None)  # fmt: skip
    assert await registry.store.enrollment.create_service_token(token)
    before = await row_counts(registry.store)

    headers = {}
    if client_id is not None:
        headers["CF-Access-Client-Id"] = client_id
    if secret is not None:
        headers["CF-Access-Client-Secret"] = secret
    response = await warp.http.post(warp.path(), json={}, headers=headers)
    assert_error(response, 401, 1018)
    assert await row_counts(registry.store) == before


async def test_the_jwt_decides_the_account(
    warp: WarpTestClient, registry: Registry, sdk: AsyncCloudflare
) -> None:
    other = AccountRecord("b" * 32, "Other team", "2606:4700:cf1:beef", registry.anchor_us)
    assert await registry.store.insert_fleet(FleetRecords(accounts=[other]))
    other_key = await registry.store.enrollment.signing_key(other.id)
    assert other_key is not None

    reg = await warp.register_wireguard(AccessRole(other_key).identity("guest@example.com"))
    assert reg.result["account"]["id"] == other.id
    assert reg.result["config"]["interface"]["addresses"]["v6"].startswith("2606:4700:cf1:beef:")
    with pytest.raises(NotFoundError):  # not in the first account
        await admin_get(sdk, registry, reg.id)


# --- the client token ---


async def test_client_calls_need_the_registration_token(
    warp: WarpTestClient,
    warp_http: httpx.AsyncClient,
    access: AccessRole,
    sdk: AsyncCloudflare,
    registry: Registry,
) -> None:
    reg = await warp.register_wireguard(access.identity("token.owner@example.com"))
    other = await WarpTestClient(warp_http).register_wireguard(access.identity("x@example.com"))
    before = await admin_get(sdk, registry, reg.id)
    path = warp.path(f"/{reg.id}")

    assert_error(await warp_http.get(path), 401, 1020)
    assert_error(await warp_http.get(path, headers={"Authorization": "Basic abc"}), 401, 1021)
    unknown = {"Authorization": "Bearer 4b0f3c6e-7d1a-4d2b-9a8e-1c2d3e4f5a6b"}
    assert_error(await warp_http.get(path, headers=unknown), 401, 1021)
    assert_error(await warp_http.get(path, headers=other.auth), 401, 1021)
    assert_error(await warp_http.patch(path, json={"name": "x"}, headers=other.auth), 401, 1021)
    assert_error(await warp_http.delete(path, headers=other.auth), 401, 1021)

    after = await admin_get(sdk, registry, reg.id)
    assert after.last_seen_at == before.last_seen_at and after.device.name == before.device.name


# --- the address pool ---


async def test_an_exhausted_pool_is_a_clear_error(
    warp: WarpTestClient,
    warp_http: httpx.AsyncClient,
    access: AccessRole,
    sdk: AsyncCloudflare,
    registry: Registry,
) -> None:
    # A pool that ends right after one more address.
    highest = max(int(r.virtual_ipv4.rsplit(".", 1)[1]) + 256 * int(r.virtual_ipv4.split(".")[2])
                  for r in registry.fleet.registrations if r.virtual_ipv4)  # fmt: skip
    registry.store.enrollment.pool = AddressPool(last_host=highest + 1)
    last = await warp.register_wireguard(access.identity("last.one@example.com"))

    before = await row_counts(registry.store)
    late = WarpTestClient(warp_http)
    _, key = wireguard_key_pair()
    error = assert_error(await late.post_reg(access.identity("late@example.com"), {"key": key}),
                         409, 1030)  # fmt: skip
    assert "pool" in error["message"]
    assert await row_counts(registry.store) == before

    # Deleting a registration frees its addresses; with the pool full, the next
    # enrollment wraps to them.
    await sdk.zero_trust.devices.registrations.delete(last.id, account_id=registry.account_id)
    late_reg = await late.register_wireguard(access.identity("late@example.com"))
    assert late_reg.result["config"]["interface"] == last.result["config"]["interface"]
    assert result_of(await late.get(late_reg))["id"] == late_reg.id
