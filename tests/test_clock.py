"""Timestamps: integer microseconds inside, RFC3339 with microseconds and `Z` outside."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from warp_registry.clock import format_optional, format_rfc3339, parse_rfc3339


def _us(moment: datetime) -> int:
    """Microseconds since the epoch, computed with integer arithmetic only."""
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2025-02-14T13:17:00Z", datetime(2025, 2, 14, 13, 17, tzinfo=UTC)),
        ("2026-01-26T19:27:49.770372Z", datetime(2026, 1, 26, 19, 27, 49, 770372, tzinfo=UTC)),
        ("2026-01-26t19:27:49.5z", datetime(2026, 1, 26, 19, 27, 49, 500000, tzinfo=UTC)),
        ("2026-01-26 19:27:49Z", datetime(2026, 1, 26, 19, 27, 49, tzinfo=UTC)),
        ("2025-02-14T15:17:00+02:00", datetime(2025, 2, 14, 13, 17, tzinfo=UTC)),
        ("2025-02-14T08:47:00-04:30", datetime(2025, 2, 14, 13, 17, tzinfo=UTC)),
        ("2025-02-14T13:17:00-00:00", datetime(2025, 2, 14, 13, 17, tzinfo=UTC)),
        ("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC)),
        ("1969-12-31T23:59:59.5Z", datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)),
    ],
)
def test_parse_accepts_rfc3339(text: str, moment: datetime) -> None:
    assert parse_rfc3339(text) == _us(moment)


def test_fraction_past_microseconds_is_truncated() -> None:
    base = _us(datetime(2025, 1, 1, tzinfo=UTC))
    assert parse_rfc3339("2025-01-01T00:00:00.1234569Z") == base + 123456
    assert parse_rfc3339("2025-01-01T00:00:00.123456999999Z") == base + 123456
    assert parse_rfc3339("2025-01-01T00:00:00.1Z") == base + 100000


@pytest.mark.parametrize(
    "text",
    [
        "", "2025-01-01", "2025-01-01T00:00:00", "2025-01-01T00:00Z", "2025-1-01T00:00:00Z",
        "2025-02-30T00:00:00Z", "2025-13-01T00:00:00Z", "2025-02-29T00:00:00Z",
        "2025-01-01T24:00:00Z", "2025-01-01T23:60:00Z", "2025-01-01T23:59:60Z",
        "0000-01-01T00:00:00Z", "2025-01-01T00:00:00.Z", "2025-01-01T00:00:00+2:00",
        "2025-01-01T00:00:00+24:00", "2025-01-01T00:00:00+05:60", "2025-01-01T00:00:00UTC",
        "2025-01-01T00:00:00Z\n", " 2025-01-01T00:00:00Z", "2025-01-01T00:00:00ZZ",
        "\u0662\u0660\u0662\u0665-01-01T00:00:00Z", "2025-01-01T00:00:00\uff0b01:00",
        "1700000000",
    ],
)  # fmt: skip
def test_parse_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(text)


@pytest.mark.parametrize(
    ("us", "text"),
    [
        (0, "1970-01-01T00:00:00.000000Z"),
        (1_700_000_000_123_456, "2023-11-14T22:13:20.123456Z"),
        (1_739_539_020_000_000, "2025-02-14T13:17:00.000000Z"),
        (-500_000, "1969-12-31T23:59:59.500000Z"),
        (_us(datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)),
         "2024-02-29T23:59:59.999999Z"),
    ],
)  # fmt: skip
def test_format_is_utc_with_microseconds_and_z(us: int, text: str) -> None:
    assert format_rfc3339(us) == text


def test_format_optional_keeps_none() -> None:
    assert format_optional(None) is None
    assert format_optional(0) == "1970-01-01T00:00:00.000000Z"


_MOMENTS = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.just(UTC)
)


@given(_MOMENTS)
def test_format_then_parse_is_the_identity(moment: datetime) -> None:
    us = _us(moment)
    text = format_rfc3339(us)
    assert text == moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert parse_rfc3339(text) == us


@given(_MOMENTS, st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59))
def test_offsets_name_the_same_instant(moment: datetime, offset_minutes: int) -> None:
    local = moment.astimezone(timezone(timedelta(minutes=offset_minutes)))
    assert parse_rfc3339(local.isoformat()) == _us(moment)


def test_format_outside_the_date_range_still_works() -> None:
    """Years 0 and 10000 have no `datetime`; formatting falls back to gmtime."""
    assert format_rfc3339(parse_rfc3339("0001-01-01T00:00:00+01:00")) == (
        "0000-12-31T23:00:00.000000Z"
    )
    assert format_rfc3339(parse_rfc3339("9999-12-31T23:59:59-01:00")) == (
        "10000-01-01T00:59:59.000000Z"
    )
