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


# Chain codes for InvalidParameters. 11000 is observed at Cloudflare for per_page; the
# others are our choice, in the same range.
PER_PAGE_CHAIN = 11000
ENUM_CHAIN = 11001
TIMESTAMP_CHAIN = 11002
UUID_CHAIN = 11003
CURSOR_CHAIN = 11004
ID_LIST_CHAIN = 11005


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
