"""A pytest plugin: a fresh warp-registry per test, and the official SDK clients wired to it.

Installed with warp-registry (entry point `pytest11`), so its fixtures exist in any test
suite of an environment that has warp-registry, pytest, httpx and `cloudflare`:

- `warp_registry`: a fresh registry for the test (`WarpRegistry`): the account id, an
  API token, and the control plane (clock, faults, journal, export/import, reset).
- `cloudflare_client`: a `cloudflare.Cloudflare` (sync) client for that registry.
- `async_cloudflare_client`: a `cloudflare.AsyncCloudflare` client for it.

In process (the default) the registry is a SQLite database in the test's temporary
directory and the clients reach the ASGI app through an httpx transport: no socket, no
port, no server process. The app runs on a private event loop in a background thread
(one per test session); the sync transport hands each request to that loop and waits for
the answer, and the async transport awaits it from the test's own loop. So the sync
client works in plain `def` tests, and the async one in any event loop.

Against a running server instead: `--warp-registry-url http://127.0.0.1:8787` (or the
environment variable WARP_REGISTRY_URL) with its admin token in WARP_REGISTRY_ADMIN_TOKEN
(or `--warp-registry-admin-token`). Each test then resets that server: point it only at
a registry made for tests. docs/testing.md has a complete example.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    import httpx
    from cloudflare import AsyncCloudflare, Cloudflare

    from warp_registry.store.sql_store import SqlStore

T = TypeVar("T")
URL_ENV = "WARP_REGISTRY_URL"
ADMIN_TOKEN_ENV = "WARP_REGISTRY_ADMIN_TOKEN"
IN_PROCESS_ROOT = "http://warp-registry.test"
REQUEST_TIMEOUT_S = 120


class AppLoop:
    """An event loop on a daemon thread, where the in-process apps and their stores live."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="warp-registry-app", daemon=True
        )
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the app loop and wait for its result (from another thread)."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(REQUEST_TIMEOUT_S)

    async def run_async(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the app loop and await it from the caller's own loop."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def _transports(app_loop: AppLoop, app: Any) -> tuple[httpx.BaseTransport,
                                                      httpx.AsyncBaseTransport]:  # fmt: skip
    """A sync and an async httpx transport that deliver requests to `app` on `app_loop`."""
    import httpx

    asgi = httpx.ASGITransport(app=app)

    async def exchange(method: str, url: str, headers: list[tuple[bytes, bytes]],
                       body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:  # fmt: skip
        request = httpx.Request(method, url, headers=headers, content=body)
        response = await asgi.handle_async_request(request)
        content = await response.aread()
        return response.status_code, response.headers.raw, content

    class SyncTransport(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            answer = app_loop.run(
                exchange(request.method, str(request.url), request.headers.raw, request.read())
            )
            return httpx.Response(answer[0], headers=answer[1], content=answer[2])

    class AsyncTransport(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            body = await request.aread()
            answer = await app_loop.run_async(
                exchange(request.method, str(request.url), request.headers.raw, body)
            )
            return httpx.Response(answer[0], headers=answer[1], content=answer[2])

    return SyncTransport(), AsyncTransport()


class WarpRegistry:
    """One registry under test: credentials, SDK clients and the control plane."""

    def __init__(self, root_url: str, admin_token: str,
                 transports: tuple[Any, Any] | None = None) -> None:  # fmt: skip
        import httpx

        self.root_url = root_url
        self.base_url = root_url + "/client/v4"
        self._transports = transports
        self.control = httpx.Client(
            base_url=root_url + "/_warp-registry",
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=REQUEST_TIMEOUT_S,
            transport=transports[0] if transports else None,
        )
        self.account_id = ""
        self.api_token = ""
        self.example_registration_id: str | None = None

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.control.request(method, path, **kwargs)
        if response.status_code != 200:
            raise RuntimeError(f"control plane {method} {path}: {response.text}")
        return response.json()["result"]

    # --- registry content ---

    def reset(self, *, demo: bool = True, seed: int = 1, devices: int | None = None) -> None:
        """Start over: an empty account or the demo fleet (of `devices` devices)."""
        body: dict[str, Any] = {"demo": demo, "seed": seed}
        if devices is not None:
            body["devices"] = devices
        created = self._call("POST", "/reset", json=body)
        self.account_id = created["account_id"]
        self.api_token = created["api_token"]
        self.example_registration_id = created["example_registration_id"]

    def export(self) -> bytes:
        """The whole registry as JSON (`import_` takes it back)."""
        response = self.control.get("/export")
        response.raise_for_status()
        return response.content

    def import_(self, document: bytes) -> None:
        self._call("POST", "/import", content=document)

    # --- clock ---

    def now(self) -> datetime:
        """The server clock."""
        return _parse(self._call("GET", "/clock")["now"])

    def freeze_clock(self, at: datetime | None = None) -> datetime:
        body = {} if at is None else {"at": _format(at)}
        return _parse(self._call("POST", "/clock/freeze", json=body)["now"])

    def set_clock(self, at: datetime) -> datetime:
        return _parse(self._call("POST", "/clock/set", json={"at": _format(at)})["now"])

    def advance_clock(self, by: timedelta | float) -> datetime:
        seconds = by.total_seconds() if isinstance(by, timedelta) else float(by)
        return _parse(self._call("POST", "/clock/advance", json={"seconds": seconds})["now"])

    def resume_clock(self) -> datetime:
        return _parse(self._call("POST", "/clock/resume")["now"])

    # --- faults and journal ---

    def add_fault(self, **rule: Any) -> dict[str, Any]:
        """Add a fault rule (fields as in docs/control-plane.md); returns it with its id."""
        result: dict[str, Any] = self._call("POST", "/faults", json=rule)
        return result

    def fault(self, rule_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/faults/{rule_id}")
        return result

    def delete_fault(self, rule_id: str) -> None:
        self._call("DELETE", f"/faults/{rule_id}")

    def record_requests(self, size: int = 1000) -> None:
        """Switch the request journal on, keeping the newest `size` requests."""
        self._call("PUT", "/journal", json={"size": size})

    def journal(self, **filters: Any) -> list[dict[str, Any]]:
        """Recorded requests, newest first (filters: method, path, status, credential_id,
        limit)."""
        result: list[dict[str, Any]] = self._call("GET", "/journal", params=filters)
        return result

    # --- SDK clients ---

    def client(self, **options: Any) -> Cloudflare:
        """A sync `cloudflare.Cloudflare` for this registry (SDK defaults otherwise)."""
        import httpx
        from cloudflare import Cloudflare

        if self._transports is not None:
            options.setdefault("http_client", httpx.Client(transport=self._transports[0]))
        return Cloudflare(api_token=self.api_token, base_url=self.base_url, **options)

    def async_client(self, **options: Any) -> AsyncCloudflare:
        """An async `cloudflare.AsyncCloudflare` for this registry."""
        import httpx
        from cloudflare import AsyncCloudflare

        if self._transports is not None:
            transport: httpx.AsyncBaseTransport = self._transports[1]
        else:
            # No kept-alive connections: the fixture, being sync, cannot await a close, so
            # no socket may outlive a request.
            no_pool = httpx.Limits(max_keepalive_connections=0)
            transport = httpx.AsyncHTTPTransport(limits=no_pool)
        options.setdefault("http_client", httpx.AsyncClient(transport=transport))
        return AsyncCloudflare(api_token=self.api_token, base_url=self.base_url, **options)


def _format(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("give an aware datetime (e.g. datetime.now(UTC))")
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- the pytest plugin ---


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("warp-registry")
    group.addoption(
        "--warp-registry-url",
        default=os.environ.get(URL_ENV),
        help=f"Root URL of a running warp-registry to test against (or ${URL_ENV}); "
        "default: an in-process registry per test.",
    )
    group.addoption("--warp-registry-admin-token", default=os.environ.get(ADMIN_TOKEN_ENV),
                    help=f"Admin token of that server (or ${ADMIN_TOKEN_ENV}).")  # fmt: skip


@pytest.fixture(scope="session")
def warp_registry_app_loop() -> Iterator[AppLoop]:
    """The background event loop in-process registries run on (one per session)."""
    app_loop = AppLoop()
    yield app_loop
    app_loop.close()


@pytest.fixture
def warp_registry(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WarpRegistry]:
    """A fresh registry with the demo fleet (seed 1), in process or on the given server."""
    url = request.config.getoption("--warp-registry-url")
    if url:
        token = request.config.getoption("--warp-registry-admin-token")
        if not token:
            raise pytest.UsageError(f"--warp-registry-url needs ${ADMIN_TOKEN_ENV}")
        registry = WarpRegistry(url.rstrip("/"), token)
        registry.reset()
        yield registry
        registry.control.close()
        return

    app_loop: AppLoop = request.getfixturevalue("warp_registry_app_loop")
    yield from _in_process(app_loop, tmp_path_factory.mktemp("warp-registry") / "registry.db")


def _in_process(app_loop: AppLoop, database: Path) -> Iterator[WarpRegistry]:
    from warp_registry.clock import set_server_clock
    from warp_registry.control.actions import rotate_admin_token
    from warp_registry.http.app import RegistryApp
    from warp_registry.http.context import AppContext
    from warp_registry.store import open_store

    async def prepare() -> tuple[SqlStore, str]:
        store = await open_store(str(database))
        return store, await rotate_admin_token(store)

    store, admin_token = app_loop.run(prepare())
    app = RegistryApp(AppContext(store=store))
    registry = WarpRegistry(IN_PROCESS_ROOT, admin_token, _transports(app_loop, app))
    try:
        registry.reset()
        yield registry
    finally:
        registry.control.close()
        app_loop.run(store.close())
        set_server_clock(None, 0)  # the in-process clock is this process's


@pytest.fixture
def cloudflare_client(warp_registry: WarpRegistry) -> Iterator[Cloudflare]:
    """`cloudflare.Cloudflare` on the test's registry (SDK defaults: 2 retries)."""
    with warp_registry.client() as client:
        yield client


@pytest.fixture
def async_cloudflare_client(warp_registry: WarpRegistry) -> AsyncCloudflare:
    """`cloudflare.AsyncCloudflare` on the test's registry. Its transport keeps no
    connection open between requests, so it needs no closing."""
    return warp_registry.async_client()
