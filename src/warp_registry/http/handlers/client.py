"""The WARP client API: `/v0…/reg` for enrollment and the client's own calls, and the
published Access keys. The protocol as served is in docs/enrollment.md.

Enrollment (`POST /reg`) takes a user's Access JWT (`Cf-Access-Jwt-Assertion`) or a
service token (`CF-Access-Client-Id` + `CF-Access-Client-Secret`) and answers with the
registration and, only then, its client token. Every later call authenticates with
`Authorization: Bearer <that token>`, which the store keeps only as a hash.
"""

from __future__ import annotations

import hmac
import re

from warp_registry.domain import access_jwt
from warp_registry.domain.client_view import client_registration_to_api
from warp_registry.domain.enrollment import (
    Enrollee,
    device_facts,
    parse_enrollment_body,
    parse_update_body,
)
from warp_registry.errors import (
    AccessJwtMalformed,
    AccessJwtWrongAccount,
    ClientTokenInvalid,
    ClientTokenMissing,
    EnrollmentIdentityMissing,
    InvalidServiceToken,
)
from warp_registry.http.context import AppContext
from warp_registry.http.envelope import document_body
from warp_registry.http.request import Request, Response, no_content, ok
from warp_registry.ids import new_uuid
from warp_registry.secrets import hash_secret

_BEARER = re.compile(r"Bearer ([A-Za-z0-9._~+/=-]{1,256})", re.IGNORECASE)
_MAX_JWT_LENGTH = 16_384
_MAX_SERVICE_CREDENTIAL = 256


class ClientHandlers:
    """Handlers of the client API, over the store's `enrollment` part."""

    def __init__(self, context: AppContext) -> None:
        self.context = context

    async def enroll(self, request: Request) -> Response:
        """`POST /reg`: a new registration for a user or a service token."""
        enrollee = await self._enrollee(request.headers)
        body = parse_enrollment_body(request.body)
        device = device_facts(body, request.headers.get("cf-client-version"))
        # A UUID-shaped opaque token, like Cloudflare's; shown once, stored as a hash.
        token = new_uuid()

        registration = await self.context.store.enrollment.enroll(
            enrollee, body, device, hash_secret(token)
        )
        return ok(client_registration_to_api(registration, token))

    async def get(self, request: Request) -> Response:
        """`GET /reg/{id}`: the registration and its configuration; counts as seen."""
        token_hash = _client_token_hash(request.headers)
        registration = await self.context.store.enrollment.seen(
            request.path_params["registration_id"], token_hash
        )
        return ok(client_registration_to_api(registration, None))

    async def update(self, request: Request) -> Response:
        """`PATCH` (and `PUT`) `/reg/{id}`: new key, new device name, WARP on or off."""
        token_hash = _client_token_hash(request.headers)
        update = parse_update_body(request.body)
        registration = await self.context.store.enrollment.update(
            request.path_params["registration_id"], token_hash, update
        )
        return ok(client_registration_to_api(registration, None))

    async def delete(self, request: Request) -> Response:
        """`DELETE /reg/{id}`: the registration is deleted and its addresses freed."""
        token_hash = _client_token_hash(request.headers)
        await self.context.store.enrollment.delete(
            request.path_params["registration_id"], token_hash
        )
        return no_content()

    async def access_certs(self, request: Request) -> Response:
        """`GET /cdn-cgi/access/certs`: the JWKS that verifies every account's Access JWTs."""
        keys = await self.context.store.enrollment.signing_keys()
        return Response(200, document_body(access_jwt.jwks(keys)))

    async def _enrollee(self, headers: dict[str, str]) -> Enrollee:
        """Who enrolls, from a verified JWT or service token; the JWT wins if both come."""
        assertion = headers.get("cf-access-jwt-assertion", "").strip()
        if assertion:
            return await self._jwt_enrollee(assertion)
        client_id = headers.get("cf-access-client-id")
        secret = headers.get("cf-access-client-secret")
        if client_id is not None or secret is not None:
            return await self._service_token_enrollee(client_id or "", secret or "")
        raise EnrollmentIdentityMissing()

    async def _jwt_enrollee(self, assertion: str) -> Enrollee:
        if len(assertion) > _MAX_JWT_LENGTH:
            raise AccessJwtMalformed("Access JWT is too long")
        key_id = access_jwt.key_id_of(assertion)
        key = await self.context.store.enrollment.signing_key_by_id(key_id)
        if key is None:
            raise AccessJwtWrongAccount("Access JWT is signed by a key this registry does not hold")

        verified = access_jwt.verify(assertion, key)
        return Enrollee(
            account_id=verified.account_id,
            user=verified.user,
            jti=verified.jti,
            jwt_expires_at=verified.expires_at * 1_000_000,
        )

    async def _service_token_enrollee(self, client_id: str, secret: str) -> Enrollee:
        if not (0 < len(client_id) <= _MAX_SERVICE_CREDENTIAL) or not (
            0 < len(secret) <= _MAX_SERVICE_CREDENTIAL
        ):
            raise InvalidServiceToken()
        token = await self.context.store.enrollment.service_token(client_id.strip())
        valid = token is not None and token.revoked_at is None
        # Compare even for an unknown id, so timing does not tell ids apart.
        expected = token.secret_hash if token is not None else hash_secret("")
        if not hmac.compare_digest(expected, hash_secret(secret.strip())) or not valid:
            raise InvalidServiceToken()
        assert token is not None
        return Enrollee(account_id=token.account_id, service_token_id=token.id)


def _client_token_hash(headers: dict[str, str]) -> str:
    authorization = headers.get("authorization")
    if authorization is None:
        raise ClientTokenMissing()
    match = _BEARER.fullmatch(authorization.strip())
    if match is None:
        raise ClientTokenInvalid("Authorization must be `Bearer <registration token>`")
    return hash_secret(match.group(1))
