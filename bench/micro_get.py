"""Per-part cost of the GET-registration hot path, measured in-process (no HTTP server).

Each part of what `RegistryApp` does for `GET …/registrations/{id}?include=policy` is
timed on its own, over random registrations of the benchmark database, then the whole app
call (fake ASGI scope, no-op send) with the access log off and on. Run it after
`run_get.py` has built the database (it reads `bench/results/work/fleet.json`):

    .venv/bin/python bench/micro_get.py
    PYTHONPATH=/tmp/proto/src .venv/bin/python bench/micro_get.py   # a modified copy

Numbers are µs per call: the best of 5 repeats, with the garbage collector off while
timing (as `timeit` does). Use them to rank the parts; the HTTP runs give the real total.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import logging.config
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import warp_registry
from warp_registry.clock import format_rfc3339
from warp_registry.domain.models import registration_to_api
from warp_registry.domain.queries import parse_include
from warp_registry.http.app import RegistryApp
from warp_registry.http.auth import read_credentials
from warp_registry.http.context import AppContext
from warp_registry.http.envelope import success_body
from warp_registry.http.request import Request
from warp_registry.http.server import logging_config
from warp_registry.logs import AccessLog
from warp_registry.store import open_store, sql_store
from warp_registry.store.sql_store import BearerProbe, registration_from_row

WORK = Path(__file__).resolve().parent / "results" / "work"
REPEATS = 5
SAMPLE_IDS = 20_000


def best_us(fn: Callable[[], Any], n: int) -> float:
    """Best of REPEATS runs of `fn` called n times, in µs per call, GC off."""
    results = []
    for _ in range(REPEATS):
        gc.disable()
        try:
            started = time.perf_counter()
            for _ in range(n):
                fn()
            results.append((time.perf_counter() - started) / n * 1e6)
        finally:
            gc.enable()
    return min(results)


async def best_us_async(
    fn: Callable[[], Awaitable[Any]], n: int, *, collect: bool = False
) -> float:
    """As best_us; with `collect`, the garbage collector stays on (as in a server)."""
    results = []
    for _ in range(REPEATS):
        if not collect:
            gc.disable()
        try:
            started = time.perf_counter()
            for _ in range(n):
                await fn()
            results.append((time.perf_counter() - started) / n * 1e6)
        finally:
            gc.enable()
    return min(results)


class Cycle:
    """Endless round-robin over prepared inputs, so every call gets a different one."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.index = 0

    def next(self) -> Any:
        self.index = (self.index + 1) % len(self.items)
        return self.items[self.index]


async def measure(n: int) -> list[tuple[str, float]]:
    meta = json.loads((WORK / "fleet.json").read_text())
    ids = (WORK / "registration_ids.txt").read_text().split()
    rng = random.Random(7)
    sample = [rng.choice(ids) for _ in range(SAMPLE_IDS)]
    account, token = meta["account_id"], meta["api_token"]
    prefix = f"/client/v4/accounts/{account}/devices/registrations/"
    auth = f"Bearer {token}"
    raw_headers = [(b"host", b"127.0.0.1:8787"), (b"authorization", auth.encode())]
    headers = {"host": "127.0.0.1:8787", "authorization": auth}

    store = await open_store(meta["database"], migrate=False)
    app = RegistryApp(AppContext(store=store))
    gc.collect()
    gc.freeze()  # as a server's worker does once started
    probe = read_credentials(headers)
    assert isinstance(probe, BearerProbe)
    results: list[tuple[str, float]] = []

    def add(label: str, value: float) -> None:
        results.append((label, value))
        print(f"{value:8.2f} µs  {label}", flush=True)

    paths = Cycle([prefix + i for i in sample])
    add(
        "header dict build (2 headers, as wrk sends)",
        best_us(
            lambda: {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw_headers}, n
        ),
    )
    add("Router.resolve", best_us(lambda: app.router.resolve("GET", paths.next()), n))
    add("Request + query_one + parse_include", best_us(
        lambda: parse_include(
            Request("GET", "/", "include=policy", headers).query_one("include"), {"policy"}
        ), n))  # fmt: skip
    add("read_credentials (regex + sha256)", best_us(lambda: read_credentials(headers), n))

    sql = sql_store._GET_REGISTRATION_WITH_TOKEN
    params = Cycle([(account, i, probe.token_hash) for i in sample])
    add("SQL: db.fetch_one of the GET query", await best_us_async(
        lambda: store.db.fetch_one(sql, params.next()), n))  # fmt: skip
    rows = [await store.db.fetch_one(sql, p) for p in params.items[:2000]]
    row_cycle = Cycle(rows)
    add("row -> Registration (registration_from_row)", best_us(
        lambda: registration_from_row(row_cycle.next(), 3), n))  # fmt: skip
    add("store.get_registration (SQL + row -> dataclass)", await best_us_async(
        lambda: store.get_registration(probe, account, params.next()[1]), n))  # fmt: skip

    regs = Cycle([registration_from_row(r, 3) for r in rows])
    add("registration_to_api (include=policy)", best_us(
        lambda: registration_to_api(regs.next(), True), n))  # fmt: skip
    stamps = Cycle([r.created_at for r in regs.items])
    add("format_rfc3339 (one; 4-5 per request)", best_us(
        lambda: format_rfc3339(stamps.next()), n))  # fmt: skip
    bodies = Cycle([registration_to_api(r, True) for r in regs.items])
    add("success_body (orjson)", best_us(lambda: success_body(bodies.next()), n))

    add("access log line (info, to a file)", best_us(_access_logger(), n))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    scopes = Cycle([
        {"type": "http", "method": "GET", "path": prefix + i,
         "query_string": b"include=policy", "headers": raw_headers}
        for i in sample
    ])  # fmt: skip
    logging.getLogger("warp_registry").setLevel(logging.WARNING)
    add("whole app call, log level warning", await best_us_async(
        lambda: app(scopes.next(), receive, send), n))  # fmt: skip
    logging.getLogger("warp_registry").setLevel(logging.INFO)
    add("whole app call, log level info (to a file)", await best_us_async(
        lambda: app(scopes.next(), receive, send), n))  # fmt: skip
    add("whole app call, log level info, garbage collector on", await best_us_async(
        lambda: app(scopes.next(), receive, send), n, collect=True))  # fmt: skip
    logging.getLogger("warp_registry").setLevel(logging.WARNING)

    await store.close()
    return results


def _access_logger() -> Callable[[], None]:
    """`serve --log-level info`'s logging config, with its stream sent to a temp file."""
    config = logging_config("info")
    # A real (unnamed, self-deleting) file, so each line costs a real write.
    log_file = tempfile.TemporaryFile("w")  # noqa: SIM115 - lives as long as the process
    config["handlers"]["registry"]["stream"] = log_file
    logging.config.dictConfig(config)
    log = AccessLog()
    path = "/client/v4/accounts/x/devices/registrations/y?include=policy"
    return lambda: log.write("GET", path, 200, 0.12, "0123abcd4567ef89")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20_000, help="calls per repeat")
    args = parser.parse_args()
    print(f"warp_registry from {Path(warp_registry.__file__).parent}")
    asyncio.run(measure(args.n))


if __name__ == "__main__":
    main()
