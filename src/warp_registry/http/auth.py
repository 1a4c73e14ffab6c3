"""Reading credentials from request headers and turning store answers into errors.

Two schemes, as Cloudflare accepts them: `Authorization: Bearer <api token>`, and the
legacy `X-Auth-Email` + `X-Auth-Key` (Global API Key) pair. Malformed headers are refused
before the store is asked anything.
"""

from __future__ import annotations

import re

from warp_registry.domain.models import Access
from warp_registry.errors import (
    AUTHORIZATION_FORMAT_CHAIN,
    EMAIL_FORMAT_CHAIN,
    KEY_FORMAT_CHAIN,
    AuthenticationError,
    InvalidAccessToken,
    InvalidRequestHeaders,
    MissingCredentials,
    UnknownGlobalKey,
)
from warp_registry.http.request import Request
from warp_registry.secrets import hash_secret
from warp_registry.store.sql_store import BearerProbe, GlobalKeyProbe, Probe, SqlStore

_BEARER = re.compile(r"Bearer ([A-Za-z0-9._~+/=-]{1,512})")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}")
_GLOBAL_KEY = re.compile(r"[0-9a-zA-Z]{37,64}")


def read_credentials(headers: dict[str, str]) -> Probe:
    """The credential a request carries; raises 400 errors for missing or malformed ones."""
    authorization = headers.get("authorization")
    email = headers.get("x-auth-email")
    key = headers.get("x-auth-key")

    # Precedence (our choice): an email and key together win over a token, as the official
    # Python SDK sends only the pair when both are configured; a lone X-Auth-Email or
    # X-Auth-Key beside a token is ignored; a lone one with no token is "missing".
    if email is not None and key is not None:
        return _global_key(email, key)
    if authorization is None:
        if email is not None or key is not None:
            return _global_key(email, key)
        raise MissingCredentials()

    match = _BEARER.fullmatch(authorization)
    if match is None:
        raise InvalidRequestHeaders(
            chain=[(AUTHORIZATION_FORMAT_CHAIN, "Invalid format for Authorization header")]
        )
    return BearerProbe(hash_secret(match.group(1)))


def is_valid_email(email: str) -> bool:
    """The shape X-Auth-Email must have (one @, no white space)."""
    return _EMAIL.fullmatch(email) is not None


def _global_key(email: str | None, key: str | None) -> Probe:
    if email is None or key is None:
        raise MissingCredentials()

    chain = []
    if _EMAIL.fullmatch(email) is None:
        chain.append((EMAIL_FORMAT_CHAIN, "Invalid format for X-Auth-Email header"))
    if _GLOBAL_KEY.fullmatch(key) is None:
        chain.append((KEY_FORMAT_CHAIN, "Invalid format for X-Auth-Key header"))
    if chain:
        raise InvalidRequestHeaders(chain=chain)
    return GlobalKeyProbe(email.lower(), hash_secret(key))


def require(probe: Probe, access: Access, *, write: bool) -> None:
    """Raise unless the access allows the operation.

    An unknown or revoked token is 9109 (an unknown global key 9103); a credential
    without the account (or an account that does not exist) and a read credential asked
    to write both get 10000, so accounts cannot be told apart from the outside.
    """
    if not access.known:
        if isinstance(probe, GlobalKeyProbe):
            raise UnknownGlobalKey()
        raise InvalidAccessToken()
    if not access.account_ok:
        raise AuthenticationError()
    if write and not access.can_write:
        raise AuthenticationError()


async def authorised_account(
    store: SqlStore, request: Request, *, write: bool
) -> tuple[Probe, str]:
    """The request's credential and the account of its path, once the credential may
    read (or, with `write`, write) that account; raises as `require` does otherwise."""
    probe = read_credentials(request.headers)
    account_id = request.path_params["account_id"]
    access = await store.access(probe, account_id)
    require(probe, access, write=write)
    return probe, account_id
