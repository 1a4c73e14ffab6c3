"""The `warp-registry` command line. `serve` is the main job.

Every option has an environment-variable twin (WARP_REGISTRY_<NAME>); a flag on the
command line wins over the variable, which wins over the default.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from warp_registry import __version__
from warp_registry.bootstrap import DEFAULT_SEED, InitResult, RegistryNotEmpty, initialise
from warp_registry.clock import format_optional, format_rfc3339
from warp_registry.ids import is_account_id, new_uuid
from warp_registry.secrets import hash_secret, new_api_token, new_global_key
from warp_registry.store import is_postgres_url, open_store
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


def _with_store(database: str, work: Callable[[SqlStore], Awaitable[T]]) -> T:
    async def run() -> T:
        store = await open_store(_normalise_database(database))
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except (OSError, ConnectionError) as exc:
        raise click.ClickException(f"cannot open database {database!r}: {exc}") from exc


def _normalise_database(database: str) -> str:
    if is_postgres_url(database):
        return database
    return os.path.abspath(database)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="warp-registry")
def main() -> None:
    """warp-registry: Cloudflare's Zero Trust device-registration API, self-hosted."""


@main.command()
@click.option("--host", envvar=_env("HOST"), show_envvar=True, default="127.0.0.1",
              show_default=True, help="Address to listen on; 0.0.0.0 exposes the server.")
@click.option("--port", envvar=_env("PORT"), show_envvar=True, default=8787, show_default=True,
              type=click.IntRange(0, 65535), help="TCP port to listen on.")
@database_option
@click.option("--workers", envvar=_env("WORKERS"), show_envvar=True, default=1,
              show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
@click.option("--seed", envvar=_env("SEED"), show_envvar=True, default=DEFAULT_SEED,
              show_default=True, type=int, help="Seed of the demo fleet made on first start.")
@click.option("--no-demo", is_flag=True, envvar=_env("NO_DEMO"), show_envvar=True,
              help="On first start, create an empty account instead of the demo fleet.")
@click.option("--log-level", envvar=_env("LOG_LEVEL"), show_envvar=True, default="info",
              show_default=True, type=click.Choice(["debug", "info", "warning", "error"]),
              help="info logs one line per request.")  # fmt: skip
def serve(
    host: str, port: int, database: str, workers: int, seed: int, no_demo: bool, log_level: str
) -> None:
    """Serve the admin API under /client/v4 (initialising an empty database first)."""
    from warp_registry.http.server import run

    database = _normalise_database(database)

    async def prepare(store: SqlStore) -> tuple[InitResult | None, list[str]]:
        created = None
        if await store.is_empty():
            try:
                created = await initialise(store, seed=seed, with_demo=not no_demo)
            except RegistryNotEmpty:  # another process initialised it first
                created = None
        return created, await store.account_ids()

    created, accounts = _with_store(database, prepare)
    base_url = f"http://{_url_host(host)}:{port}/client/v4"
    if created is not None:
        click.echo(_first_start_banner(base_url, created))
    else:
        click.echo(f"warp-registry serving {base_url}")
        click.echo(f"accounts: {', '.join(accounts) or '(none)'}")
        click.echo("tokens: `warp-registry token create --account ID` makes a new one")
    sys.stdout.flush()
    run(host, port, database, workers, log_level)


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
@click.option("--seed", envvar=_env("SEED"), show_envvar=True, default=DEFAULT_SEED,
              show_default=True, type=int, help="Seed of the demo fleet.")
@click.option("--no-demo", is_flag=True, envvar=_env("NO_DEMO"), show_envvar=True,
              help="Create an empty account instead of the demo fleet.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object, for scripts.")
def init(database: str, seed: int, no_demo: bool, as_json: bool) -> None:
    """Create the account, a token and the demo fleet, without serving.

    Refuses to touch a database that already holds an account.
    """

    async def work(store: SqlStore) -> InitResult:
        return await initialise(store, seed=seed, with_demo=not no_demo)

    try:
        created = _with_store(database, work)
    except RegistryNotEmpty:
        raise click.ClickException(
            f"{database} already holds a registry; init only sets up an empty database"
        ) from None

    if as_json:
        click.echo(json.dumps({
            "account_id": created.account_id,
            "api_token": created.api_token,
            "example_registration_id": created.example_registration_id,
        }))  # fmt: skip
    else:
        click.echo(f"account id  {created.account_id}")
        click.echo(f"API token   {created.api_token}  (shown only now)")
        if created.example_registration_id:
            click.echo(f"example registration  {created.example_registration_id}")


@main.group()
def token() -> None:
    """Manage admin API tokens."""


@token.command("create")
@database_option
@click.option("--account", "accounts", multiple=True, required=True,
              help="Account id the token may use; repeat for several accounts.")
@click.option("--permission", type=click.Choice(["read", "write"]), default="write",
              show_default=True, help="Zero Trust Read or Zero Trust Write.")
@click.option("--name", default="Created by the CLI", show_default=True, help="A label.")
def token_create(database: str, accounts: tuple[str, ...], permission: str, name: str) -> None:
    """Create a token and print it (it is not shown again)."""
    for account in accounts:
        if not is_account_id(account):
            raise click.BadParameter(f"{account!r} is not a 32-hex account id", param_hint="--account")
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
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
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
@click.option("--email", required=True, help="The admin's email (X-Auth-Email).")
@click.option("--account", required=True, help="Account id the admin is a member of.")
def global_key(database: str, email: str, account: str) -> None:
    """Make EMAIL a member of ACCOUNT with a new Global API Key, and print the key."""
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


if __name__ == "__main__":
    main()
