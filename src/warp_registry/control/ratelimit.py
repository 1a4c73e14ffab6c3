"""Cloudflare's per-credential rate limit: N requests per fixed window of W seconds.

The count lives in the store (`ControlStore.count_request`), so worker processes and
servers sharing one PostgreSQL database count together. Windows follow the machine's
clock, not the server clock testers move: a frozen clock must not freeze a window, and
`Retry-After` is a real wait (our choice).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from warp_registry.clock import real_now_us
from warp_registry.errors import RateLimited
from warp_registry.secrets import hash_secret
from warp_registry.store.sql_store import SqlStore

# Cloudflare's published client API limit: 1200 requests per five minutes per user.
CLOUDFLARE_LIMIT = (1200, 300)


@dataclass(frozen=True, slots=True)
class RateLimit:
    limit: int
    window_s: int

    @property
    def policy_header(self) -> bytes:
        return f'"default";q={self.limit};w={self.window_s}'.encode()


def parse_rate_limit(text: str) -> RateLimit:
    """`1200/300` (requests/seconds) or `cloudflare`; raises ValueError otherwise."""
    if text.strip().lower() == "cloudflare":
        return RateLimit(*CLOUDFLARE_LIMIT)
    count, sep, seconds = text.partition("/")
    if not sep or not count.strip().isdigit() or not seconds.strip().isdigit():
        raise ValueError(f"rate limit {text!r} is not REQUESTS/SECONDS or 'cloudflare'")
    limit = RateLimit(int(count), int(seconds))
    if limit.limit < 1 or not 1 <= limit.window_s <= 86_400:
        raise ValueError("a rate limit needs at least 1 request and a 1 to 86400 s window")
    return limit


def bucket_of(headers: dict[str, str]) -> str:
    """Whose budget a request spends: its credential, hashed (never stored in clear).

    Requests without credentials share one `anonymous` budget (our choice).
    """
    email = headers.get("x-auth-email")
    if email is not None:
        return "email:" + hash_secret(email.lower())
    authorization = headers.get("authorization")
    if authorization is not None:
        return "bearer:" + hash_secret(authorization)
    return "anonymous"


async def spend(
    store: SqlStore, limit: RateLimit, headers: dict[str, str]
) -> tuple[list[tuple[bytes, bytes]], RateLimited | None]:
    """Count the request; returns the Ratelimit headers and the 429 to send, if any."""
    now = real_now_us()
    window_us = limit.window_s * 1_000_000
    start = now - now % window_us
    count = await store.control.count_request(bucket_of(headers), start)

    reset_s = max(1, math.ceil((start + window_us - now) / 1_000_000))
    remaining = max(0, limit.limit - count)
    headers_out = [
        (b"ratelimit", f'"default";r={remaining};t={reset_s}'.encode()),
        (b"ratelimit-policy", limit.policy_header),
    ]
    if count <= limit.limit:
        return headers_out, None
    return headers_out, RateLimited(headers={"retry-after": str(reset_s)})
