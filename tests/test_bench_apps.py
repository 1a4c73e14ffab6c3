"""The benchmark's reference servers answer what the benchmark assumes they answer.

bench/ceiling.py must send the prepared bytes for a known path, and bench/store_floor.py
must run warp-registry's own GET query, so a change to that query (or to the token check
inside it) cannot silently turn the floor into a measurement of something else.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import cli

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def bench_modules() -> Iterator[tuple[Any, Any]]:
    sys.path.insert(0, str(BENCH))
    try:
        import ceiling
        import store_floor

        yield ceiling, store_floor
    finally:
        sys.path.remove(str(BENCH))


def _get(app: Any, path: str, token: str) -> tuple[int, bytes]:
    """One GET through an ASGI app; (status, body)."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": "GET", "path": path, "query_string": b"include=policy",
        "headers": [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode())],
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], sent[1]["body"]


def test_store_floor_runs_the_registry_query(tmp_path: Path, bench_modules: Any) -> None:
    _, store_floor = bench_modules
    database = str(tmp_path / "floor.db")
    made = json.loads(cli("init", "--database", database, "--json").stdout)
    account, token = made["account_id"], made["api_token"]
    registration = made["example_registration_id"]
    path = f"/client/v4/accounts/{account}/devices/registrations/{registration}"
    app = store_floor.StoreFloorApp(database)

    status, body = _get(app, path, token)
    assert status == 200
    row = orjson.loads(body)
    assert row[2] == account  # the token's account, from the token join
    assert row[3] == registration

    assert _get(app, path, token + "x")[0] == 404
    assert _get(app, "/x", token)[0] == 404
    assert _get(app, path.replace(registration[:8], "00000000"), token)[0] == 404


def test_ceiling_sends_the_prepared_bytes(tmp_path: Path, bench_modules: Any) -> None:
    ceiling, _ = bench_modules
    bodies = tmp_path / "bodies.json"
    bodies.write_text(json.dumps({
        "headers": [["content-type", "application/json"]],
        "bodies": {"/known": '{"result":1}'},
    }))  # fmt: skip
    app = ceiling.CeilingApp(*ceiling.load_bodies(str(bodies)))

    assert _get(app, "/known", "t") == (200, b'{"result":1}')
    assert _get(app, "/unknown", "t")[0] == 404
