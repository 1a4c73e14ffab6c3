"""Shared fixtures. Every store-backed test runs once on SQLite and once on PostgreSQL."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cloudflare import AsyncCloudflare

from tests import pg
from warp_registry.bootstrap import InitResult, initialise, plan_registry
from warp_registry.clock import now_us
from warp_registry.domain.records import FleetRecords
from warp_registry.http.app import RegistryApp
from warp_registry.http.context import AppContext
from warp_registry.store import open_store
from warp_registry.store.sql_store import SqlStore

SEED = 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests parametrised onto PostgreSQL get the `postgres` mark (`-m "not postgres"`)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "postgresql" in callspec.params.values():
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each engine (PostgreSQL: its own database, dropped after)."""
    if request.param == "sqlite":
        yield str(tmp_path / "registry.db")
        return
    url = pg.fresh_database_url(request.node.name)
    yield url
    pg.release_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def bare_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database on each engine with no schema at all, for tests of the migrations."""
    if request.param == "sqlite":
        yield str(tmp_path / "bare.db")
        return
    url = pg.fresh_database_url(request.node.name, migrated=False)
    yield url
    pg.release_database(url)


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated, empty PostgreSQL database, for tests about PostgreSQL alone."""
    url = pg.fresh_database_url(request.node.name)
    yield url
    pg.release_database(url)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlStore]:
    opened = await open_store(database_url)
    yield opened
    await opened.close()


@dataclass
class Registry:
    """A store holding the demo fleet, plus what a test needs to check it independently."""

    store: SqlStore
    init: InitResult
    fleet: FleetRecords  # the records written, rebuilt from the seed: the expected data
    anchor_us: int

    @property
    def account_id(self) -> str:
        return self.init.account_id

    @property
    def token(self) -> str:
        return self.init.api_token


@pytest.fixture
async def registry(store: SqlStore) -> Registry:
    anchor = now_us()
    init = await initialise(store, seed=SEED, with_demo=True, anchor_us=anchor)
    fleet, _, _ = plan_registry(SEED, True, anchor)
    return Registry(store, init, fleet, anchor)


@pytest.fixture
def app(registry: Registry) -> RegistryApp:
    return RegistryApp(AppContext(store=registry.store))


@pytest.fixture
async def api(app: RegistryApp, registry: Registry) -> AsyncIterator[httpx.AsyncClient]:
    """Raw HTTP against the in-process app, with the init token already set."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver/client/v4",
        headers={"Authorization": f"Bearer {registry.token}"},
    ) as client:
        yield client


@pytest.fixture
async def anon(app: RegistryApp) -> AsyncIterator[httpx.AsyncClient]:
    """Raw HTTP with no credentials at all."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver/client/v4"
    ) as client:
        yield client


@pytest.fixture
async def sdk(app: RegistryApp, registry: Registry) -> AsyncIterator[AsyncCloudflare]:
    """The official async Python SDK, talking to the in-process app (no sockets)."""
    http_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    client = AsyncCloudflare(
        api_token=registry.token,
        base_url="http://testserver/client/v4",
        http_client=http_client,
        max_retries=0,
    )
    yield client
    await client.close()


# --- real server processes ---


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    base_url: str
    account_id: str
    token: str
    example_registration_id: str
    database: str
    process: subprocess.Popen[bytes]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed `warp-registry` command the way a user would."""
    return subprocess.run(
        [sys.executable, "-m", "warp_registry", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def start_server(database: str, *extra: str, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    # The child keeps its own copy of the file descriptor; ours closes at once.
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "warp_registry", "serve", "--database", database,
             "--port", str(port), *extra],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}/client/v4"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()}")
        try:
            httpx.get(base_url + "/", timeout=0.5)
            return process, base_url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not start: {log_path.read_text()}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def live_server(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """`warp-registry init --json` then `warp-registry serve` on a free port."""
    import json

    done = cli("init", "--json", "--database", database_url)
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    process, base_url = start_server(database_url, log_path=tmp_path / "server.log")
    yield LiveServer(
        base_url,
        created["account_id"],
        created["api_token"],
        created["example_registration_id"],
        database_url,
        process,
    )
    stop_server(process)
