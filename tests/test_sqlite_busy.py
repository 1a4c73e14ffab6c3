"""SQLite: a write that another process keeps waiting is answered 503, never half done."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests.conftest import cli
from tests.expect import assert_error_envelope
from warp_registry.http.app import RegistryApp
from warp_registry.http.context import AppContext
from warp_registry.store.sql_store import SqlStore
from warp_registry.store.sqlite import SqliteDatabase

BUDGET_S = 0.5


def _revoked_at(database: str, registration_id: str) -> object:
    with closing(sqlite3.connect(database)) as conn:
        row = conn.execute(
            "SELECT revoked_at FROM registrations WHERE id = ?", (registration_id,)
        ).fetchone()
    return row[0]


async def test_a_write_held_up_by_another_writer_is_a_503_and_writes_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = str(tmp_path / "busy.db")
    made = json.loads(cli("init", "--database", database, "--json").stdout)
    registration = made["example_registration_id"]
    # 50 ms per attempt and half a second in all, instead of 10 s and a minute.
    store = SqlStore(SqliteDatabase(database, busy_timeout_ms=50, write_budget_s=BUDGET_S))
    app = RegistryApp(AppContext(store=store))
    revoke = f"/accounts/{made['account_id']}/devices/registrations/revoke"
    assert _revoked_at(database, registration) is None

    holder = sqlite3.connect(database, isolation_level=None)  # e.g. a seed in progress
    holder.execute("BEGIN IMMEDIATE")
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver/client/v4",
            headers={"Authorization": f"Bearer {made['api_token']}"},
        ) as client:
            began = time.monotonic()
            response = await client.post(revoke, params={"id": registration})
            waited = time.monotonic() - began

            assert response.status_code == 503
            assert_error_envelope(response.json(), 10002)
            assert waited >= BUDGET_S
            assert _revoked_at(database, registration) is None
            (logged,) = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert "write lock" in logged.getMessage()
            assert logged.exc_info is None  # an outage, not a bug: no traceback
            caplog.clear()

            # Writes queued behind one another in this process share no budget: each
            # gives up when its own runs out, not one budget after the one before it.
            began = time.monotonic()
            queued = await asyncio.gather(
                *(client.post(revoke, params={"id": registration}) for _ in range(3))
            )
            waited = time.monotonic() - began
            assert [r.status_code for r in queued] == [503, 503, 503]
            assert waited < 2 * BUDGET_S

            holder.execute("ROLLBACK")
            again = await client.post(revoke, params={"id": registration})
            assert again.status_code == 200, again.text
            assert _revoked_at(database, registration) is not None
    finally:
        holder.close()
        await store.close()
