"""Validation of query parameters shared by the list and get endpoints.

Each function takes the raw text and returns a typed value or raises `InvalidParameters`
with a message that names the parameter and what it accepts.
"""

from __future__ import annotations

from collections.abc import Collection

from warp_registry.errors import ENUM_CHAIN, InvalidParameters


def parse_include(raw: str | None, allowed: Collection[str]) -> frozenset[str]:
    """`include` is a comma-separated list; every item must be one the endpoint knows."""
    if raw is None or raw == "":
        return frozenset()

    items = frozenset(item.strip() for item in raw.split(","))
    unknown = sorted(items - set(allowed))
    if unknown:
        raise InvalidParameters(
            ENUM_CHAIN,
            f"include: unsupported value {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}",
        )
    return items
