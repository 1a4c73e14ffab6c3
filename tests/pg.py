"""PostgreSQL for the test suite.

Where the server comes from:
- `WARP_REGISTRY_TEST_DATABASE_URL`, when set: an admin URL (a role that may create
  databases) on a server that already runs. CI sets it.
- Otherwise a throwaway cluster made with the installed server binaries (`initdb` on PATH or
  under /usr/lib/postgresql/*/bin) in a temporary directory, on a free port of 127.0.0.1,
  started once per test session and removed at exit. PostgreSQL refuses to run as root, so
  as root the cluster runs as the `postgres` OS user.
- Neither: PostgreSQL tests skip, saying why; with `WARP_REGISTRY_REQUIRE_POSTGRES=1`
  (set by .ci/run) they fail instead.

Each test gets a database of its own, with the schema in place and no rows. The first
ones are cloned from a template migrated once per session (`CREATE DATABASE ...
TEMPLATE`); when a test is done, its database is emptied (every row deleted, its other
connections closed) and handed to the next test. Emptying takes a few tens of
milliseconds, where DROP DATABASE forces a checkpoint and can take most of a second on a
busy machine. Databases that cannot be emptied, or were made bare for migration tests,
are dropped; the rest are dropped when the session ends.

Database names carry this host and process id, so that sessions running side by side on
one server never touch each other's databases, and a later session can drop what a killed
one left behind.
"""

from __future__ import annotations

import asyncio
import atexit
import glob
import hashlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import asyncpg
import pytest

from warp_registry.store import open_store
from warp_registry.store.schema import LATEST_VERSION

T = TypeVar("T")

URL_ENV = "WARP_REGISTRY_TEST_DATABASE_URL"
REQUIRE_ENV = "WARP_REGISTRY_REQUIRE_POSTGRES"

_HOST_KEY = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
_PREFIX = f"wrt_{_HOST_KEY}_"
_CLUSTER_DIR_PREFIX = "warp-registry-pg-"


def fresh_database_url(name: str, *, migrated: bool = True) -> str:
    """A URL of an empty database for one test (`name` labels it, if a new one is made).

    With `migrated`, the schema is in place already; without, the database is bare, for
    tests of the migrations themselves. Give it back with `release_database`.
    """
    server = _server()
    if migrated and server.spare:
        return server.url_for(server.spare.pop())

    database = server.new_name(name)
    template = server.template() if migrated else "template0"
    _admin(server.admin_url, lambda conn: conn.execute(
        f'CREATE DATABASE "{database}" TEMPLATE "{template}"'
    ))  # fmt: skip
    if migrated:
        server.reusable.add(database)
    return server.url_for(database)


def release_database(url: str) -> None:
    """The test is done with `url`: empty it for the next test, or drop it."""
    server = _server()
    database = _name_of(url)
    if database in server.reusable and _run(_empty(url)):
        server.spare.append(database)
    else:
        drop_database(url)


def drop_database(url: str) -> None:
    """Drop a database made by `fresh_database_url`, closing any connection still on it."""
    server = _server()
    database = _name_of(url)
    server.reusable.discard(database)
    _admin(server.admin_url, lambda conn: conn.execute(
        f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'
    ))  # fmt: skip


def drop_connections(url: str) -> int:
    """Close every connection to the database of `url`, as a server restart would.

    Blocks until the server has ended them, without running the caller's event loop, so
    that the caller's pooled connections are dead but do not know it yet.
    """
    closed: list[int] = []

    async def terminate(conn: asyncpg.Connection) -> None:
        pids = await conn.fetchval(
            "SELECT array_agg(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        pids = list(pids or [])
        await conn.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) pid", pids)
        while await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", pids
        ):
            await asyncio.sleep(0.01)
        closed.append(len(pids))

    _admin(url, terminate)
    return closed[0]


async def _empty(url: str) -> bool:
    """Delete every row of a migrated database; False if that cannot be done cleanly."""
    try:
        conn = await asyncpg.connect(url, timeout=10)
    except (OSError, asyncpg.PostgresError):
        return False  # dropped by the test itself, for one
    try:
        # Connections a test left open (a server it did not stop) must not write into
        # the next test's registry.
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        if await conn.fetchval("SELECT max(version) FROM schema_migrations") != LATEST_VERSION:
            return False
        tables = await conn.fetch(
            "SELECT quote_ident(tablename) FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
        )
        async with conn.transaction():
            # Foreign keys are not checked for this transaction: every row goes anyway.
            await conn.execute("SET LOCAL session_replication_role = replica")
            for (table,) in tables:
                await conn.execute(f"DELETE FROM {table}")
        return True
    except (OSError, asyncpg.PostgresError):
        return False  # not a superuser, say: drop it instead
    finally:
        await conn.close()


def _name_of(url: str) -> str:
    return urllib.parse.urlsplit(url).path.lstrip("/")


# --- the server ---


@dataclass
class _Server:
    admin_url: str
    counter: int = 0
    template_name: str | None = None
    reusable: set[str] = field(default_factory=set)  # migrated clones, ours to empty
    spare: list[str] = field(default_factory=list)  # emptied, waiting for a test

    def new_name(self, label: str) -> str:
        self.counter += 1
        slug = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
        return f"{_PREFIX}{os.getpid()}_{self.counter}_{slug}"[:63]

    def url_for(self, database: str) -> str:
        parts = urllib.parse.urlsplit(self.admin_url)
        return urllib.parse.urlunsplit(parts._replace(path="/" + database))

    def template(self) -> str:
        """The session's migrated template database, made on first use."""
        if self.template_name is None:
            name = f"{_PREFIX}{os.getpid()}_template"
            _admin(self.admin_url, lambda conn: conn.execute(f'CREATE DATABASE "{name}"'))
            _run(_migrate(self.url_for(name)))
            self.template_name = name
        return self.template_name

    def drop_all(self) -> None:
        """At exit: drop the spare databases and the template."""
        names = [*self.spare, *([self.template_name] if self.template_name else [])]
        for name in names:
            drop_database(self.url_for(name))


_state: dict[str, _Server | str] = {}
_lock = threading.Lock()


def _server() -> _Server:
    """The session's server, found or started on first use; skips or fails if there is none."""
    with _lock:
        if "server" not in _state:
            try:
                _state["server"] = _find_or_start()
            except _Unavailable as exc:
                _state["server"] = str(exc)
    found = _state["server"]
    if isinstance(found, str):
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"PostgreSQL is required ({REQUIRE_ENV}=1) but {found}", pytrace=False)
        pytest.skip(f"no PostgreSQL: {found}; set {URL_ENV} or install the server binaries")
    return found


class _Unavailable(Exception):
    pass


def _find_or_start() -> _Server:
    url = os.environ.get(URL_ENV)
    if url:
        try:
            _admin(url, _drop_abandoned_databases)
        except (OSError, asyncpg.PostgresError) as exc:
            raise _Unavailable(f"{URL_ENV} server did not answer: {exc}") from exc
    else:
        url = _start_cluster()
    server = _Server(url)
    atexit.register(server.drop_all)  # runs before the cluster's removal (last in, first out)
    return server


async def _drop_abandoned_databases(conn: asyncpg.Connection) -> None:
    """Drop databases left by killed test sessions of this host (their process is gone)."""
    rows = await conn.fetch(
        "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", _PREFIX
    )
    for (name,) in rows:
        pid = name[len(_PREFIX) :].split("_", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- a throwaway cluster ---


def _start_cluster() -> str:
    """initdb + pg_ctl start in a temporary directory; returns the admin URL."""
    bin_dir = _server_binaries()
    _remove_abandoned_clusters(bin_dir)

    as_user = _run_as_prefix()
    root = Path(tempfile.mkdtemp(prefix=f"{_CLUSTER_DIR_PREFIX}{os.getpid()}-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    if as_user:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(sockets, "postgres", "postgres")
    atexit.register(_remove_cluster, bin_dir, root)

    initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
              "--encoding=UTF8", "--no-locale", "--no-sync"]  # fmt: skip
    _check([*as_user, *initdb])
    port = _free_port()
    # Durability settings off: the tests kill our server, never this cluster.
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} "
        f"-c unix_socket_directories={sockets} -c max_connections=200 "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"),
              "-o", options, "-w", "-t", "60", "start"]  # fmt: skip
    _check([*as_user, *pg_ctl])
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def _server_binaries() -> Path:
    found = shutil.which("initdb")
    if found and Path(found).with_name("pg_ctl").exists():
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if not candidates:
        raise _Unavailable("no initdb on PATH or under /usr/lib/postgresql/*/bin")
    return Path(candidates[-1]).parent


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.parent.name
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def _run_as_prefix() -> list[str]:
    """initdb and postgres refuse root: run them as the postgres OS user then."""
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None:
        raise _Unavailable("running as root and `runuser` is missing")
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        raise _Unavailable("running as root and there is no `postgres` OS user") from None
    return ["runuser", "-u", "postgres", "--"]


def _check(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise _Unavailable(f"{Path(command[-1]).name} failed: {done.stderr.strip()[-500:]}")


def _remove_cluster(bin_dir: Path, root: Path) -> None:
    data = root / "data"
    if (data / "postmaster.pid").exists():
        stop = [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
        subprocess.run([*_run_as_prefix(), *stop], capture_output=True, timeout=60)
    shutil.rmtree(root, ignore_errors=True)


def _remove_abandoned_clusters(bin_dir: Path) -> None:
    """Stop and delete clusters whose test session was killed before it could clean up."""
    pattern = os.path.join(tempfile.gettempdir(), f"{_CLUSTER_DIR_PREFIX}*")
    for path in glob.glob(pattern):
        pid = Path(path).name[len(_CLUSTER_DIR_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            _remove_cluster(bin_dir, Path(path))


# --- helpers ---


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _migrate(url: str) -> None:
    store = await open_store(url)
    await store.close()


def _admin(url: str, action: Callable[[asyncpg.Connection], Awaitable[object]]) -> None:
    """Run `action` on one admin connection to the server of `url`."""

    async def go() -> None:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            await action(conn)
        finally:
            await conn.close()

    _run(go())


def _run(coroutine: Awaitable[T]) -> T:
    """Run a coroutine to completion on a fresh loop in its own thread.

    Fixtures call this while pytest-asyncio may own the main thread's event loop; a thread
    of our own never disturbs it.
    """
    result: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(_as_coroutine(coroutine)))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target, name="pg-admin")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable
