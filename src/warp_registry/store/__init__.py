"""Storage: the only package that holds SQL.

`open_store` picks the engine from the database argument: a `postgresql://` (or
`postgres://`) URL selects PostgreSQL, anything else is a SQLite file path.
"""

from __future__ import annotations

import re

from warp_registry.store.sql_store import SqlStore


def is_postgres_url(database: str) -> bool:
    return database.startswith(("postgresql://", "postgres://"))


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
