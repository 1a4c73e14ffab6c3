"""The `warp-registry` command line: options, init, tokens, global keys and serve.

Commands run in process through click's CliRunner, except `serve`, which starts the real
server process the way a user would (marked `server`).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner, Result

from tests.conftest import start_server, stop_server
from tests.expect import assert_error_envelope
from warp_registry import __version__
from warp_registry.bootstrap import DEFAULT_SEED, plan_registry
from warp_registry.cli import main
from warp_registry.clock import now_us
from warp_registry.http.app import RegistryApp
from warp_registry.http.context import AppContext
from warp_registry.ids import is_account_id, is_uuid
from warp_registry.store import open_store

ENV_PREFIX = "WARP_REGISTRY_"


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    """Invoke the CLI in process; exceptions other than exits are not swallowed."""
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def init_json(database: str, *extra: str) -> dict[str, Any]:
    result = run("init", "--json", "--database", database, *extra)
    assert result.exit_code == 0, result.output
    created: dict[str, Any] = json.loads(result.stdout)
    return created


def get(database: str, path: str, headers: dict[str, str]) -> httpx.Response:
    """One request to an in-process app over `database` (path under /client/v4)."""

    async def request() -> httpx.Response:
        store = await open_store(database)
        try:
            transport = httpx.ASGITransport(app=RegistryApp(AppContext(store=store)))
            async with httpx.AsyncClient(
                transport=transport, base_url="http://testserver/client/v4"
            ) as client:
                return await client.get(path, headers=headers)
        finally:
            await store.close()

    return asyncio.run(request())


def registration_path(account_id: str, registration_id: str) -> str:
    return f"/accounts/{account_id}/devices/registrations/{registration_id}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_rows(database: str) -> list[dict[str, Any]]:
    result = run("token", "list", "--json", "--database", database)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


# --- options and help ---


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for name, command in sorted(group.commands.items()):
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found.extend(_commands(command, (*prefix, name)))
    return found


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


COMMANDS = _commands(main)


def test_the_admin_commands_exist() -> None:
    assert set(COMMANDS) >= {
        ("serve",), ("init",), ("token",), ("token", "create"), ("token", "list"),
        ("token", "revoke"), ("global-key",),
    }  # fmt: skip


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_help_documents_every_option_and_its_env_var(path: tuple[str, ...]) -> None:
    command = _command(path)
    result = run(*path, "--help")
    assert result.exit_code == 0
    help_text = " ".join(result.stdout.split())  # undo click's line wrapping

    assert command.help, "every command says what it does"
    for param in command.params:
        if not isinstance(param, click.Option) or param.name == "help":
            continue
        assert param.help, f"{param.name} has no help text"
        assert isinstance(param.envvar, str) and param.envvar.startswith(ENV_PREFIX)
        assert param.show_envvar, f"{param.name} hides its env var"
        assert param.opts[0] in help_text
        assert param.envvar in help_text


def test_commands_touching_the_registry_take_database() -> None:
    for path in COMMANDS:
        command = _command(path)
        if isinstance(command, click.Group):
            continue
        names = {p.name for p in command.params}
        assert "database" in names, path


def test_serve_defaults_to_loopback_8787() -> None:
    params = {p.name: p for p in _command(("serve",)).params}
    assert params["host"].default == "127.0.0.1"
    assert params["port"].default == 8787


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert __version__ in result.stdout


# --- init ---


def test_init_json_prints_account_token_and_example(database_url: str) -> None:
    created = init_json(database_url)

    assert set(created) == {"account_id", "api_token", "example_registration_id", "admin_token"}
    assert is_account_id(created["account_id"])
    assert is_uuid(created["example_registration_id"])
    _, planned_account, _ = plan_registry(DEFAULT_SEED, True, now_us())
    assert created["account_id"] == planned_account

    path = registration_path(created["account_id"], created["example_registration_id"])
    response = get(database_url, path, bearer(created["api_token"]))
    assert response.status_code == 200
    assert response.json()["result"]["id"] == created["example_registration_id"]


def test_init_seed_changes_the_account(database_url: str) -> None:
    created = init_json(database_url, "--seed", "7")
    _, planned_account, _ = plan_registry(7, True, now_us())
    assert created["account_id"] == planned_account


def test_init_without_json_prints_the_same_facts(tmp_path: Path) -> None:
    database = str(tmp_path / "registry.db")
    result = run("init", "--database", database)
    assert result.exit_code == 0
    _, planned_account, _ = plan_registry(DEFAULT_SEED, True, now_us())
    assert planned_account in result.stdout
    assert "API token" in result.stdout and "example registration" in result.stdout


def test_init_refuses_a_non_empty_database(database_url: str) -> None:
    created = init_json(database_url)
    tokens_before = token_rows(database_url)

    for extra in ((), ("--no-demo",), ("--seed", "2")):
        again = run("init", "--json", "--database", database_url, *extra)
        assert again.exit_code != 0
        assert "already holds a registry" in again.output
        assert again.stdout == ""

    assert token_rows(database_url) == tokens_before
    path = registration_path(created["account_id"], created["example_registration_id"])
    assert get(database_url, path, bearer(created["api_token"])).status_code == 200


def test_init_no_demo_makes_an_empty_account(database_url: str) -> None:
    created = init_json(database_url, "--no-demo")
    assert created["example_registration_id"] is None
    assert is_account_id(created["account_id"])

    # The account and token work; the account just holds no registration.
    path = registration_path(created["account_id"], "11ffb86f-3f0c-4306-b4a2-e62f872b166a")
    response = get(database_url, path, bearer(created["api_token"]))
    assert response.status_code == 404
    assert_error_envelope(response.json(), 1100)

    async def first_registration() -> str | None:
        store = await open_store(database_url)
        try:
            return await store.first_registration_id(created["account_id"])
        finally:
            await store.close()

    assert asyncio.run(first_registration()) is None


def test_unopenable_database_is_a_clear_error(tmp_path: Path) -> None:
    missing_dir = str(tmp_path / "no" / "such" / "dir" / "registry.db")
    result = run("init", "--database", missing_dir)
    assert result.exit_code == 1
    assert "cannot open database" in result.output

    not_a_database = tmp_path / "garbage.db"
    not_a_database.write_bytes(b"this is not SQLite" * 100)
    result = run("token", "list", "--database", str(not_a_database))
    assert result.exit_code == 1
    assert "cannot open database" in result.output


def test_database_from_env_var_and_flag_wins(tmp_path: Path) -> None:
    from_env = str(tmp_path / "env.db")
    from_flag = str(tmp_path / "flag.db")

    result = run("init", "--json", env={"WARP_REGISTRY_DATABASE": from_env})
    assert result.exit_code == 0
    assert Path(from_env).exists()

    result = run("init", "--json", "--database", from_flag,
                 env={"WARP_REGISTRY_DATABASE": from_env})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert Path(from_flag).exists()


# --- tokens ---


def test_token_create_list_revoke(database_url: str) -> None:
    created = init_json(database_url)
    account = created["account_id"]
    path = registration_path(account, created["example_registration_id"])

    made = run("token", "create", "--database", database_url, "--account", account,
               "--permission", "read", "--name", "ci reader")  # fmt: skip
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip()
    assert re.fullmatch(r"[A-Za-z0-9]{40}", secret)
    assert get(database_url, path, bearer(secret)).status_code == 200

    rows = token_rows(database_url)
    assert len(rows) == 2
    reader = next(row for row in rows if row["name"] == "ci reader")
    assert reader["permission"] == "read"
    assert reader["accounts"] == [account]
    assert reader["revoked_at"] is None
    assert all(secret not in json.dumps(row) for row in rows)

    revoked = run("token", "revoke", "--database", database_url, reader["id"])
    assert revoked.exit_code == 0
    response = get(database_url, path, bearer(secret))
    assert response.status_code == 403
    assert_error_envelope(response.json(), 9109)

    listed = next(row for row in token_rows(database_url) if row["id"] == reader["id"])
    assert listed["revoked_at"] is not None
    assert run("token", "revoke", "--database", database_url, reader["id"]).exit_code != 0

    # The init token is untouched.
    assert get(database_url, path, bearer(created["api_token"])).status_code == 200


def test_token_list_plain_text(tmp_path: Path) -> None:
    database = str(tmp_path / "registry.db")
    created = init_json(database)
    result = run("token", "list", "--database", database)
    assert result.exit_code == 0
    assert created["account_id"] in result.stdout and "write" in result.stdout
    assert created["api_token"] not in result.stdout


def test_token_create_refuses_bad_accounts(tmp_path: Path) -> None:
    database = str(tmp_path / "registry.db")
    init_json(database)

    malformed = run("token", "create", "--database", database, "--account", "nope")
    assert malformed.exit_code == 2
    assert "32-hex" in malformed.output

    unknown = run("token", "create", "--database", database, "--account", "0" * 32)
    assert unknown.exit_code == 1
    assert "no such account" in unknown.output
    assert len(token_rows(database)) == 1


def test_global_key_command(database_url: str) -> None:
    created = init_json(database_url)
    account = created["account_id"]

    made = run("global-key", "--database", database_url, "--email", "Ops@Example.com",
               "--account", account)  # fmt: skip
    assert made.exit_code == 0, made.output
    key = made.stdout.strip()

    path = registration_path(account, created["example_registration_id"])
    headers = {"X-Auth-Email": "ops@example.com", "X-Auth-Key": key}
    assert get(database_url, path, headers).status_code == 200

    unknown = run("global-key", "--database", database_url, "--email", "a@example.com",
                  "--account", "0" * 32)  # fmt: skip
    assert unknown.exit_code == 1


# --- serve (real processes) ---


def _banner_value(log: str, label: str) -> str:
    match = re.search(rf"^\s*{label}\s+(\S+)", log, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{log}"
    return match.group(1)


@pytest.mark.server
def test_serve_initialises_an_empty_database_once(database_url: str, tmp_path: Path) -> None:
    first_log = tmp_path / "first.log"
    process, base_url = start_server(database_url, log_path=first_log)
    try:
        banner = first_log.read_text()
        token = _banner_value(banner, "API token")
        account = _banner_value(banner, "account id")
        assert _banner_value(banner, "base URL") == base_url

        # The curl line and the SDK snippet are ready to paste.
        assert f'curl -s -H "Authorization: Bearer {token}"' in banner
        assert f'Cloudflare(api_token="{token}", base_url="{base_url}")' in banner
        assert f'account_id="{account}"' in banner
        example = re.search(r"registrations/([0-9a-f-]{36})\?include=policy", banner)
        assert example, banner

        response = httpx.get(
            f"{base_url}{registration_path(account, example.group(1))}",
            headers=bearer(token),
            timeout=10,
        )
        assert response.status_code == 200
    finally:
        stop_server(process)

    second_log = tmp_path / "second.log"
    process, base_url = start_server(database_url, log_path=second_log)
    try:
        restarted = second_log.read_text()
        assert token not in restarted
        assert "API token" not in restarted
        assert f"warp-registry serving {base_url}" in restarted
        assert account in restarted

        response = httpx.get(
            f"{base_url}{registration_path(account, example.group(1))}",
            headers=bearer(token),
            timeout=10,
        )
        assert response.status_code == 200
    finally:
        stop_server(process)


@pytest.mark.server
def test_serve_no_demo_starts_an_empty_account(tmp_path: Path) -> None:
    database = str(tmp_path / "registry.db")
    log = tmp_path / "serve.log"
    process, base_url = start_server(database, "--no-demo", log_path=log)
    try:
        banner = log.read_text()
        token = _banner_value(banner, "API token")
        account = _banner_value(banner, "account id")
        response = httpx.get(
            f"{base_url}{registration_path(account, '11ffb86f-3f0c-4306-b4a2-e62f872b166a')}",
            headers=bearer(token),
            timeout=10,
        )
        assert response.status_code == 404
    finally:
        stop_server(process)


def test_seed_on_a_registry_without_account_says_to_init(tmp_path: Path) -> None:
    result = run("seed", "--database", str(tmp_path / "empty.db"), "--registrations", "5")
    assert result.exit_code == 1
    assert "no account yet: run `warp-registry init`" in result.output


def test_a_database_that_refuses_writes_is_a_message_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a read-only file does for a non-root user (root may write any file, so the
    refusal is simulated where SQLite raises it)."""
    import sqlite3

    from warp_registry.store import seed_exclusive
    from warp_registry.store.seeding import FleetSeeder

    database = str(tmp_path / "ro.db")
    assert run("init", "--database", database).exit_code == 0

    async def refuse(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(seed_exclusive, "seed_sqlite_exclusively", refuse)
    result = run("seed", "--database", database, "--registrations", "5")
    assert result.exit_code == 1
    assert "cannot write database" in result.output and "readonly" in result.output

    async def no_exclusive(*args: object, **kwargs: object) -> None:
        return None

    monkeypatch.setattr(seed_exclusive, "seed_sqlite_exclusively", no_exclusive)
    monkeypatch.setattr(FleetSeeder, "seed", refuse)
    result = run("seed", "--database", database, "--registrations", "5")
    assert result.exit_code == 1
    assert "cannot write database" in result.output and "readonly" in result.output
