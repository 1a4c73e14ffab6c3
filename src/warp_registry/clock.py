"""Time as the registry sees it: integer microseconds since the epoch, UTC.

Both stores keep every timestamp as a BIGINT of microseconds, so ordering, comparison and
cursors behave the same on SQLite and PostgreSQL. The API shows them as RFC3339 strings
with microseconds and a `Z` suffix, the form Cloudflare's own responses use.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?"
    r"([Zz]|[+-]\d{2}:\d{2})$"
)


def now_us() -> int:
    """The current time in microseconds."""
    return time.time_ns() // 1000


def format_rfc3339(us: int) -> str:
    """`1700000000123456` -> `2023-11-14T22:13:20.123456Z`."""
    seconds, micros = divmod(us, 1_000_000)
    t = time.gmtime(seconds)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{micros:06d}Z"
    )


def format_optional(us: int | None) -> str | None:
    return None if us is None else format_rfc3339(us)


def parse_rfc3339(text: str) -> int:
    """Parse RFC3339 (`Z` or an offset, optional fraction) into microseconds.

    Raises ValueError for anything else, including dates that do not exist.
    Digits past the sixth fractional place are dropped, not rounded.
    """
    match = _RFC3339.match(text)
    if match is None:
        raise ValueError(f"not an RFC3339 timestamp: {text!r}")

    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if zone in ("Z", "z"):
        tz = timezone.utc
    else:
        sign = 1 if zone[0] == "+" else -1
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError(f"bad UTC offset in {text!r}")
        tz = timezone(sign * (hours * 3600 + minutes * 60) * _ONE_SECOND)

    moment = datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=tz
    )
    micros = int((fraction or ".0")[1:7].ljust(6, "0"))
    return int(moment.timestamp()) * 1_000_000 + micros


_ONE_SECOND = datetime(1970, 1, 1, 0, 0, 1) - datetime(1970, 1, 1)
