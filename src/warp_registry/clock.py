"""Time as the registry sees it: integer microseconds since the epoch, UTC.

Both stores keep every timestamp as a BIGINT of microseconds, so ordering, comparison and
cursors behave the same on SQLite and PostgreSQL. The API shows them as RFC3339 strings
with microseconds and a `Z` suffix, the form Cloudflare's own responses use.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache

# ASCII digits only (`\d` would also take other scripts' digits) and matched with
# `fullmatch`, so a trailing newline is refused too.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


# The server clock testers control (docs/control-plane.md): frozen at an instant, or
# running at an offset from the machine's clock. These are this process's copies of the
# state kept in the store; `warp_registry.control.runtime` refreshes them, so `now_us`
# costs one global check more than reading the system clock.
_frozen_us: int | None = None
_offset_us: int = 0


def now_us() -> int:
    """The current time of the registry in microseconds (the machine's, unless changed)."""
    if _frozen_us is None:
        return time.time_ns() // 1000 + _offset_us
    return _frozen_us


def real_now_us() -> int:
    """The machine's clock, whatever the server clock says (rate-limit windows use it)."""
    return time.time_ns() // 1000


def set_server_clock(frozen_us: int | None, offset_us: int) -> None:
    """Make `now_us` return `frozen_us`, or the machine's time plus `offset_us`."""
    global _frozen_us, _offset_us
    _frozen_us = frozen_us
    _offset_us = offset_us


def server_clock() -> tuple[int | None, int]:
    """(frozen instant or None, offset) as this process currently applies them."""
    return _frozen_us, _offset_us


def format_rfc3339(us: int) -> str:
    """`1700000000123456` -> `2023-11-14T22:13:20.123456Z`.

    Every registration in a response carries four or five timestamps, so this is on the
    hot path: the date part is cached per day and the rest is string concatenation, about
    four times cheaper than `time.gmtime` plus a format string.
    """
    seconds, micros = divmod(us, 1_000_000)
    days, second = divmod(seconds, _DAY_SECONDS)
    return (
        _date_prefix(days)
        + _TWO_DIGITS[second // 3600]
        + ":"
        + _TWO_DIGITS[second // 60 % 60]
        + ":"
        + _TWO_DIGITS[second % 60]
        + "."
        + str(micros).zfill(6)
        + "Z"
    )


_DAY_SECONDS = 86_400
_EPOCH_DATE = date(1970, 1, 1)
_TWO_DIGITS = [f"{n:02d}" for n in range(60)]


@lru_cache(maxsize=4096)
def _date_prefix(days: int) -> str:
    """`YYYY-MM-DDT` of the day `days` after 1970-01-01."""
    try:
        return (_EPOCH_DATE + timedelta(days=days)).isoformat() + "T"
    except OverflowError:  # outside years 1-9999: no `date`, but gmtime still works
        t = time.gmtime(days * _DAY_SECONDS)
        return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"


def format_optional(us: int | None) -> str | None:
    """`format_rfc3339`, with None kept as None (for nullable fields)."""
    return None if us is None else format_rfc3339(us)


def parse_rfc3339(text: str) -> int:
    """Parse RFC3339 (`Z` or an offset, optional fraction) into microseconds.

    Raises ValueError for anything else, including dates that do not exist.
    Digits past the sixth fractional place are dropped, not rounded.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"not an RFC3339 timestamp: {text!r}")

    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if zone in ("Z", "z"):
        tz = UTC
    else:
        sign = 1 if zone[0] == "+" else -1
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError(f"bad UTC offset in {text!r}")
        tz = timezone(timedelta(seconds=sign * (hours * 3600 + minutes * 60)))

    moment = datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=tz
    )
    micros = int((fraction or ".0")[1:7].ljust(6, "0"))
    return int(moment.timestamp()) * 1_000_000 + micros
