"""Admin override codes: one-time codes that let a user switch WARP off for a while.

Cloudflare returns one 7-digit code per duration (1, 3, 6, 12 and 24 hours) and does not
say how they are made. Ours are HOTP codes (RFC 4226: HMAC-SHA1, dynamic truncation)
keyed by the registration's own secret, with a counter built from the current time
window and the duration. So a code is stable for the whole window, different for every
duration, registration and window, and can be checked later without storing it.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

DURATIONS_HOURS = (1, 3, 6, 12, 24)
CODE_DIGITS = 7
# Our choice: codes change at every whole UTC hour (windows start at xx:00:00).
WINDOW_US = 3600 * 1_000_000


def hotp(key: bytes, counter: int, digits: int) -> str:
    """The RFC 4226 HOTP value of `counter`, zero-padded to `digits` digits."""
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    truncated = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFF_FFFF
    return str(truncated % 10**digits).zfill(digits)


def window_of(moment_us: int) -> int:
    """The index of the time window holding `moment_us` (microseconds since the epoch)."""
    return moment_us // WINDOW_US


def override_codes(secret: str, moment_us: int) -> dict[str, dict[str, str]]:
    """The `disable_for_time` codes of a registration at `moment_us`.

    The counter is `window * 256 + hours`, so each duration gets its own code.
    """
    key = _key(secret)
    window = window_of(moment_us)
    codes = {str(hours): hotp(key, window * 256 + hours, CODE_DIGITS) for hours in DURATIONS_HOURS}
    return {"disable_for_time": codes}


def _key(secret: str) -> bytes:
    """Secrets are stored as hex (20 random bytes); any other text is used as is."""
    try:
        return bytes.fromhex(secret)
    except ValueError:
        return secret.encode()
