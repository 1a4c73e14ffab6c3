"""Helpers shared by the enrollment tests (tests/test_enroll_*.py).

Their fixtures are in tests/enroll_fixtures.py, which test modules load as a plugin.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
from cloudflare import AsyncCloudflare

from tests.conftest import Registry
from tests.warp_test_client import Identity
from warp_registry.domain import access_jwt
from warp_registry.domain.access_jwt import SigningKey
from warp_registry.store.sql_store import SqlStore

ENVELOPE_KEYS = {"success", "errors", "messages", "result"}


@dataclass
class AccessRole:
    """The team's Access, as the tests play it: signs JWTs with the account's key."""

    key: SigningKey

    def jwt(self, email: str, **claims: Any) -> str:
        return access_jwt.mint(self.key, email, **claims)

    def identity(self, email: str, **claims: Any) -> Identity:
        return Identity(jwt=self.jwt(email, **claims))


def assert_error(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    """The response is an error envelope with this status and code; returns the error."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ENVELOPE_KEYS
    assert body["success"] is False and body["result"] is None and body["messages"] == []
    assert [error["code"] for error in body["errors"]] == [code], body
    return dict(body["errors"][0])


def result_of(response: httpx.Response) -> dict[str, Any]:
    """The result of a successful envelope."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == ENVELOPE_KEYS
    assert body["success"] is True and body["errors"] == [] and body["messages"] == []
    return dict(body["result"])


async def admin_get(sdk: AsyncCloudflare, registry: Registry, registration_id: str) -> Any:
    """The registration through the official SDK, with its profile."""
    return await sdk.zero_trust.devices.registrations.get(
        registration_id, account_id=registry.account_id, include="policy"
    )


async def row_counts(store: SqlStore) -> dict[str, int]:
    """Rows per table that enrollment writes to, to show a refused call wrote nothing."""
    counts = {}
    for table in ("registrations", "client_registrations", "users", "devices",
                  "access_jwt_uses", "account_keys"):  # fmt: skip
        row = await store.db.fetch_one(f"SELECT COUNT(*) FROM {table}")
        assert row is not None
        counts[table] = int(row[0])
    return counts


async def device_row(store: SqlStore, device_id: str) -> dict[str, Any]:
    """The stored device, for what the admin API does not show yet (last-seen fields)."""
    row = await store.db.fetch_one(
        "SELECT name, client_version, model, serial_number, install_id, last_seen_at, "
        "last_seen_user_id, last_seen_registration_id, device_type FROM devices WHERE id = ?",
        (device_id,),
    )
    assert row is not None
    keys = ("name", "client_version", "model", "serial_number", "install_id", "last_seen_at",
            "last_seen_user_id", "last_seen_registration_id", "device_type")  # fmt: skip
    return dict(zip(keys, row, strict=True))


async def user_groups(store: SqlStore, user_id: str) -> list[dict[str, str]]:
    row = await store.db.fetch_one("SELECT groups FROM users WHERE id = ?", (user_id,))
    assert row is not None
    return list(json.loads(row[0]))
