"""Identifier formats: how ids are made and recognised."""

from __future__ import annotations

import re
import uuid

_ACCOUNT_ID = re.compile(r"^[0-9a-f]{32}$", re.IGNORECASE)
_UUID = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE
)


def is_account_id(value: str) -> bool:
    """Account ids are 32 lowercase hex characters, as at Cloudflare."""
    return _ACCOUNT_ID.fullmatch(value) is not None


def is_uuid(value: str) -> bool:
    """Registration, device, profile and user ids are lowercase hyphenated UUIDs."""
    return _UUID.fullmatch(value) is not None


def new_uuid() -> str:
    return str(uuid.uuid4())


def new_account_id() -> str:
    return uuid.uuid4().hex
