"""`warp-registry account set --multi-user on|off` (docs/cli.md), run as a user would."""

from __future__ import annotations

import asyncio
import json

from tests.conftest import cli
from warp_registry.store import open_store


def _mode(database_url: str, account_id: str) -> bool | None:
    """The account's mode as the store reads it."""

    async def read() -> bool | None:
        store = await open_store(database_url)
        try:
            return await store.devices.multi_user(account_id)
        finally:
            await store.close()

    return asyncio.run(read())


def test_account_set_switches_multi_user_mode(database_url: str) -> None:
    created = cli("init", "--json", "--no-demo", "--database", database_url)
    assert created.returncode == 0, created.stderr
    account_id = json.loads(created.stdout)["account_id"]
    assert _mode(database_url, account_id) is False

    # The registry holds one account, so --account may be left out.
    done = cli("account", "set", "--multi-user", "on", "--database", database_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"account {account_id}: multi-user mode on"
    assert _mode(database_url, account_id) is True

    done = cli("account", "set", "--account", account_id.upper(), "--database", database_url,
               env={"WARP_REGISTRY_MULTI_USER": "off"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _mode(database_url, account_id) is False


def test_account_set_refuses_bad_input(database_url: str) -> None:
    assert cli("init", "--no-demo", "--database", database_url).returncode == 0

    unknown = cli("account", "set", "--multi-user", "on", "--account", "0" * 32,
                  "--database", database_url)  # fmt: skip
    assert unknown.returncode == 1
    assert "no such account" in unknown.stderr

    for bad in (["--multi-user", "maybe"], ["--multi-user", "on", "--account", "xyz"], []):
        done = cli("account", "set", *bad, "--database", database_url)
        assert done.returncode == 2, (bad, done.stderr)
