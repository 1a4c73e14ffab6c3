"""Storage: the only package that holds SQL.

`open_store` picks the engine from the database argument: a `postgresql://` (or
`postgres://`) URL selects PostgreSQL, anything else is a SQLite file path.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from warp_registry.store.sql_store import SqlStore


def is_postgres_url(database: str) -> bool:
    return database.startswith(("postgresql://", "postgres://"))


def check_postgres_url(url: str) -> None:
    """Refuse a PostgreSQL URL that names no host or no database.

    The driver would otherwise fill the gaps from the environment and defaults, and a
    typo such as `postgresql://` would quietly create the schema in whatever database the
    local server offers first.
    """
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = parts.hostname or query.get("host")
    database = parts.path.lstrip("/") or query.get("dbname")
    if not host or not database:
        raise ValueError(
            "a PostgreSQL URL must name a host and a database, "
            "e.g. postgresql://user@127.0.0.1:5432/registry"
        )


def describe_database(database: str) -> str:
    """`database` as safe to print or log: a PostgreSQL URL loses its password."""
    if not is_postgres_url(database):
        return database
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", database)


async def open_store(
    database: str, *, migrate: bool = True, pool_size: int | None = None
) -> SqlStore:
    """Open the registry at `database` and, unless told otherwise, migrate its schema.

    `pool_size` caps the PostgreSQL connections this process opens (SQLite ignores it).
    """
    if is_postgres_url(database):
        from warp_registry.store.postgres import PostgresDatabase

        check_postgres_url(database)
        db = await PostgresDatabase.connect(database, pool_size=pool_size)
    else:
        from warp_registry.store.sqlite import SqliteDatabase

        db = SqliteDatabase(database)

    store = SqlStore(db)
    if migrate:
        try:
            await store.migrate()
        except BaseException:
            await store.close()
            raise
    return store
