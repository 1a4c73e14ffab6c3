"""warp-registry as the team's Cloudflare Access: it signs and checks enrollment JWTs.

At Cloudflare a user enrolls a device by logging in through Access, which hands the WARP
client a short-lived RS256 JWT; the client sends it in `Cf-Access-Jwt-Assertion` with
`POST /reg`. Here each account has one RSA signing key (kept by the store), the CLI signs
JWTs with it (`warp-registry enroll-token`), the server checks them, and the public keys
are published as a JWKS document, as Access publishes its certs.

What a JWT must pass, each failure with its own error (docs/enrollment.md): a header
naming RS256 and a key id this registry holds; a valid signature; `aud` and `iss` of that
key's account; `exp` in the future (60 s after issue by default, as at Cloudflare),
`iat`/`nbf` not in the future; `jti` and `email` present. Accepting each JWT only once
is the store's job (it records the `jti` in the enrollment's transaction).
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from warp_registry.domain.enrollment import UserClaims, pem_pair
from warp_registry.errors import (
    AccessJwtAlgorithm,
    AccessJwtExpired,
    AccessJwtForged,
    AccessJwtMalformed,
    AccessJwtNotYetValid,
    AccessJwtWrongAccount,
)

ALGORITHM = "RS256"
DEFAULT_TTL_S = 60
MAX_TTL_S = 86_400
# Tolerated clock difference between whoever signed the JWT and this server.
CLOCK_LEEWAY_S = 5
MAX_EMAIL_LENGTH = 90  # the registration object's user.email limit
_REQUIRED_CLAIMS = ["aud", "iss", "exp", "iat", "jti", "email"]


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One account's Access signing key pair, with the audience its JWTs carry."""

    account_id: str
    key_id: str
    audience: str
    private_pem: str
    public_pem: str

    @property
    def issuer(self) -> str:
        return issuer_for(self.account_id)


@dataclass(frozen=True, slots=True)
class VerifiedJwt:
    """What a JWT that passed every check says."""

    account_id: str
    user: UserClaims
    jti: str
    expires_at: int  # seconds since the epoch


def issuer_for(account_id: str) -> str:
    """Our choice of `iss`: one per account, as each Cloudflare team has its own domain."""
    return f"warp-registry/{account_id}"


def new_signing_key(account_id: str) -> SigningKey:
    """A fresh RSA-2048 pair; the key id is the SHA-256 of the public key's DER."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private_pem, public_pem = pem_pair(private)
    return SigningKey(
        account_id=account_id,
        key_id=hashlib.sha256(public_der).hexdigest(),
        audience=secrets.token_hex(32),  # the shape of an Access application's AUD tag
        private_pem=private_pem,
        public_pem=public_pem,
    )


def mint(
    key: SigningKey,
    email: str,
    *,
    name: str | None = None,
    groups: Iterable[str] = (),
    ttl_s: int = DEFAULT_TTL_S,
    issued_at: int | None = None,
) -> str:
    """Sign an Access JWT for `email`, valid `ttl_s` seconds from `issued_at` (now)."""
    now = int(time.time()) if issued_at is None else issued_at
    claims: dict[str, Any] = {
        "aud": [key.audience],
        "email": email,
        "exp": now + ttl_s,
        "iat": now,
        "nbf": now,
        "iss": key.issuer,
        "type": "app",
        "identity_nonce": secrets.token_urlsafe(12),
        "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"mailto:{email.lower()}")),
        "jti": str(uuid.uuid4()),
    }
    if name is not None:
        claims["name"] = name
    group_list = [g for g in groups if g]
    if group_list:
        claims["groups"] = group_list
    return jwt.encode(claims, key.private_pem, algorithm=ALGORITHM, headers={"kid": key.key_id})


def key_id_of(token: str) -> str:
    """The `kid` of a JWT's header, read before anything is trusted (to find the key)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise AccessJwtMalformed() from None
    if header.get("alg") != ALGORITHM:
        raise AccessJwtAlgorithm()
    kid = header.get("kid")
    if not isinstance(kid, str) or kid == "":
        raise AccessJwtMalformed("Access JWT header has no key id (kid)")
    return kid


def verify(token: str, key: SigningKey) -> VerifiedJwt:
    """Check a JWT against the signing key its `kid` named; raise the matching error."""
    try:
        claims = jwt.decode(
            token,
            _public_key(key.public_pem),
            algorithms=[ALGORITHM],
            audience=key.audience,
            issuer=key.issuer,
            leeway=CLOCK_LEEWAY_S,
            options={"require": _REQUIRED_CLAIMS},
        )
    except jwt.ExpiredSignatureError:
        raise AccessJwtExpired() from None
    except jwt.ImmatureSignatureError:
        raise AccessJwtNotYetValid() from None
    except (jwt.InvalidAudienceError, jwt.InvalidIssuerError):
        raise AccessJwtWrongAccount(
            "Access JWT audience or issuer belongs to another account"
        ) from None
    except jwt.InvalidSignatureError:
        raise AccessJwtForged() from None
    except jwt.InvalidAlgorithmError:
        raise AccessJwtAlgorithm() from None
    except jwt.InvalidTokenError as exc:  # missing claims, bad encoding, bad claim types
        raise AccessJwtMalformed(f"Access JWT is malformed: {exc}") from None
    return VerifiedJwt(key.account_id, _user(claims), _jti(claims), int(claims["exp"]))


def _user(claims: dict[str, Any]) -> UserClaims:
    email = claims["email"]
    if not isinstance(email, str) or "@" not in email or len(email) > MAX_EMAIL_LENGTH:
        raise AccessJwtMalformed("Access JWT email claim is not an email address")
    if any(ord(c) < 0x20 for c in email):
        raise AccessJwtMalformed("Access JWT email claim is not an email address")

    name = claims.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 255 or "\x00" in name):
        raise AccessJwtMalformed("Access JWT name claim must be a string")
    return UserClaims(email.lower(), name, _groups(claims.get("groups")))


def _groups(value: object) -> tuple[tuple[str, str], ...] | None:
    """`groups` as names, or objects with a `name` (and maybe an `id`); None if absent."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise AccessJwtMalformed("Access JWT groups claim must be a list")
    groups = []
    for item in value:
        if isinstance(item, str):
            groups.append((item, item))
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            group_id = item.get("id")
            groups.append((group_id if isinstance(group_id, str) else item["name"], item["name"]))
        else:
            raise AccessJwtMalformed("Access JWT groups must be names or {id, name} objects")
    return tuple(groups)


def _jti(claims: dict[str, Any]) -> str:
    jti = claims["jti"]
    if not isinstance(jti, str) or not 0 < len(jti) <= 128:
        raise AccessJwtMalformed("Access JWT jti claim must be a string of 1 to 128 characters")
    return jti


@functools.lru_cache(maxsize=256)
def _public_key(public_pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(public_pem.encode())
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def jwks(keys: Iterable[SigningKey]) -> dict[str, Any]:
    """The JSON Web Key Set that verifies every account's JWTs, as Access publishes it."""
    published = []
    for key in keys:
        jwk = RSAAlgorithm.to_jwk(_public_key(key.public_pem), as_dict=True)
        jwk.update({"kid": key.key_id, "alg": ALGORITHM, "use": "sig"})
        published.append(jwk)
    return {"keys": published}
