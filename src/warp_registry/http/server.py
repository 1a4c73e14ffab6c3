"""Running the app under granian, the HTTP server chosen for its per-request cost.

Worker processes build the app themselves (`app_from_env`), reading the database from
the environment the CLI prepared, so the same code path serves 1 or N workers.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from warp_registry.control.ratelimit import parse_rate_limit
from warp_registry.http.app import RegistryApp, create_app
from warp_registry.http.context import AppContext
from warp_registry.logs import LINE_FORMAT, tune_logging_module

DATABASE_ENV = "WARP_REGISTRY_DATABASE"
POOL_SIZE_ENV = "WARP_REGISTRY_POOL_SIZE"
RATE_LIMIT_ENV = "WARP_REGISTRY_RATE_LIMIT"


def app_from_env() -> RegistryApp:
    """The factory granian calls in each worker."""
    tune_logging_module()
    pool_size = os.environ.get(POOL_SIZE_ENV)
    rate_limit = os.environ.get(RATE_LIMIT_ENV)
    return create_app(
        AppContext(
            database=os.environ[DATABASE_ENV],
            pool_size=int(pool_size) if pool_size else None,
            rate_limit=parse_rate_limit(rate_limit) if rate_limit else None,
        ),
        freeze_heap=True,
    )


def logging_config(level: str) -> dict[str, Any]:
    """Granian's own logging plus ours: one line per request on stderr at INFO."""
    from granian.log import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["registry"] = {
        "()": "logging.Formatter",
        "fmt": LINE_FORMAT,
    }
    config["handlers"]["registry"] = {
        "formatter": "registry",
        "class": "warp_registry.logs.BufferedStderrHandler",
    }
    config["loggers"]["warp_registry"] = {
        "handlers": ["registry"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


def run(
    host: str,
    port: int,
    database: str,
    workers: int,
    log_level: str,
    pool_size: int | None = None,
    rate_limit: str | None = None,
) -> None:
    """Serve until interrupted. Blocks.

    Each of the `workers` processes opens its own store; with PostgreSQL, a pool of at
    most `pool_size` connections. `rate_limit` is `REQUESTS/SECONDS` or `cloudflare`.
    """
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    os.environ[DATABASE_ENV] = database
    if pool_size is not None:
        os.environ[POOL_SIZE_ENV] = str(pool_size)
    if rate_limit:
        os.environ[RATE_LIMIT_ENV] = rate_limit  # checked by the CLI; read by each worker
    else:
        os.environ.pop(RATE_LIMIT_ENV, None)
    server = Granian(
        "warp_registry.http.server:app_from_env",
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        factory=True,
        log_level=LogLevels(log_level),
        log_dictconfig=logging_config(log_level),
        log_access=False,
        websockets=False,
    )
    server.serve()
