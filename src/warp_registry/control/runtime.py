"""The request hook of the control plane: rate limit, faults and journal around dispatch.

`ControlRuntime` keeps this process's copy of the control state (fault rules, journal
size, server clock). The app asks it to handle a request only while something is on
(`active`) or for a `/_warp-registry/` path; otherwise the hot path pays one attribute
check and one string prefix check.

Propagation (our choice): an app given a store directly (tests, `warp_registry.testing`)
applies its own control writes at once and never polls. A served app (`serve`, any number
of workers or servers on one database) reloads the state from the store every
REFRESH_S seconds in a background task; a control write answers only after that long, so
once the answer arrives every worker has seen the change. CLI control commands, which
write the database directly, reach running servers within REFRESH_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from warp_registry.clock import real_now_us, set_server_clock
from warp_registry.control import CONTROL_PREFIX, faults, journal, ratelimit
from warp_registry.control.actions import JOURNAL_SETTING, clock_from_settings
from warp_registry.control.faults import FaultRule
from warp_registry.control.ratelimit import RateLimit
from warp_registry.errors import ApiError, ServiceUnavailable
from warp_registry.http.request import Response
from warp_registry.store.control import VERSION_SETTING
from warp_registry.store.sql_store import SqlStore

if TYPE_CHECKING:
    from warp_registry.http.app import RegistryApp

log = logging.getLogger("warp_registry.control")

REFRESH_S = 0.2
API_PREFIX = "/client/v4/"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class ControlRuntime:
    """This process's control state and the slow path of requests while it is on."""

    def __init__(self, rate_limit: RateLimit | None = None) -> None:
        self.rate_limit = rate_limit
        self.faults: list[FaultRule] = []
        self.journal_size = 0
        self.shared = False  # True when served: other processes may change the state
        self._version: str | None = None
        self._journal_writes = itertools.count(1)
        self._refresher: asyncio.Task[None] | None = None
        self.active = rate_limit is not None

    # --- state ---

    async def load(self, store: SqlStore) -> None:
        """Read the control state from the store and apply it to this process."""
        settings = await store.control.settings()
        version = settings.get(VERSION_SETTING)
        if version != self._version:
            rows = await store.control.faults()
            self.faults = [faults.rule_from_spec(r[0], r[2], r[3]) for r in rows]
            self._version = version
        self.journal_size = int(settings.get(JOURNAL_SETTING, "0"))
        set_server_clock(*clock_from_settings(settings))
        self.active = self.rate_limit is not None or bool(self.faults) or self.journal_size > 0

    async def changed(self, store: SqlStore) -> None:
        """After a control write: apply it here, and wait until every worker has it."""
        self._version = None
        await self.load(store)
        if self.shared:
            await asyncio.sleep(REFRESH_S * 1.5)

    def start_refreshing(self, store: SqlStore) -> None:
        self.shared = True
        self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever(store))

    async def stop_refreshing(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None

    async def _refresh_forever(self, store: SqlStore) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await self.load(store)
            except Exception:  # the store is down: keep the last state, try again
                log.warning("could not refresh the control state", exc_info=True)

    # --- requests ---

    async def respond(
        self,
        app: RegistryApp,
        method: str,
        path: str,
        query_string: str,
        headers: dict[str, str],
        receive: Receive,
        request_id: str,
    ) -> Response:
        from warp_registry.http.app import error_response, read_body

        if path.startswith(CONTROL_PREFIX):
            return await app.control_plane.respond(method, path, query_string, headers, receive)

        started = time.perf_counter()
        try:
            body = await read_body(receive, headers) if method in _BODY_METHODS else b""
        except ApiError as exc:
            return error_response(exc)

        async def replay() -> MutableMapping[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        store = app.context.store
        extra: list[tuple[bytes, bytes]] = []
        note = ""
        response: Response | None = None
        try:
            if self.rate_limit is not None and path.startswith(API_PREFIX):
                extra, limited = await ratelimit.spend(store, self.rate_limit, headers)
                if limited is not None:
                    response, note = error_response(limited), "rate limited"
            if response is None and self.faults:
                response, note = await self._fault(store, method, path)
        except app.context.unavailable_errors as exc:
            log.warning("store unavailable in the control hook rid=%s: %s", request_id, exc)
            response = error_response(ServiceUnavailable())

        if response is None:
            response = await app.respond(method, path, query_string, headers, replay, request_id)
        response.headers.extend(extra)

        if self.journal_size > 0:
            duration_us = int((time.perf_counter() - started) * 1_000_000)
            await self._record(store, request_id, method, path, query_string, headers, body,
                               response, duration_us, note)  # fmt: skip
        return response

    async def _fault(self, store: SqlStore, method: str, path: str) -> tuple[Response | None, str]:
        rule = await faults.pick(store, self.faults, method, path)
        if rule is None:
            return None, ""
        if rule.latency_ms:
            await asyncio.sleep(rule.latency_ms / 1000)
        if rule.status is None:
            return None, f"latency from fault {rule.id}"
        return rule.response(), f"fault {rule.id}"

    async def _record(
        self,
        store: SqlStore,
        request_id: str,
        method: str,
        path: str,
        query_string: str,
        headers: dict[str, str],
        body: bytes,
        response: Response,
        duration_us: int,
        note: str,
    ) -> None:
        entry = (
            request_id, real_now_us(), method, path, query_string,
            response.status, duration_us, note, journal.masked_headers(headers),
            journal.masked_body(body), journal.masked_body(response.body),
        )  # fmt: skip
        try:
            await store.control.journal_add(entry, journal.credential_of(headers))
            if next(self._journal_writes) % journal.PRUNE_EVERY == 0:
                await store.control.journal_prune(self.journal_size)
        except Exception:  # the journal is a testing aid: never fail the request for it
            log.warning("could not record rid=%s in the journal", request_id, exc_info=True)
