"""The control plane's HTTP API under `/_warp-registry/` (docs/control-plane.md).

Every route needs `Authorization: Bearer <admin token>`; API tokens are refused here, and
the admin token is refused by the Cloudflare API (it is in no token table). Answers use
the v4 envelope, except the export, which is the bare document `import` takes back.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import orjson

from warp_registry.clock import parse_rfc3339, real_now_us
from warp_registry.control import CONTROL_PREFIX, actions, faults, journal
from warp_registry.errors import (
    AdminTokenRequired,
    ApiError,
    ControlRequestInvalid,
    FaultRuleNotFound,
    InternalError,
    InvalidAdminToken,
    ServiceUnavailable,
)
from warp_registry.http.request import JSON_HEADERS, Request, Response, ok
from warp_registry.http.routing import Handler, Router
from warp_registry.store.sql_store import SqlStore

if TYPE_CHECKING:  # the context imports the control package: no runtime import here
    from warp_registry.http.context import AppContext

log = logging.getLogger("warp_registry.control")
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class ControlPlane:
    """Routes and handlers of `/_warp-registry/`."""

    def __init__(self, context: AppContext) -> None:
        self.context = context
        self.router = Router()
        routes: list[tuple[str, str, str, Handler]] = [
            ("GET", "/status", "control-status", self.status),
            ("POST", "/reset", "control-reset", self.reset),
            ("POST", "/seed", "control-seed", self.seed),
            ("GET", "/export", "control-export", self.export),
            ("POST", "/import", "control-import", self.import_),
            ("GET", "/clock", "control-clock", self.clock),
            ("POST", "/clock/{action:str}", "control-clock-change", self.change_clock),
            ("GET", "/journal", "control-journal", self.journal),
            ("PUT", "/journal", "control-journal-size", self.journal_size),
            ("DELETE", "/journal", "control-journal-clear", self.journal_clear),
            ("GET", "/faults", "control-faults", self.list_faults),
            ("POST", "/faults", "control-fault-add", self.add_fault),
            ("DELETE", "/faults", "control-faults-clear", self.clear_faults),
            ("GET", "/faults/{rule_id:uuid}", "control-fault", self.get_fault),
            ("DELETE", "/faults/{rule_id:uuid}", "control-fault-delete", self.delete_fault),
            ("GET", "/rate-limit", "control-rate-limit", self.rate_limit),
            ("DELETE", "/rate-limit", "control-rate-limit-reset", self.reset_rate_limit),
        ]  # fmt: skip
        for method, path, name, handler in routes:
            self.router.add(method, CONTROL_PREFIX + path, name, handler)

    async def respond(
        self, method: str, path: str, query_string: str, headers: dict[str, str],
        receive: Receive,
    ) -> Response:  # fmt: skip
        """Route, check the admin token, run the handler; errors become envelopes."""
        from warp_registry.http.app import error_response, read_body

        try:
            operation, params = self.router.resolve(method, path)
            await self._authenticate(headers)
            has_body = method in ("POST", "PUT", "DELETE")
            body = await read_body(receive, headers) if has_body else b""
            request = Request(method, path, query_string, headers, body)
            request.path_params = params
            return await operation.handler(request)
        except ApiError as exc:
            return error_response(exc)
        except self.context.unavailable_errors as exc:
            log.warning("store unavailable for %s %s: %s", method, path, exc)
            return error_response(ServiceUnavailable())
        except Exception:
            log.exception("unexpected error in %s %s", method, path)
            return error_response(InternalError())

    async def _authenticate(self, headers: dict[str, str]) -> None:
        authorization = headers.get("authorization")
        if authorization is None:
            raise AdminTokenRequired()
        token = authorization.removeprefix("Bearer ")
        if token == authorization or not await actions.is_admin_token(self.context.store, token):
            raise InvalidAdminToken()

    @property
    def _store(self) -> SqlStore:
        return self.context.store

    async def _changed(self) -> None:
        await self.context.control.changed(self._store)

    # --- status, reset, seed, export, import ---

    async def status(self, request: Request) -> Response:
        runtime = self.context.control
        limit = runtime.rate_limit
        return ok({
            "accounts": await self._store.account_ids(),
            "clock": await actions.clock_state(self._store),
            "journal_size": runtime.journal_size,
            "fault_rules": len(runtime.faults),
            "rate_limit": None if limit is None else asdict(limit),
        })  # fmt: skip

    async def reset(self, request: Request) -> Response:
        body = _json_object(request)
        demo = _field(body, "demo", bool, True)
        seed = _field(body, "seed", int, 1)
        devices = _field(body, "devices", int, None)
        return await self._reset(demo, seed, devices)

    async def seed(self, request: Request) -> Response:
        body = _json_object(request)
        devices = _field(body, "devices", int, None)
        if devices is None:
            raise ControlRequestInvalid("seed needs devices: the number of devices to make")
        return await self._reset(True, _field(body, "seed", int, 1), devices)

    async def _reset(self, demo: bool, seed: int, devices: int | None) -> Response:
        created = await actions.reset(self._store, demo_fleet=demo, seed=seed, devices=devices)
        await self._changed()
        return ok({
            "account_id": created.account_id,
            "api_token": created.api_token,
            "example_registration_id": created.example_registration_id,
        })  # fmt: skip

    async def export(self, request: Request) -> Response:
        return Response(200, await actions.export_document(self._store), list(JSON_HEADERS))

    async def import_(self, request: Request) -> Response:
        await actions.import_document(self._store, request.body)
        await self._changed()
        return ok({"accounts": await self._store.account_ids()})

    # --- clock ---

    async def clock(self, request: Request) -> Response:
        return ok(await actions.clock_state(self._store))

    async def change_clock(self, request: Request) -> Response:
        action = request.path_params["action"]
        body = _json_object(request)
        value: int | None = None
        if action in ("freeze", "set") and body.get("at") is not None:
            value = _timestamp(body["at"])
        elif action == "advance":
            seconds = body.get("seconds")
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise ControlRequestInvalid("advance needs seconds: a number")
            value = int(seconds * 1_000_000)
        if action == "set" and value is None:
            raise ControlRequestInvalid("set needs at: an RFC3339 timestamp")
        state = await actions.change_clock(self._store, action, value)
        await self._changed()
        return ok(state)

    # --- journal ---

    async def journal(self, request: Request) -> Response:
        where, limit = journal.filters_from_query(request.query)
        size = self.context.control.journal_size
        rows = await self._store.control.journal(where, min(limit, max(size, 1)))
        return ok([journal.entry_to_api(row) for row in rows[:size]])

    async def journal_size(self, request: Request) -> Response:
        size = _field(_json_object(request), "size", int, None)
        if size is None or not 0 <= size <= journal.MAX_SIZE:
            raise ControlRequestInvalid(f"size must be an integer from 0 to {journal.MAX_SIZE}")
        await actions.set_journal_size(self._store, size)
        await self._changed()
        return ok({"size": size})

    async def journal_clear(self, request: Request) -> Response:
        await self._store.control.journal_clear()
        return ok({"size": self.context.control.journal_size})

    # --- faults ---

    async def list_faults(self, request: Request) -> Response:
        return ok([faults.rule_to_api(row) for row in await self._store.control.faults()])

    async def add_fault(self, request: Request) -> Response:
        spec = faults.parse_fault(_json_object(request))
        rule_id = await self._store.control.add_fault(real_now_us(), spec, spec["times"])
        await self._changed()
        return ok(await self._fault(rule_id))

    async def get_fault(self, request: Request) -> Response:
        return ok(await self._fault(request.path_params["rule_id"]))

    async def delete_fault(self, request: Request) -> Response:
        rule_id = request.path_params["rule_id"]
        if not await self._store.control.delete_fault(rule_id):
            raise FaultRuleNotFound()
        await self._changed()
        return ok({"id": rule_id})

    async def clear_faults(self, request: Request) -> Response:
        deleted = await self._store.control.delete_faults()
        await self._changed()
        return ok({"deleted": deleted})

    async def _fault(self, rule_id: str) -> dict[str, Any]:
        for row in await self._store.control.faults():
            if row[0] == rule_id:
                return faults.rule_to_api(row)
        raise FaultRuleNotFound()

    # --- rate limit ---

    async def rate_limit(self, request: Request) -> Response:
        limit = self.context.control.rate_limit
        return ok(None if limit is None else asdict(limit))

    async def reset_rate_limit(self, request: Request) -> Response:
        await self._store.control.reset_rate_limits()
        return ok({"reset": True})


def _json_object(request: Request) -> dict[str, Any]:
    if not request.body.strip():
        return {}
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        raise ControlRequestInvalid("the body is not JSON") from None
    if not isinstance(body, dict):
        raise ControlRequestInvalid("the body must be a JSON object")
    return body


def _field(body: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    value = body.get(name, default)
    if value is None or value is default:
        return value
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ControlRequestInvalid(f"{name} must be an integer")
    if not isinstance(value, kind):
        raise ControlRequestInvalid(f"{name} must be a {kind.__name__}")
    if kind is int and abs(value) > 2**62:
        raise ControlRequestInvalid(f"{name} is out of range")
    return value


def _timestamp(value: Any) -> int:
    if not isinstance(value, str):
        raise ControlRequestInvalid("at must be an RFC3339 timestamp")
    try:
        return parse_rfc3339(value)
    except (ValueError, OverflowError):
        raise ControlRequestInvalid(f"at is not an RFC3339 timestamp: {value!r}") from None
