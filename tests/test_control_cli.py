"""Every control action as a CLI command, on the database a server uses."""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import processes
from tests.conftest import cli


def _ok(*args: str) -> str:
    done = cli(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _json_lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def database(tmp_path: Path) -> str:
    return str(tmp_path / "registry.db")


@pytest.fixture
def created(database: str) -> dict[str, str]:
    result: dict[str, str] = json.loads(_ok("init", "--json", "--database", database))
    return result


def test_init_json_prints_an_admin_token(created: dict[str, str]) -> None:
    assert created["admin_token"].startswith("wradmin-")
    assert created["admin_token"] != created["api_token"]


def test_export_reset_import_round_trip(database: str, created: dict[str, str],
                                        tmp_path: Path) -> None:  # fmt: skip
    exported = tmp_path / "export.json"
    _ok("export", "--database", database, "--output", str(exported))
    fresh = json.loads(_ok("reset", "--no-demo", "--database", database))
    assert fresh["account_id"] == created["account_id"]
    assert fresh["example_registration_id"] is None
    assert _ok("export", "--database", database).encode() != exported.read_bytes()

    assert created["account_id"] in _ok("import", str(exported), "--database", database)
    assert _ok("export", "--database", database).encode() == exported.read_bytes()

    refused = cli("import", str(tmp_path / "missing.json"), "--database", database)
    assert refused.returncode != 0
    (tmp_path / "bad.json").write_text("{}")
    bad = cli("import", str(tmp_path / "bad.json"), "--database", database)
    assert bad.returncode != 0 and "not a warp-registry-export" in bad.stderr


def test_seed_clock_journal_faults_and_counts(database: str, created: dict[str, str]) -> None:
    seeded = json.loads(_ok("seed", "--devices", "5", "--seed", "9", "--database", database))
    assert seeded["example_registration_id"]

    frozen = json.loads(_ok("clock", "freeze", "--at", "2030-01-01T00:00:00Z",
                            "--database", database))  # fmt: skip
    assert frozen == {"now": "2030-01-01T00:00:00.000000Z", "frozen": True,
                      "offset_seconds": frozen["offset_seconds"]}  # fmt: skip
    advanced = json.loads(_ok("clock", "advance", "--seconds", "3600", "--database", database))
    assert advanced["now"] == "2030-01-01T01:00:00.000000Z"
    shown = json.loads(_ok("clock", "show", "--database", database))
    assert shown["now"] == advanced["now"]
    json.loads(_ok("clock", "set", "--at", "2031-01-01T00:00:00Z", "--database", database))
    assert json.loads(_ok("clock", "resume", "--database", database))["frozen"] is False
    assert json.loads(_ok("clock", "reset", "--database", database))["offset_seconds"] == 0

    _ok("journal", "on", "--size", "10", "--database", database)
    assert _ok("journal", "show", "--database", database) == ""
    _ok("journal", "clear", "--database", database)
    _ok("journal", "off", "--database", database)

    rule = json.loads(_ok("fault", "add", "--status", "429", "--retry-after", "2",
                          "--header", "x-should-retry=false", "--times", "3",
                          "--database", database))  # fmt: skip
    assert (rule["code"], rule["headers"], rule["remaining"]) == (
        971, {"x-should-retry": "false"}, 3)  # fmt: skip
    assert [r["id"] for r in _json_lines(_ok("fault", "list", "--database", database))] == [
        rule["id"]
    ]
    assert cli("fault", "add", "--status", "42", "--database", database).returncode != 0
    _ok("fault", "delete", rule["id"], "--database", database)
    assert cli("fault", "delete", rule["id"], "--database", database).returncode != 0
    _ok("fault", "clear", "--database", database)
    _ok("rate-limit", "reset", "--database", database)
    assert _ok("admin-token", "rotate", "--database", database).startswith("wradmin-")


@pytest.mark.server
def test_seed_registrations_beside_a_running_server(
    database: str, created: dict[str, str], tmp_path: Path
) -> None:
    """With a server on the file the seed cannot have it alone: it runs beside it in WAL
    mode, and the server serves the new registrations."""
    account = created["account_id"]
    token = {"Authorization": f"Bearer {created['api_token']}"}
    before = set(_registration_ids(database))
    with processes.running(database, log_path=tmp_path / "server.log") as server:
        done = cli("seed", "--registrations", "300", "--database", database)
        assert done.returncode == 0, done.stderr
        assert "seeded 300 registrations" in done.stdout
        added = sorted(set(_registration_ids(database)) - before)
        assert len(added) == 300
        for reg_id in added[:3]:
            path = f"/accounts/{account}/devices/registrations/{reg_id}"
            assert httpx.get(server.base_url + path, headers=token).status_code == 200
    with closing(sqlite3.connect(database)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def _registration_ids(database: str) -> list[str]:
    with closing(sqlite3.connect(database)) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM registrations")]


@pytest.mark.server
def test_a_running_server_sees_cli_changes_and_its_admin_token(
    database: str, created: dict[str, str], tmp_path: Path
) -> None:
    path = f"/accounts/{created['account_id']}/devices/registrations"
    token = {"Authorization": f"Bearer {created['api_token']}"}
    with processes.running(database, log_path=tmp_path / "server.log") as server:
        root = server.base_url.removesuffix("/client/v4")
        admin = {"Authorization": f"Bearer {created['admin_token']}"}
        assert httpx.get(root + "/_warp-registry/status", headers=admin).status_code == 200
        assert httpx.get(root + "/_warp-registry/status", headers=token).status_code == 403
        assert httpx.get(server.base_url + path, headers=admin).status_code == 403

        _ok("fault", "add", "--path", "*/registrations", "--status", "503",
            "--database", database)  # fmt: skip
        deadline = time.monotonic() + 10
        status = 200
        while status == 200 and time.monotonic() < deadline:
            status = httpx.get(server.base_url + path, headers=token).status_code
            time.sleep(0.05)
    assert status == 503
