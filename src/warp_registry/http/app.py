"""The ASGI application: lifespan, request parsing, dispatch, errors and the access log.

No framework sits between the server and the handlers: the GET of one registration is the
hot path of every fleet script, and a framework's per-request machinery costs more than
the store lookup itself (see docs/architecture.md). What a framework would add here is a
router (`routing.py`), an error-to-response mapping (below) and a request object
(`request.py`), each a few dozen lines.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from warp_registry.http.context import AppContext
from warp_registry.http.envelope import error_body
from warp_registry.errors import ApiError, InternalError, ServiceUnavailable
from warp_registry.http.request import JSON_HEADERS, Request, Response
from warp_registry.http.routes import build_router

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

access_log = logging.getLogger("warp_registry.access")
error_log = logging.getLogger("warp_registry.errors")

MAX_BODY_BYTES = 1024 * 1024
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BodyTooLarge(ApiError):
    status = 413
    code = 6007
    message = f"Request body larger than {MAX_BODY_BYTES} bytes"


class RegistryApp:
    """An ASGI app over one store. The store opens at lifespan start-up, or is given."""

    def __init__(self, context: AppContext) -> None:
        self.context = context
        self.router = build_router(context)

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
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.context.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = secrets.token_hex(8)
        method: str = scope["method"]
        path: str = scope["path"]
        query_string = scope["query_string"].decode("latin-1")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}

        response = await self._respond(method, path, query_string, headers, receive)
        response.headers.append((b"x-request-id", request_id.encode()))
        await send(
            {"type": "http.response.start", "status": response.status, "headers": response.headers}
        )
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else response.body})

        if access_log.isEnabledFor(logging.INFO):
            elapsed_ms = (time.perf_counter() - started) * 1000
            target = f"{path}?{query_string}" if query_string else path
            access_log.info(
                "%s %s %d %.2fms rid=%s", method, target, response.status, elapsed_ms, request_id
            )

    async def _respond(
        self, method: str, path: str, query_string: str, headers: dict[str, str], receive: Receive
    ) -> Response:
        try:
            operation, params = self.router.resolve(method, path)
            body = await _read_body(receive) if method in _BODY_METHODS else b""
            request = Request(method, path, query_string, headers, body)
            request.path_params = params
            return await operation.handler(request)
        except ApiError as exc:
            return error_response(exc)
        except self.context.unavailable_errors:
            error_log.warning("store unavailable for %s %s", method, path, exc_info=True)
            return error_response(ServiceUnavailable())
        except Exception:
            error_log.exception("unexpected error in %s %s", method, path)
            return error_response(InternalError())


def error_response(exc: ApiError) -> Response:
    headers = list(JSON_HEADERS)
    headers.extend((k.encode(), v.encode()) for k, v in exc.headers.items())
    return Response(exc.status, error_body(exc.to_errors()), headers)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def create_app(context: AppContext) -> RegistryApp:
    return RegistryApp(context)
