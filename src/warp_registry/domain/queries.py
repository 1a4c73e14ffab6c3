"""Validation of query parameters shared by the list and get endpoints.

Each function takes the raw text and returns a typed value or raises `InvalidParameters`
with a message that names the parameter and what it accepts.
"""

from __future__ import annotations

from collections.abc import Collection

from warp_registry.errors import ENUM_CHAIN, InvalidParameters


def is_storable_text(text: str) -> bool:
    """Whether both engines can bind `text` as a parameter.

    PostgreSQL refuses NUL in text outright, and a lone surrogate (which a JSON `\\ud800`
    decodes to) has no UTF-8 encoding; SQLite would accept or mangle either, so both are
    refused before any store call, identically on both engines.
    """
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_text(name: str, raw: str, chain: int) -> str:
    """`raw` unchanged if both engines can store and compare it; else InvalidParameters.

    Every free-text query parameter goes through this before it reaches the store.
    """
    if not is_storable_text(raw):
        raise InvalidParameters(
            chain, f"{name}: must not contain NUL characters or invalid Unicode"
        )
    return raw


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
