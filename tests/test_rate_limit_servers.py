"""The rate limiter and the control state shared by worker processes and by servers.

Real `warp-registry serve` processes on one PostgreSQL database: the count lives in the
store, so the budget holds whichever process answers. Bounded: every request has a
timeout and each server is stopped at the end of its test.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests import processes
from tests.conftest import cli

pytestmark = [pytest.mark.server, pytest.mark.postgres]

LIMIT = 12


def _init(database: str) -> dict[str, str]:
    done = cli("init", "--json", "--no-demo", "--database", database)
    assert done.returncode == 0, done.stderr
    created: dict[str, str] = json.loads(done.stdout)
    return created


def _get_fresh(base_url: str, path: str, token: str) -> httpx.Response:
    """One request on a new connection, so the server may pick any worker for it."""
    with httpx.Client(timeout=30) as client:
        return client.get(base_url + path, headers={"Authorization": f"Bearer {token}"})


def test_two_workers_share_the_budget_and_the_control_state(
    postgres_url: str, tmp_path: Path
) -> None:
    created = _init(postgres_url)
    path = f"/accounts/{created['account_id']}/devices/registrations"
    with processes.running(postgres_url, "--workers", "2", "--rate-limit", f"{LIMIT}/300",
                           log_path=tmp_path / "server.log") as server:  # fmt: skip
        responses = [_get_fresh(server.base_url, path, created["api_token"]) for _ in range(30)]
        statuses = Counter(r.status_code for r in responses)
        workers = {r.headers["x-request-id"][:8] for r in responses}

        control = server.base_url.removesuffix("/client/v4") + "/_warp-registry"
        admin = {"Authorization": f"Bearer {created['admin_token']}"}
        assert httpx.delete(control + "/rate-limit", headers=admin, timeout=30).status_code == 200
        rule = httpx.post(
            control + "/faults",
            headers=admin,
            timeout=30,
            json={"method": "GET", "path": "*/registrations", "status": 418},
        )
        assert rule.status_code == 200, rule.text
        faulted = [_get_fresh(server.base_url, path, created["api_token"]) for _ in range(6)]
        httpx.delete(control + "/faults", headers=admin, timeout=30)
        healed = [_get_fresh(server.base_url, path, created["api_token"]) for _ in range(6)]

    # The readiness probe carried no token: it spent the anonymous budget, not this one.
    assert statuses == {200: LIMIT, 429: 30 - LIMIT}
    assert len(workers) == 2, "both workers answered"
    # A control write answers once every worker has it: no request after it misses it.
    assert [r.status_code for r in faulted] == [418] * 6
    assert [r.status_code for r in healed] == [200] * 6


def test_two_servers_on_one_database_share_the_budget(postgres_url: str, tmp_path: Path) -> None:
    created = _init(postgres_url)
    path = f"/accounts/{created['account_id']}/devices/registrations"
    limit = ("--rate-limit", f"{LIMIT}/300")
    with (
        processes.running(postgres_url, *limit, log_path=tmp_path / "a.log") as first,
        processes.running(postgres_url, *limit, log_path=tmp_path / "b.log") as second,
    ):
        responses = [
            _get_fresh(server.base_url, path, created["api_token"])
            for _ in range(10)
            for server in (first, second)
        ]
    by_server = [Counter(r.status_code for r in responses[i::2]) for i in (0, 1)]
    assert Counter(r.status_code for r in responses) == {200: LIMIT, 429: 20 - LIMIT}
    assert all(counts[200] > 0 for counts in by_server), "each server served some"
    for response in responses:
        assert response.headers["ratelimit-policy"] == f'"default";q={LIMIT};w=300'
