"""The request journal: what clients sent and got back, for tests to inspect.

Off until a size is set (`PUT /_warp-registry/journal`, `warp-registry journal on`); then
the newest `size` requests to the API are kept (pruned every few requests, so a few more
may sit in the table for a moment). Secrets are masked before anything is stored:
credential headers, and JSON body fields whose names say they hold a token, a secret, a
password or a private key. Bodies are kept as sent otherwise (up to 64 KiB each), so a
malformed body shows as the bytes the client really sent.
"""

from __future__ import annotations

from typing import Any

import orjson

from warp_registry.clock import format_rfc3339
from warp_registry.errors import ControlRequestInvalid
from warp_registry.secrets import hash_secret, mask
from warp_registry.store.database import Row
from warp_registry.store.list_sql import like_pattern

MAX_BODY_CHARS = 64 * 1024
DEFAULT_LIST = 100
MAX_LIST = 10_000
MAX_SIZE = 100_000
PRUNE_EVERY = 32

SECRET_HEADERS = frozenset({"authorization", "x-auth-key", "cf-access-client-secret",
                            "cf-access-jwt-assertion", "cookie", "set-cookie"})  # fmt: skip
_SECRET_SUFFIXES = ("token", "secret", "password", "private_key")


def credential_of(headers: dict[str, str]) -> tuple[str, str] | None:
    """How the journal finds the credential's id: ("token", hash) or ("email", email)."""
    email = headers.get("x-auth-email")
    if email is not None:
        return ("email", email.lower())
    authorization = headers.get("authorization", "")
    if authorization.startswith("Bearer "):
        return ("token", hash_secret(authorization[7:]))
    return None


def masked_headers(headers: dict[str, str]) -> str:
    shown = {k: mask(v) if k in SECRET_HEADERS else v for k, v in sorted(headers.items())}
    return orjson.dumps(shown).decode()


def masked_body(raw: bytes) -> str:
    """The body as text, secret fields masked when it is JSON; truncated to 64 KiB."""
    if not raw:
        return ""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        document = None
    if isinstance(document, dict | list) and _has_secret(document):
        text = orjson.dumps(_mask(document)).decode()
    else:
        text = raw.decode("utf-8", errors="replace")
    return text[:MAX_BODY_CHARS]


def _is_secret_key(key: str) -> bool:
    return key.lower().endswith(_SECRET_SUFFIXES)


def _has_secret(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_is_secret_key(k) or _has_secret(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_secret(item) for item in value)
    return False


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: mask(v) if _is_secret_key(k) and isinstance(v, str) else _mask(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_mask(item) for item in value]
    return value


def filters_from_query(query: dict[str, list[str]]) -> tuple[list[tuple[str, Any]], int]:
    """SQL conditions and the limit from `method`, `path`, `status`, `credential_id`, `limit`."""
    where: list[tuple[str, Any]] = []

    def one(name: str) -> str | None:
        values = query.get(name)
        return values[-1] if values else None

    if (method := one("method")) is not None:
        where.append(("method = ?", method.upper()))
    if (path := one("path")) is not None:
        where.append(("path LIKE ? ESCAPE '\\'", like_pattern(path)))
    if (credential := one("credential_id")) is not None:
        where.append(("credential_id = ?", credential))
    if (status := one("status")) is not None:
        where.append(("status = ?", _int(status, "status", 100, 599)))
    limit = one("limit")
    return where, DEFAULT_LIST if limit is None else _int(limit, "limit", 1, MAX_LIST)


def entry_to_api(row: Row) -> dict[str, Any]:
    (entry_id, at, method, path, query, credential_id, status, duration_us, note,
     request_headers, request_body, response_body) = row  # fmt: skip
    return {
        "id": entry_id,
        "at": format_rfc3339(int(at)),
        "method": method,
        "path": path,
        "query": query,
        "credential_id": credential_id,
        "status": int(status),
        "duration_ms": round(int(duration_us) / 1000, 3),
        "note": note,
        "request": {"headers": orjson.loads(request_headers), "body": request_body},
        "response": {"body": response_body},
    }


def _int(text: str, name: str, low: int, high: int) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise ControlRequestInvalid(f"{name} must be an integer from {low} to {high}")
    return int(text)
