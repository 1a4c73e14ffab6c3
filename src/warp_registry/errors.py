"""API errors. Each class fixes its HTTP status, Cloudflare error code and message.

Handlers and domain code raise these; the app turns them into an error envelope with
`error_body`. Codes observed at Cloudflare are used where known; the others are our
choice, and `docs/errors.md` lists every one with its source.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ApiError(Exception):
    """Base class: an error the client caused or is allowed to see."""

    status: ClassVar[int] = 400
    code: ClassVar[int] = 1000
    message: ClassVar[str] = "Bad request"

    def __init__(
        self,
        message: str | None = None,
        *,
        chain: list[tuple[int, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.detail = message or self.message
        self.chain = chain or []
        self.headers = headers or {}
        super().__init__(self.detail)

    def to_errors(self) -> list[dict[str, Any]]:
        """The `errors` array of the envelope."""
        entry: dict[str, Any] = {"code": self.code, "message": self.detail}
        if self.chain:
            entry["error_chain"] = [{"code": c, "message": m} for c, m in self.chain]
        return [entry]


# --- authentication and authorisation (codes observed at Cloudflare) ---


class MissingCredentials(ApiError):
    status = 400
    code = 9106
    message = "Missing X-Auth-Key, X-Auth-Email or Authorization headers"


class InvalidRequestHeaders(ApiError):
    """A credential header is present but malformed; the chain says which one."""

    status = 400
    code = 6003
    message = "Invalid request headers"


# Chain codes for InvalidRequestHeaders, as Cloudflare sends them.
AUTHORIZATION_FORMAT_CHAIN = 6111  # "Invalid format for Authorization header"
EMAIL_FORMAT_CHAIN = 6102  # "Invalid format for X-Auth-Email header"
KEY_FORMAT_CHAIN = 6103  # "Invalid format for X-Auth-Key header"


class InvalidAccessToken(ApiError):
    status = 403
    code = 9109
    message = "Invalid access token"


class AuthenticationError(ApiError):
    """No access to the account, the account does not exist, or the permission is missing.

    One answer for all three so that account ids cannot be enumerated.
    """

    status = 403
    code = 10000
    message = "Authentication error"


class UnknownGlobalKey(ApiError):
    status = 403
    code = 9103
    message = "Unknown X-Auth-Key or X-Auth-Email"


# --- routing ---


class NoRoute(ApiError):
    status = 400
    code = 7000
    message = "No route for that URI"


class InvalidObjectIdentifier(ApiError):
    """A path id that cannot be an id at all (not 32 hex, not a UUID)."""

    status = 404
    code = 7003

    def __init__(self, path: str) -> None:
        super().__init__(f"Could not route to {path}, perhaps your object identifier is invalid?")


class MethodNotAllowed(ApiError):
    """Our choice: 405 with code 10000, the shape Cloudflare uses for refused methods."""

    status = 405
    code = 10000

    def __init__(self, method: str, allowed: list[str]) -> None:
        super().__init__(
            f"{method} method not allowed for this route",
            headers={"allow": ", ".join(allowed)},
        )


class NotImplementedEndpoint(ApiError):
    """A Cloudflare devices endpoint that warp-registry knows but does not implement yet."""

    status = 501
    code = 7010

    def __init__(self, operation: str) -> None:
        super().__init__(
            f"warp-registry does not implement {operation} yet; "
            "see docs/endpoints.md for the coverage table"
        )


# --- request validation ---


class InvalidParameters(ApiError):
    """A query parameter failed validation; the chain names the parameter."""

    status = 400
    code = 6008
    message = "Invalid request parameters"

    def __init__(self, chain_code: int, detail: str) -> None:
        super().__init__(chain=[(chain_code, detail)])


class InvalidJsonBody(ApiError):
    status = 400
    code = 2003
    message = "invalid json request"


class BodyTooLarge(ApiError):
    """Our choice: 413 with code 6007, next to Cloudflare's 6003 and 6008 request errors."""

    status = 413
    code = 6007
    message = "Request body too large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"Request body larger than {limit} bytes")


# Chain codes for InvalidParameters. 11000 is observed at Cloudflare for per_page; the
# others are our choice, in the same range.
PER_PAGE_CHAIN = 11000
ENUM_CHAIN = 11001
TIMESTAMP_CHAIN = 11002
UUID_CHAIN = 11003
CURSOR_CHAIN = 11004
ID_LIST_CHAIN = 11005
SEARCH_CHAIN = 11006  # `search` longer than the registrations list accepts
# Physical devices and the legacy v1 devices endpoints (docs/devices.md).
PAGE_CHAIN = 11020  # `page` of a page-based list not an integer in range
TAG_CHAIN = 11021  # `tag` filter not `key:value`, or more than 10 of them
BODY_FIELD_CHAIN = 11022  # a JSON body field has the wrong type, size or name (under 2003)
# Device settings profiles (docs/profiles.md).
MATCH_CHAIN = 11030  # a profile's `match` does not parse (under 2003); names the position


# --- missing objects (our choice: Cloudflare publishes no code for these) ---


class RegistrationNotFound(ApiError):
    status = 404
    code = 1100
    message = "Registration not found"


class DeviceNotFound(ApiError):
    status = 404
    code = 1101
    message = "Device not found"


class ProfileNotFound(ApiError):
    status = 404
    code = 1102
    message = "Device settings profile not found"


class DefaultProfileNotDeletable(ApiError):
    """Our choice: the default profile is not deleted, only edited (docs/profiles.md)."""

    status = 400
    code = 1103
    message = "The default device settings profile cannot be deleted"


class PrecedenceInUse(ApiError):
    """Our choice: two custom profiles of an account never share a precedence.

    400 rather than 409: the official SDKs retry a 409, and this conflict does not go
    away by itself.
    """

    status = 400
    code = 1104
    message = "Another device settings profile of the account has this precedence"


class LegacyEndpointUnsupported(ApiError):
    """A deprecated v1 `/devices` endpoint called on an account in multi-user mode.

    Cloudflare documents these endpoints as "not supported when multi-user mode is
    enabled" without publishing the answer; status and code are our choice.
    """

    status = 400
    code = 1110
    message = (
        "Not supported when multi-user mode is enabled for the account; use "
        "/devices/physical-devices and /devices/registrations instead"
    )


# --- server side ---


class InternalError(ApiError):
    """What the client sees for any unexpected exception; the details go to the log only."""

    status = 500
    code = 10001
    message = "Internal server error"


class ServiceUnavailable(ApiError):
    status = 503
    code = 10002
    message = "The registry store is unavailable; try again"


# --- the WARP client API (docs/enrollment.md) ---
# WARP clients know 1000 ("Invalid registration request") and 1001 (invalid public key);
# Cloudflare publishes no codes for the identity and token failures, so 1010-1030 are our
# choice: one code per cause, so a client or a test can tell them apart.


class InvalidRegistrationRequest(ApiError):
    """A body field of the client API has the wrong type, length or value."""

    status = 400
    code = 1000
    message = "Invalid registration request"


class InvalidPublicKey(ApiError):
    status = 400
    code = 1001
    message = "Invalid public key"


class PublicKeyInUse(InvalidPublicKey):
    """Cloudflare lets no two registrations share a key; usque shows this as 1001."""

    message = "Public key already in use by another registration"


class EnrollmentIdentityMissing(ApiError):
    status = 401
    code = 1010
    message = (
        "Enrollment needs an Access JWT (Cf-Access-Jwt-Assertion) or a service token "
        "(CF-Access-Client-Id and CF-Access-Client-Secret)"
    )


class AccessJwtMalformed(ApiError):
    status = 401
    code = 1011
    message = "Access JWT is malformed"


class AccessJwtForged(ApiError):
    status = 401
    code = 1012
    message = "Access JWT signature does not verify"


class AccessJwtAlgorithm(ApiError):
    status = 401
    code = 1013
    message = "Access JWT algorithm not accepted; RS256 only"


class AccessJwtExpired(ApiError):
    """Cloudflare's client shows "Authentication Expired" for a JWT used too late."""

    status = 401
    code = 1014
    message = "Authentication expired: the Access JWT has expired"


class AccessJwtNotYetValid(ApiError):
    status = 401
    code = 1015
    message = "Access JWT is not valid yet"


class AccessJwtReplayed(ApiError):
    status = 401
    code = 1016
    message = "Access JWT has already been used to enroll"


class AccessJwtWrongAccount(ApiError):
    """Signed by a key this registry does not hold, or for another account's audience."""

    status = 403
    code = 1017
    message = "Access JWT was not issued for an account of this registry"


class InvalidServiceToken(ApiError):
    status = 401
    code = 1018
    message = "Invalid Access service token"


class ClientTokenMissing(ApiError):
    status = 401
    code = 1020
    message = "Missing Authorization: Bearer <registration token>"


class ClientTokenInvalid(ApiError):
    """Unknown token, a deleted registration's token, or another registration's token."""

    status = 401
    code = 1021
    message = "Invalid registration token"


class RegistrationRevoked(ApiError):
    status = 403
    code = 1022
    message = "Registration has been revoked"


class AddressPoolExhausted(ApiError):
    status = 409
    code = 1030
    message = "No free virtual IP address left in the account's pool"


# --- rate limits and the control plane (docs/control-plane.md) ---


class RateLimited(ApiError):
    """Past the per-credential budget of `serve --rate-limit`; the body Cloudflare sends
    since 2026 (older: 10100 "More than 1200 requests per 300 seconds reached")."""

    status = 429
    code = 971
    message = "Please wait and consider throttling your request speed"


class AdminTokenRequired(ApiError):
    """Our choice: the control plane without `Authorization: Bearer <admin token>`."""

    status = 401
    code = 1200
    message = "The control plane needs Authorization: Bearer <admin token>"


class InvalidAdminToken(ApiError):
    """Our choice: a Bearer token that is not the admin token (an API token included)."""

    status = 403
    code = 1201
    message = "Invalid admin token"


class FaultRuleNotFound(ApiError):
    status = 404
    code = 1202
    message = "Fault rule not found"


class ControlRequestInvalid(ApiError):
    """Our choice: a control-plane body or parameter with a wrong field, type or value."""

    status = 400
    code = 1203
    message = "Invalid control request"
