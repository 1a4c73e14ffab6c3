"""Running the app under granian, the HTTP server chosen for its per-request cost.

Worker processes build the app themselves (`app_from_env`), reading the database from
the environment the CLI prepared, so the same code path serves 1 or N workers.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from warp_registry.http.app import RegistryApp, create_app
from warp_registry.http.context import AppContext

DATABASE_ENV = "WARP_REGISTRY_DATABASE"
POOL_SIZE_ENV = "WARP_REGISTRY_POOL_SIZE"


def app_from_env() -> RegistryApp:
    """The factory granian calls in each worker."""
    pool_size = os.environ.get(POOL_SIZE_ENV)
    return create_app(
        AppContext(
            database=os.environ[DATABASE_ENV],
            pool_size=int(pool_size) if pool_size else None,
        )
    )


def logging_config(level: str) -> dict[str, Any]:
    """Granian's own logging plus ours: one line per request on stderr at INFO."""
    from granian.log import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["registry"] = {
        "()": "logging.Formatter",
        "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
    }
    config["handlers"]["registry"] = {
        "formatter": "registry",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
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
) -> None:
    """Serve until interrupted. Blocks.

    Each of the `workers` processes opens its own store; with PostgreSQL, a pool of at
    most `pool_size` connections.
    """
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    os.environ[DATABASE_ENV] = database
    if pool_size is not None:
        os.environ[POOL_SIZE_ENV] = str(pool_size)
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
