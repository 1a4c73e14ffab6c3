"""The store floor: a bare ASGI app that runs warp-registry's GET query and nothing else.

For `GET /client/v4/accounts/{account}/devices/registrations/{id}` it hashes the Bearer
token, runs the same single SQLite statement warp-registry runs for that request (token
check, registration, device and profile in one query) on one connection, and answers
with the row's values as a JSON list. No routing, no validation, no error envelope, no
domain objects, no access line: it is what any app built on this query would cost at the
very least. Beside the ceiling (no work at all) it shows how much of the server's
capacity the query alone takes, so the gap between it and warp-registry is the price of
everything else the product does per request.

Run under granian with the settings of `warp-registry serve` (see `ceiling.py`):

    python bench/store_floor.py --database bench/results/all/registry.db --port 18002
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys
from pathlib import Path

import orjson
from ceiling import Message, Receive, Scope, Send, lifespan, serve_granian_app, server_args

from warp_registry.store.sql_store import _GET_REGISTRATION_WITH_TOKEN

DATABASE_ENV = "STORE_FLOOR_DATABASE"

_HEADERS = [(b"content-type", b"application/json")]
_NOT_FOUND_START: Message = {"type": "http.response.start", "status": 404, "headers": _HEADERS}
_NOT_FOUND_BODY: Message = {"type": "http.response.body", "body": b"null"}
_FOUND_START: Message = {"type": "http.response.start", "status": 200, "headers": _HEADERS}


class StoreFloorApp:
    """ASGI app: path and Bearer token -> one SQLite row -> JSON list."""

    def __init__(self, database: str) -> None:
        # One connection read on the event loop's thread, as warp-registry reads a row.
        self._conn = sqlite3.connect(database, isolation_level=None, check_same_thread=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return

        # /client/v4/accounts/{account}/devices/registrations/{id}: segments 4 and 7.
        segments = scope["path"].split("/")
        token = None
        for name, value in scope["headers"]:
            if name == b"authorization" and value.startswith(b"Bearer "):
                token = value[7:]

        row = None
        if token is not None and len(segments) == 8:
            params = (segments[4], segments[7], hashlib.sha256(token).hexdigest())
            row = self._conn.execute(_GET_REGISTRATION_WITH_TOKEN, params).fetchone()

        if row is None or row[3] is None:
            await send(_NOT_FOUND_START)
            await send(_NOT_FOUND_BODY)
            return
        await send(_FOUND_START)
        await send({"type": "http.response.body", "body": orjson.dumps(row)})


def app_from_env() -> StoreFloorApp:
    """Factory for granian: the database is named by STORE_FLOOR_DATABASE."""
    return StoreFloorApp(os.environ[DATABASE_ENV])


def main() -> None:
    args = server_args(
        "Serve the GET query alone with granian.", "--database", "a warp-registry SQLite file"
    )
    os.environ[DATABASE_ENV] = str(Path(args.database).resolve())
    serve_granian_app("store_floor:app_from_env", args.port, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
