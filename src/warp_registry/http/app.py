"""The ASGI application: lifespan, request parsing, dispatch, errors and the access log.

No framework sits between the server and the handlers: the GET of one registration is the
hot path of every fleet script, and a framework's per-request machinery costs more than
the store lookup itself (see docs/architecture.md). What a framework would add here is a
router (`routing.py`), an error-to-response mapping (below) and a request object
(`request.py`), each a few dozen lines.
"""

from __future__ import annotations

import gc
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from warp_registry.control import CONTROL_PREFIX
from warp_registry.control.handlers import ControlPlane
from warp_registry.errors import ApiError, BodyTooLarge, InternalError, ServiceUnavailable
from warp_registry.http.context import AppContext
from warp_registry.http.envelope import error_body
from warp_registry.http.request import JSON_HEADERS, Request, Response
from warp_registry.http.routes import build_router
from warp_registry.logs import AccessLog, flush_buffered, log_target

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

access_log = AccessLog()
error_log = logging.getLogger("warp_registry.errors")

MAX_BODY_BYTES = 1024 * 1024
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class RegistryApp:
    """An ASGI app over one store. The store opens at lifespan start-up, or is given."""

    def __init__(self, context: AppContext, *, freeze_heap: bool = False) -> None:
        self.context = context
        self.freeze_heap = freeze_heap  # for a server's worker; tests make many apps
        self.router = build_router(context)
        # `/_warp-registry/`: its own router, so Cloudflare's route table stays Cloudflare's.
        self.control_plane = ControlPlane(context)
        # Request ids: a random prefix per app (each worker process builds its own app)
        # and a counter. Unique without a system call per request; `secrets.token_hex`
        # per request cost about 6% of a GET's CPU.
        self._request_prefix = secrets.token_hex(4)
        self._request_numbers = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.context.start()
                except Exception as exc:  # the server reports it and exits
                    error_log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                if self.freeze_heap:
                    # What exists now (modules, routes, the store) lives as long as the
                    # worker: leave it out of later collections, which then walk only
                    # what requests made instead of growing with the heap.
                    gc.collect()
                    gc.freeze()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.context.stop()
                flush_buffered()  # the last requests' access lines, before the worker ends
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = f"{self._request_prefix}{next(self._request_numbers):08x}"
        method: str = scope["method"]
        path: str = scope["path"]
        query_string = scope["query_string"].decode("latin-1")
        raw_headers = scope["headers"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw_headers}
        if len(headers) != len(raw_headers):
            headers = combine_repeated_headers(raw_headers)

        # Rate limit, faults and journal (warp_registry.control) cost nothing while off.
        control = self.context.control
        if control.active or path.startswith(CONTROL_PREFIX):
            response = await control.respond(
                self, method, path, query_string, headers, receive, request_id
            )
        else:
            response = await self.respond(method, path, query_string, headers, receive, request_id)
        response.headers.append((b"x-request-id", request_id.encode()))
        await send(
            {"type": "http.response.start", "status": response.status, "headers": response.headers}
        )
        await send(
            {"type": "http.response.body", "body": b"" if method == "HEAD" else response.body}
        )

        if access_log.logger.isEnabledFor(logging.INFO):
            elapsed_ms = (time.perf_counter() - started) * 1000
            target = log_target(path, query_string)
            access_log.write(method, target, response.status, elapsed_ms, request_id)

    async def respond(
        self,
        method: str,
        path: str,
        query_string: str,
        headers: dict[str, str],
        receive: Receive,
        request_id: str,
    ) -> Response:
        """Route the request and run its handler; any error becomes its envelope."""
        try:
            operation, params = self.router.resolve(method, path)
            body = await read_body(receive, headers) if method in _BODY_METHODS else b""
            request = Request(method, path, query_string, headers, body)
            request.path_params = params
            return await operation.handler(request)
        except ApiError as exc:
            return error_response(exc)
        except self.context.unavailable_errors as exc:
            # An outage the operator must see, but not a bug: its cause, no traceback.
            error_log.warning(
                "store unavailable for %s %s rid=%s: %s", method, path, request_id, exc
            )
            return error_response(ServiceUnavailable())
        except Exception:
            # The traceback goes to the log, tagged with the request id the client got in
            # `x-request-id`; the client sees only the generic envelope.
            error_log.exception("unexpected error in %s %s rid=%s", method, path, request_id)
            return error_response(InternalError())


def combine_repeated_headers(raw_headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Headers with repeated fields joined by ", ", as HTTP allows a recipient to do.

    A repeated credential header then fails its format check (400) instead of letting
    the last copy win, so a proxy reading the first copy can't disagree with us on who
    is calling.
    """
    headers: dict[str, str] = {}
    for raw_name, raw_value in raw_headers:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def error_response(exc: ApiError) -> Response:
    """The error envelope for `exc`, with its status and any headers it carries."""
    headers = list(JSON_HEADERS)
    headers.extend((k.encode(), v.encode()) for k, v in exc.headers.items())
    return Response(exc.status, error_body(exc.to_errors()), headers)


async def read_body(receive: Receive, headers: dict[str, str]) -> bytes:
    """The whole request body, refused with 413 once it passes MAX_BODY_BYTES.

    A Content-Length that already says so is refused before anything is read.
    """
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLarge(MAX_BODY_BYTES)

    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge(MAX_BODY_BYTES)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def create_app(context: AppContext, *, freeze_heap: bool = False) -> RegistryApp:
    """The ASGI app over `context` (the server's factory calls this in each worker)."""
    return RegistryApp(context, freeze_heap=freeze_heap)
