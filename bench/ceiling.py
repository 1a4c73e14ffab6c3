"""The ceiling server: a bare ASGI app that answers with response bytes prepared in advance.

It is what warp-registry would be if every request cost nothing but the HTTP server: the
same URLs, the same status, the same headers (an `x-request-id` of the same length) and
byte-identical bodies, looked up by path in a dict built at start-up. Benchmarking both
apps on the same server software with the same settings gives the fraction of the
server's capacity that warp-registry's own per-request work leaves.

The bodies file is written by `run_get.py`, which fetches each URL once from a running
warp-registry. Its format:

    {"headers": [["content-type", "application/json"], ...],
     "bodies": {"/client/v4/accounts/.../registrations/<id>": "<response body>", ...}}

Run under granian exactly as `warp-registry serve` runs (ASGI interface, one worker,
factory, no websockets, no access log, the project's logging config):

    python bench/ceiling.py --bodies bench/results/work/bodies.json --port 18001

and under uvicorn with the same flags as warp-registry gets there (see run_get.py):

    CEILING_BODIES=... uvicorn ceiling:app_from_env --factory --app-dir bench ...
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

BODIES_ENV = "CEILING_BODIES"

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_NOT_FOUND_START: Message = {
    "type": "http.response.start",
    "status": 404,
    "headers": [(b"content-type", b"text/plain")],
}
_NOT_FOUND_BODY: Message = {"type": "http.response.body", "body": b"not in the bodies file"}


class CeilingApp:
    """ASGI app: path -> prepared response messages; anything else is a plain 404."""

    def __init__(self, bodies: dict[str, bytes], headers: list[tuple[bytes, bytes]]) -> None:
        self._start: Message = {"type": "http.response.start", "status": 200, "headers": headers}
        # Both ASGI messages exist before the first request: the request does a dict
        # lookup and two sends, nothing else.
        self._bodies: dict[str, Message] = {
            path: {"type": "http.response.body", "body": body} for path, body in bodies.items()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            body = self._bodies.get(scope["path"])
            if body is None:
                await send(_NOT_FOUND_START)
                await send(_NOT_FOUND_BODY)
                return
            await send(self._start)
            await send(body)
        elif scope["type"] == "lifespan":
            await lifespan(receive, send)


async def lifespan(receive: Receive, send: Send) -> None:
    """ASGI lifespan with nothing to start or stop (also used by store_floor.py)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def load_bodies(path: str) -> tuple[dict[str, bytes], list[tuple[bytes, bytes]]]:
    """Read the bodies file: (path -> body bytes, response headers)."""
    data = orjson.loads(Path(path).read_bytes())
    # `.encode()` makes each body an exact-size bytes object, so 100,000 of them cost
    # about their length in memory.
    bodies = {url_path: text.encode() for url_path, text in data["bodies"].items()}
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in data["headers"]]
    return bodies, headers


def app_from_env() -> CeilingApp:
    """Factory for granian and uvicorn: the bodies file is named by CEILING_BODIES."""
    bodies, headers = load_bodies(os.environ[BODIES_ENV])
    return CeilingApp(bodies, headers)


def serve_granian(bodies_file: str, port: int, log_level: str) -> None:
    """Serve the ceiling on 127.0.0.1 with the settings of `warp_registry.http.server.run`."""
    os.environ[BODIES_ENV] = str(Path(bodies_file).resolve())
    serve_granian_app("ceiling:app_from_env", port, log_level)


def serve_granian_app(target: str, port: int, log_level: str) -> None:
    """Serve a factory of this directory (`module:function`) as `warp-registry serve` does."""
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    from warp_registry.http.server import logging_config

    # Worker processes import the module by name, so this directory goes on their path.
    here = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (here, os.environ.get("PYTHONPATH", "")) if p
    )
    sys.path.insert(0, here)

    server = Granian(
        target,
        address="127.0.0.1",
        port=port,
        interface=Interfaces.ASGI,
        workers=1,
        factory=True,
        log_level=LogLevels(log_level),
        log_dictconfig=logging_config(log_level),
        log_access=False,
        websockets=False,
    )
    server.serve()


def server_args(description: str, source: str, source_help: str) -> argparse.Namespace:
    """The command line of a reference server: its one input file, --port, --log-level."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(source, required=True, help=source_help)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="warning")
    return parser.parse_args()


def main() -> None:
    args = server_args(
        "Serve prepared bodies with granian (ASGI).",
        "--bodies",
        "bodies file written by run_get.py",
    )
    serve_granian(args.bodies, args.port, args.log_level)


if __name__ == "__main__":
    main()
