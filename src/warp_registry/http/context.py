"""What every handler shares: the store, opened when the app starts."""

from __future__ import annotations

from warp_registry.control.ratelimit import RateLimit
from warp_registry.control.runtime import ControlRuntime
from warp_registry.store import open_store
from warp_registry.store.sql_store import SqlStore


class AppContext:
    """The app's dependencies. Give a store directly (tests) or a database to open."""

    # Exceptions that mean "the database is unreachable": answered with 503, not 500. The
    # store turns its engine's connection errors into StoreUnavailable, a ConnectionError.
    unavailable_errors: tuple[type[BaseException], ...] = (ConnectionError, OSError)

    def __init__(
        self,
        database: str | None = None,
        store: SqlStore | None = None,
        *,
        pool_size: int | None = None,
        rate_limit: RateLimit | None = None,
    ) -> None:
        if database is None and store is None:
            raise ValueError("AppContext needs a database or a store")
        self.database = database
        self.pool_size = pool_size
        self._store = store
        self._owns_store = store is None
        # Rate limit, faults, journal and clock (warp_registry.control).
        self.control = ControlRuntime(rate_limit)

    @property
    def store(self) -> SqlStore:
        if self._store is None:
            raise RuntimeError("the app has not started: its store is not open")
        return self._store

    async def start(self) -> None:
        if self._store is None:
            assert self.database is not None
            self._store = await open_store(self.database, pool_size=self.pool_size)
            # Served: other workers and servers share the control state through the store.
            await self.control.load(self._store)
            self.control.start_refreshing(self._store)

    async def stop(self) -> None:
        await self.control.stop_refreshing()
        if self._store is not None and self._owns_store:
            await self._store.close()
            self._store = None
