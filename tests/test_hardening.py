"""Regressions from attacking the server as a stranger would: headers, logs, URLs, CLI."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from tests.conftest import Registry, cli
from warp_registry.http.app import MAX_BODY_BYTES, RegistryApp
from warp_registry.store import open_store


def _path(registry: Registry) -> str:
    reg = registry.fleet.registrations[0].id
    return f"/accounts/{registry.account_id}/devices/registrations/{reg}"


async def test_a_repeated_authorization_header_is_refused(
    anon: httpx.AsyncClient, registry: Registry
) -> None:
    # Which copy a proxy checks and which one we use must never differ: neither wins.
    for pair in (["Bearer wrong", f"Bearer {registry.token}"],
                 [f"Bearer {registry.token}", "Bearer wrong"]):  # fmt: skip
        headers = httpx.Headers([("authorization", value) for value in pair])
        response = await anon.get(_path(registry), headers=headers)
        assert response.status_code == 400
        error = response.json()["errors"][0]
        assert error["code"] == 6003
        assert error["error_chain"][0]["code"] == 6111


async def test_a_stray_auth_email_beside_a_token_is_ignored(
    anon: httpx.AsyncClient, registry: Registry
) -> None:
    response = await anon.get(
        _path(registry),
        headers={"Authorization": f"Bearer {registry.token}", "X-Auth-Email": "a@example.com"},
    )
    assert response.status_code == 200


async def test_a_lone_auth_email_is_missing_credentials(
    anon: httpx.AsyncClient, registry: Registry
) -> None:
    response = await anon.get(_path(registry), headers={"X-Auth-Email": "a@example.com"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == 9106


async def test_clients_cannot_write_lines_into_the_log(
    anon: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="warp_registry")
    forged = "x%0a2026-12-04 INFO warp_registry.access DELETE /forged 200 rid=forged%1b[2J"

    response = await anon.get("/" + forged)

    assert response.status_code == 400
    lines = [r.getMessage() for r in caplog.records if r.name == "warp_registry.access"]
    assert len(lines) == 1
    assert "\n" not in lines[0] and "\x1b" not in lines[0]
    assert "\\n2026-12-04" in lines[0]


async def test_a_declared_oversized_body_is_refused_before_reading(app: RegistryApp) -> None:
    sent: list[dict[str, Any]] = []
    received = 0

    async def receive() -> dict[str, Any]:
        nonlocal received
        received += 1
        return {"type": "http.request", "body": b"", "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/client/v4/accounts/" + "0" * 32 + "/devices/registrations/revoke",
        "query_string": b"",
        "headers": [(b"content-length", str(MAX_BODY_BYTES + 1).encode())],
    }
    await app(scope, receive, send)

    assert sent[0]["status"] == 413
    assert received == 0


@pytest.mark.parametrize("url", ["postgresql://", "postgresql://127.0.0.1", "postgres:///"])
async def test_a_postgres_url_must_name_host_and_database(url: str) -> None:
    with pytest.raises(ValueError, match="must name a host and a database"):
        await open_store(url)


def test_cli_refuses_an_email_the_server_would_refuse(tmp_path: Any) -> None:
    database = str(tmp_path / "r.db")
    assert cli("init", "--database", database).returncode == 0
    done = cli("global-key", "--database", database, "--email", "bad",
               "--account", "0" * 32)  # fmt: skip
    assert done.returncode == 2
    assert "not an email address" in done.stderr
