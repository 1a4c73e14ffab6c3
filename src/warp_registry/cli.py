"""The `warp-registry` command line. `serve` is the main job.

Every option has an environment-variable twin (WARP_REGISTRY_<NAME>); a flag on the
command line wins over the variable, which wins over the default.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from warp_registry import __version__
from warp_registry.bootstrap import DEFAULT_SEED, InitResult, RegistryNotEmpty, initialise
from warp_registry.clock import format_optional, format_rfc3339
from warp_registry.ids import is_account_id, new_uuid
from warp_registry.secrets import hash_secret, new_api_token, new_global_key
from warp_registry.store import describe_database, is_postgres_url, open_store
from warp_registry.store.sql_store import SqlStore

T = TypeVar("T")
DEFAULT_DATABASE = "warp-registry.db"


def _env(name: str) -> str:
    return f"WARP_REGISTRY_{name}"


def database_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--database",
        envvar=_env("DATABASE"),
        show_envvar=True,
        default=DEFAULT_DATABASE,
        show_default=True,
        help="SQLite file path, or a postgresql:// URL.",
    )(fn)


class _CannotOpen(Exception):
    """The database could not be opened or migrated; the cause is chained."""


def _with_store(database: str, work: Callable[[SqlStore], Awaitable[T]]) -> T:
    async def run() -> T:
        try:
            store = await open_store(_normalise_database(database))
        except Exception as exc:
            # Each engine has its own errors for a missing directory, a refused connection
            # or a file that is not a database; to the user they all mean "cannot open".
            raise _CannotOpen(str(exc)) from exc
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except (_CannotOpen, OSError, ConnectionError) as exc:
        shown = describe_database(database)  # never echo a password
        raise click.ClickException(f"cannot open database {shown!r}: {exc}") from exc
    except sqlite3.OperationalError as exc:  # a read-only file, a full disk, a lock held
        raise _cannot_write(database, exc) from exc


def _cannot_write(database: str, exc: Exception) -> click.ClickException:
    return click.ClickException(f"cannot write database {describe_database(database)!r}: {exc}")


def _normalise_database(database: str) -> str:
    if is_postgres_url(database):
        return database
    return os.path.abspath(database)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="warp-registry")
def main() -> None:
    """warp-registry: Cloudflare's Zero Trust device-registration API, self-hosted."""


@main.command()
@click.option(
    "--host",
    envvar=_env("HOST"),
    show_envvar=True,
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; 0.0.0.0 exposes the server.",
)
@click.option(
    "--port",
    envvar=_env("PORT"),
    show_envvar=True,
    default=8787,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port to listen on.",
)
@database_option
@click.option(
    "--workers",
    envvar=_env("WORKERS"),
    show_envvar=True,
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes.",
)
@click.option(
    "--seed",
    envvar=_env("SEED"),
    show_envvar=True,
    default=DEFAULT_SEED,
    show_default=True,
    type=int,
    help="Seed of the demo fleet made on first start.",
)
@click.option(
    "--no-demo",
    is_flag=True,
    envvar=_env("NO_DEMO"),
    show_envvar=True,
    help="On first start, create an empty account instead of the demo fleet.",
)
@click.option(
    "--pool-size",
    envvar=_env("POOL_SIZE"),
    show_envvar=True,
    default=10,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="PostgreSQL: most connections each worker process opens (SQLite ignores it).",
)
@click.option(
    "--rate-limit",
    envvar=_env("RATE_LIMIT"),
    show_envvar=True,
    default=None,
    help="Limit each credential to REQUESTS/SECONDS (`cloudflare` = 1200/300): past it, "
    "429 with code 971 and Retry-After. Off by default.",
)
@click.option("--log-level", envvar=_env("LOG_LEVEL"), show_envvar=True, default="info",
              show_default=True, type=click.Choice(["debug", "info", "warning", "error"]),
              help="info logs one line per request.")  # fmt: skip
def serve(
    host: str,
    port: int,
    database: str,
    workers: int,
    seed: int,
    no_demo: bool,
    pool_size: int,
    rate_limit: str | None,
    log_level: str,
) -> None:
    """Serve the admin API under /client/v4 (initialising an empty database first)."""
    from warp_registry.control.actions import ensure_admin_token
    from warp_registry.control.ratelimit import parse_rate_limit
    from warp_registry.http.server import run

    database = _normalise_database(database)
    if rate_limit:
        try:
            parse_rate_limit(rate_limit)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--rate-limit") from None

    async def prepare(store: SqlStore) -> tuple[InitResult | None, list[str], str | None]:
        created = None
        if await store.is_empty():
            try:
                created = await initialise(store, seed=seed, with_demo=not no_demo)
            except RegistryNotEmpty:  # another process initialised it first
                created = None
        admin_token = await ensure_admin_token(store)
        return created, await store.account_ids(), admin_token

    created, accounts, admin_token = _with_store(database, prepare)
    base_url = f"http://{_url_host(host)}:{port}/client/v4"
    if created is not None:
        click.echo(_first_start_banner(base_url, created))
    else:
        click.echo(f"warp-registry serving {base_url}")
        click.echo(f"accounts: {', '.join(accounts) or '(none)'}")
        click.echo("tokens: `warp-registry token create --account ID` makes a new one")
    if admin_token is not None:
        click.echo(f"admin token (control plane, /_warp-registry/; shown only now): {admin_token}")
    if rate_limit:
        click.echo(f"rate limit: {rate_limit} per credential")
    sys.stdout.flush()
    run(host, port, database, workers, log_level, pool_size, rate_limit)


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _first_start_banner(base_url: str, created: InitResult) -> str:
    reg = created.example_registration_id or "REGISTRATION_ID"
    return f"""\
warp-registry initialised a new registry.

  base URL    {base_url}
  account id  {created.account_id}
  API token   {created.api_token}
              (Zero Trust Write; shown only now, stored only as a hash)

Try it:

  curl -s -H "Authorization: Bearer {created.api_token}" \\
    "{base_url}/accounts/{created.account_id}/devices/registrations/{reg}?include=policy"

  from cloudflare import Cloudflare
  client = Cloudflare(api_token="{created.api_token}", base_url="{base_url}")
  reg = client.zero_trust.devices.registrations.get(
      "{reg}", account_id="{created.account_id}", include="policy")
"""


@main.command()
@database_option
@click.option(
    "--seed",
    envvar=_env("SEED"),
    show_envvar=True,
    default=DEFAULT_SEED,
    show_default=True,
    type=int,
    help="Seed of the demo fleet.",
)
@click.option(
    "--no-demo",
    is_flag=True,
    envvar=_env("NO_DEMO"),
    show_envvar=True,
    help="Create an empty account instead of the demo fleet.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    envvar=_env("JSON"),
    show_envvar=True,
    help="Print one JSON object, for scripts.",
)
def init(database: str, seed: int, no_demo: bool, as_json: bool) -> None:
    """Create the account, a token and the demo fleet, without serving.

    Refuses to touch a database that already holds an account.
    """

    from warp_registry.control.actions import rotate_admin_token

    async def work(store: SqlStore) -> tuple[InitResult, str]:
        created = await initialise(store, seed=seed, with_demo=not no_demo)
        return created, await rotate_admin_token(store)

    try:
        created, admin_token = _with_store(database, work)
    except RegistryNotEmpty:
        raise click.ClickException(
            f"{database} already holds a registry; init only sets up an empty database"
        ) from None

    if as_json:
        click.echo(json.dumps({
            "account_id": created.account_id,
            "api_token": created.api_token,
            "example_registration_id": created.example_registration_id,
            "admin_token": admin_token,
        }))  # fmt: skip
    else:
        click.echo(f"account id  {created.account_id}")
        click.echo(f"API token   {created.api_token}  (shown only now)")
        click.echo(f"admin token {admin_token}  (control plane; shown only now)")
        if created.example_registration_id:
            click.echo(f"example registration  {created.example_registration_id}")


@main.command("seed-registrations", hidden=True)
@database_option
@click.option("--registrations", "count", required=True, type=click.IntRange(min=1),
              envvar=_env("REGISTRATIONS"), show_envvar=True,
              help="How many registrations to add (with their devices and users).")
@click.option("--account", envvar=_env("ACCOUNT"), show_envvar=True,
              help="Account id; may be left out when the registry holds a single account.")
@click.option("--seed", "rng_seed", default=DEFAULT_SEED, show_default=True, type=int,
              envvar=_env("SEED"), show_envvar=True, help="Seed of the generated fleet.")
def seed_registrations(database: str, count: int, account: str | None, rng_seed: int) -> None:
    """Deprecated: `seed --registrations COUNT` does the same."""
    click.echo(
        "warp-registry: `seed-registrations` is deprecated; use `seed --registrations N`",
        err=True,
    )
    add_registrations(database, count, account, rng_seed)


def add_registrations(database: str, count: int, account: str | None, rng_seed: int) -> None:
    """`seed --registrations`: add COUNT seeded registrations in one transaction.

    On a SQLite file that nothing else has open, the seed runs on its own connection with
    a rollback journal (store/seed_exclusive.py); otherwise, e.g. while
    a server runs on it, through the store beside the other connections.
    """
    import time

    from warp_registry.store.seed_exclusive import seed_sqlite_exclusively
    from warp_registry.store.seeding import SeedError

    async def pick(store: SqlStore) -> str:  # also creates or migrates the schema
        return await _pick_account(store, account)

    account_id = _with_store(database, pick)
    started = time.perf_counter()
    with click.progressbar(length=count, label="seeding registrations", file=sys.stderr) as bar:

        async def shared(store: SqlStore) -> Any:
            return await store.seeding.seed(account_id, count, seed=rng_seed,
                                            progress=bar.update)  # fmt: skip

        try:
            result = None
            if not is_postgres_url(database):
                result = asyncio.run(seed_sqlite_exclusively(
                    _normalise_database(database), account_id, count, seed=rng_seed,
                    progress=bar.update,
                ))  # fmt: skip
            if result is None:
                result = _with_store(database, shared)
        except SeedError as exc:
            raise click.ClickException(str(exc)) from None
        except sqlite3.OperationalError as exc:  # the exclusive path runs outside _with_store
            raise _cannot_write(database, exc) from exc
    elapsed = time.perf_counter() - started
    click.echo(
        f"seeded {result.registrations:,} registrations, {result.devices:,} devices and "
        f"{result.users:,} users into account {result.account_id} in {elapsed:.1f} s"
    )


@main.group()
def token() -> None:
    """Manage admin API tokens."""


@token.command("create")
@database_option
@click.option(
    "--account",
    "accounts",
    multiple=True,
    required=True,
    envvar=_env("ACCOUNT"),
    show_envvar=True,
    help="Account id the token may use; repeat for several accounts (the variable "
    "takes several ids separated by spaces).",
)
@click.option(
    "--permission",
    type=click.Choice(["read", "write"]),
    default="write",
    envvar=_env("PERMISSION"),
    show_envvar=True,
    show_default=True,
    help="Zero Trust Read or Zero Trust Write.",
)
@click.option(
    "--name",
    default="Created by the CLI",
    envvar=_env("TOKEN_NAME"),
    show_envvar=True,
    show_default=True,
    help="A label.",
)
def token_create(database: str, accounts: tuple[str, ...], permission: str, name: str) -> None:
    """Create a token and print it (it is not shown again)."""
    for account in accounts:
        if not is_account_id(account):
            raise click.BadParameter(
                f"{account!r} is not a 32-hex account id", param_hint="--account"
            )
    secret = new_api_token()

    async def work(store: SqlStore) -> bool:
        return await store.create_token(
            new_uuid(), name, hash_secret(secret), permission, [a.lower() for a in accounts]
        )

    if not _with_store(database, work):
        raise click.ClickException("no such account: " + ", ".join(accounts))
    click.echo(secret)


@token.command("list")
@database_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    envvar=_env("JSON"),
    show_envvar=True,
    help="Print JSON lines.",
)
def token_list(database: str, as_json: bool) -> None:
    """List tokens (never their secrets)."""
    for item in _with_store(database, lambda store: store.list_tokens()):
        row = {
            "id": item.id,
            "name": item.name,
            "permission": item.permission,
            "accounts": list(item.account_ids),
            "created_at": format_rfc3339(item.created_at),
            "revoked_at": format_optional(item.revoked_at),
        }
        if as_json:
            click.echo(json.dumps(row))
        else:
            status = "revoked" if item.revoked_at else "active"
            click.echo(f"{item.id}  {item.permission:5}  {status:7}  {','.join(item.account_ids)}"
                       f"  {item.name}")  # fmt: skip


@token.command("revoke")
@database_option
@click.argument("token_id")
def token_revoke(database: str, token_id: str) -> None:
    """Revoke a token by id; it stops working at once."""
    if not _with_store(database, lambda store: store.revoke_token(token_id)):
        raise click.ClickException(f"no active token with id {token_id}")
    click.echo(f"revoked {token_id}")


@main.command("global-key")
@database_option
@click.option(
    "--email",
    required=True,
    envvar=_env("EMAIL"),
    show_envvar=True,
    help="The admin's email (X-Auth-Email).",
)
@click.option(
    "--account",
    required=True,
    envvar=_env("ACCOUNT"),
    show_envvar=True,
    help="Account id the admin is a member of.",
)
def global_key(database: str, email: str, account: str) -> None:
    """Make EMAIL a member of ACCOUNT with a new Global API Key, and print the key."""
    _check_email(email)
    if not is_account_id(account):
        raise click.BadParameter(f"{account!r} is not a 32-hex account id", param_hint="--account")
    key = new_global_key()

    async def work(store: SqlStore) -> bool:
        return await store.create_global_key(
            new_uuid(), email.lower(), hash_secret(key), account.lower()
        )

    if not _with_store(database, work):
        raise click.ClickException(f"no such account: {account}")
    click.echo(key)


# --- the WARP client side (docs/enrollment.md): warp-registry plays the team's Access,
# --- hands out service tokens, and can enroll a device itself.


def _account_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--account",
        envvar=_env("ACCOUNT"),
        show_envvar=True,
        help="Account id; may be left out when the registry holds a single account.",
    )(fn)


async def _pick_account(store: SqlStore, account: str | None) -> str:
    """The account named, or the registry's only one."""
    if account is not None:
        if not is_account_id(account):
            raise click.BadParameter(
                f"{account!r} is not a 32-hex account id", param_hint="--account"
            )
        return account.lower()
    accounts = await store.account_ids()
    if not accounts:
        raise click.ClickException("the registry has no account yet: run `warp-registry init`")
    if len(accounts) != 1:
        raise click.UsageError(
            f"the registry holds {len(accounts)} accounts; name one with --account"
        )
    return accounts[0]


def _check_email(email: str) -> str:
    """The server's own checks, so the CLI never mints a credential it will refuse."""
    from warp_registry.domain.access_jwt import MAX_EMAIL_LENGTH
    from warp_registry.http.auth import is_valid_email

    if not is_valid_email(email) or len(email) > MAX_EMAIL_LENGTH:
        raise click.BadParameter(
            f"{email!r} is not an email address of at most {MAX_EMAIL_LENGTH} characters",
            param_hint="--email",
        )
    return email


def _mint_access_jwt(
    database: str, account: str | None, email: str, name: str | None, groups: str, ttl: int
) -> str:
    from warp_registry.domain import access_jwt

    async def work(store: SqlStore) -> str:
        account_id = await _pick_account(store, account)
        key = await store.enrollment.signing_key(account_id)
        if key is None:
            raise click.ClickException(f"no such account: {account_id}")
        names = [group.strip() for group in groups.split(",") if group.strip()]
        return access_jwt.mint(key, _check_email(email), name=name, groups=names, ttl_s=ttl)

    return _with_store(database, work)


@main.command("enroll-token")
@database_option
@_account_option
@click.option("--email", required=True, envvar=_env("EMAIL"), show_envvar=True,
              help="The user's email (the JWT's email claim).")
@click.option("--name", envvar=_env("USER_NAME"), show_envvar=True,
              help="The user's display name (the name claim).")
@click.option("--groups", default="", envvar=_env("GROUPS"), show_envvar=True,
              help="Comma-separated group names (the groups claim).")
@click.option("--ttl", default=60, show_default=True, envvar=_env("JWT_TTL"), show_envvar=True,
              type=click.IntRange(1, 86_400), help="Seconds the JWT stays valid.")  # fmt: skip
def enroll_token(
    database: str, account: str | None, email: str, name: str | None, groups: str, ttl: int
) -> None:
    """Print an Access JWT that enrolls one device of EMAIL (Cf-Access-Jwt-Assertion).

    The JWT is signed with the account's key (made on first use; the server publishes
    it at /cdn-cgi/access/certs) and is accepted once, within TTL seconds.
    """
    click.echo(_mint_access_jwt(database, account, email, name, groups, ttl))


@main.group("service-token")
def service_token() -> None:
    """Manage Access service tokens, which enroll devices with no user."""


@service_token.command("create")
@database_option
@_account_option
@click.option("--name", default="Created by the CLI", show_default=True,
              envvar=_env("SERVICE_TOKEN_NAME"), show_envvar=True, help="A label.")  # fmt: skip
def service_token_create(database: str, account: str | None, name: str) -> None:
    """Create a service token and print its two headers (the secret is not shown again)."""
    import secrets

    from warp_registry.domain.enrollment import ServiceToken

    client_id = f"{secrets.token_hex(16)}.access"
    secret = secrets.token_hex(32)

    async def work(store: SqlStore) -> bool:
        account_id = await _pick_account(store, account)
        token = ServiceToken(new_uuid(), account_id, name, client_id, hash_secret(secret), None)
        return await store.enrollment.create_service_token(token)

    if not _with_store(database, work):
        raise click.ClickException(f"no such account: {account}")
    click.echo(f"CF-Access-Client-Id: {client_id}")
    click.echo(f"CF-Access-Client-Secret: {secret}")


@main.group()
def account() -> None:
    """Change account settings."""


@account.command("set")
@database_option
@_account_option
@click.option("--multi-user", "multi_user", required=True, type=click.Choice(["on", "off"]),
              envvar=_env("MULTI_USER"), show_envvar=True,
              help="Multi-user mode; when on, the v1 /devices endpoints answer 400.")  # fmt: skip
def account_set(database: str, account: str | None, multi_user: str) -> None:
    """Switch an account's multi-user mode on or off (docs/devices.md)."""

    async def work(store: SqlStore) -> str | None:
        account_id = await _pick_account(store, account)
        found = await store.devices.set_multi_user(account_id, multi_user == "on")
        return account_id if found else None

    account_id = _with_store(database, work)
    if account_id is None:
        raise click.ClickException(f"no such account: {account}")
    click.echo(f"account {account_id}: multi-user mode {multi_user}")


@main.command()
@click.option("--server", required=True, envvar=_env("SERVER"), show_envvar=True,
              help="Root URL of a running warp-registry, e.g. http://127.0.0.1:8787.")
@click.option("--email", envvar=_env("EMAIL"), show_envvar=True,
              help="Enroll as this user, with a JWT minted from --database.")
@click.option("--jwt", "assertion", envvar=_env("ACCESS_JWT"), show_envvar=True,
              help="Enroll with this Access JWT (from `enroll-token`) instead.")
@click.option("--service-token-id", envvar=_env("SERVICE_TOKEN_ID"), show_envvar=True,
              help="Enroll with a service token instead (CF-Access-Client-Id).")
@click.option("--service-token-secret", envvar=_env("SERVICE_TOKEN_SECRET"),
              show_envvar=True, help="The service token's CF-Access-Client-Secret.")
@click.option("--tunnel", type=click.Choice(["wireguard", "masque"]), default="wireguard",
              show_default=True, envvar=_env("TUNNEL"), show_envvar=True,
              help="masque switches the registration to a P-256 key after enrolling.")
@click.option("--name", envvar=_env("DEVICE_NAME"), show_envvar=True, help="Device name.")
@click.option("--serial", envvar=_env("SERIAL"), show_envvar=True,
              help="Device serial number; the same serial is the same device.")
@database_option
@_account_option  # fmt: skip
def enroll(
    server: str, email: str | None, assertion: str | None, service_token_id: str | None,
    service_token_secret: str | None, tunnel: str, name: str | None, serial: str | None,
    database: str, account: str | None,
) -> None:
    """Enroll a device against SERVER as a WARP client does, and print its configuration.

    Who enrolls: --jwt, or a service token, or --email (a 60 s JWT is then minted from
    --database, which must be the server's database). Prints the registration id, its
    client token and a WireGuard [Interface]/[Peer] config (or the MASQUE details).
    """  # fmt: skip
    from warp_registry import warp_client

    if assertion:
        headers = {"Cf-Access-Jwt-Assertion": assertion}
    elif service_token_id or service_token_secret:
        headers = {"CF-Access-Client-Id": service_token_id or "",
                   "CF-Access-Client-Secret": service_token_secret or ""}  # fmt: skip
    elif email:
        jwt = _mint_access_jwt(database, account, email, None, "", 60)
        headers = {"Cf-Access-Jwt-Assertion": jwt}
    else:
        raise click.UsageError("say who enrolls: --email, --jwt or --service-token-id/-secret")

    try:
        enrolled = warp_client.enroll(server, headers, tunnel=tunnel, name=name,
                                      serial_number=serial)  # fmt: skip
    except warp_client.ClientApiError as exc:
        raise click.ClickException(f"the server refused: {exc}") from None
    except OSError as exc:  # connection refused, DNS, timeout
        raise click.ClickException(f"cannot reach {server}: {exc}") from None

    registration = enrolled.registration
    click.echo(f"# registration {registration['id']} (account {registration['account']['id']})")
    click.echo(f"# client token {enrolled.token} (Authorization: Bearer, for /v0/reg/{{id}})")
    click.echo(f"# tunnel {registration['tunnel_type']}, key {registration['key']}")
    if tunnel == "masque":
        click.echo(warp_client.masque_details(enrolled), nl=False)
    else:
        click.echo(warp_client.wireguard_config(enrolled), nl=False)


# Control-plane commands (docs/control-plane.md): reset, seed, export, import, clock,
# journal, faults, rate-limit counters, admin token. Imported last: they use the helpers
# above.
from warp_registry.control.cli import add_control_commands  # noqa: E402

add_control_commands(main)


if __name__ == "__main__":
    main()
