"""The official SDKs against a real `warp-registry serve` process.

Python: the sync `cloudflare.Cloudflare` client (PyPI `cloudflare`, pinned in pyproject).
Node: the npm `cloudflare` package pinned at 7.3.0 in tests/node/package-lock.json,
installed by `npm ci` on first use into tests/node/node_modules (git-ignored). Without
node and npm the Node test skips, unless WARP_REGISTRY_REQUIRE_NODE=1 (CI) makes it fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudflare
import pytest
from cloudflare import Cloudflare

from tests.conftest import LiveServer
from tests.registrations_expected import ORDERS, SORTS, Expect, expected_ids
from warp_registry.bootstrap import DEFAULT_SEED, plan_registry
from warp_registry.clock import now_us
from warp_registry.domain.records import FleetRecords

pytestmark = pytest.mark.server

NODE_DIR = Path(__file__).parent / "node"
NODE_SDK_VERSION = "7.3.0"
PER_PAGES = (1, 7, 1000)


def _fleet(live_server: LiveServer) -> FleetRecords:
    """The demo fleet `warp-registry init` wrote, rebuilt here from the default seed.

    `init` anchors the fleet's timestamps at its own clock, but every id, and every order
    between two timestamps, depends on the seed alone: any anchor gives the same lists.
    """
    fleet, account_id, _ = plan_registry(DEFAULT_SEED, True, now_us())
    assert account_id == live_server.account_id, "the server was not seeded with the default"
    return fleet


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[Cloudflare]:
    with Cloudflare(
        api_token=live_server.token, base_url=live_server.base_url, max_retries=0
    ) as sdk:
        yield sdk


def _list_ids(client: Cloudflare, live_server: LiveServer, **params: Any) -> list[str]:
    """Every id the SDK's auto-paging iterator yields."""
    pages = client.zero_trust.devices.registrations.list(
        account_id=live_server.account_id, **params
    )
    return [registration.id for registration in pages]


def test_python_sdk_auto_paging_visits_everything_once(
    live_server: LiveServer, client: Cloudflare, subtests: pytest.Subtests
) -> None:
    fleet = _fleet(live_server)
    for per_page in PER_PAGES:
        for sort_by in SORTS:
            for sort_order in ORDERS:
                with subtests.test(per_page=per_page, sort_by=sort_by, sort_order=sort_order):
                    want = expected_ids(fleet, Expect(status="all", sort_by=sort_by,
                                                      sort_order=sort_order))  # fmt: skip
                    got = _list_ids(client, live_server, status="all", sort_by=sort_by,
                                    sort_order=sort_order, per_page=per_page)  # fmt: skip
                    assert got == want

        with subtests.test(per_page=per_page, default_list=True):
            got = _list_ids(client, live_server, per_page=per_page)
            assert got == expected_ids(fleet, Expect())


def test_python_sdk_revoke_unrevoke_delete(live_server: LiveServer, client: Cloudflare) -> None:
    fleet = _fleet(live_server)
    registrations = client.zero_trust.devices.registrations
    account = live_server.account_id
    target = next(r for r in fleet.registrations if r.revoked_at is None)

    with pytest.deprecated_call():
        assert registrations.revoke(account_id=account, id=[target.id]) is None
    assert target.id not in _list_ids(client, live_server, per_page=1000)
    assert target.id in _list_ids(client, live_server, status="revoked")
    assert target.id in _list_ids(client, live_server, status="all", per_page=1000)
    revoked = registrations.get(target.id, account_id=account)
    assert revoked.revoked_at is not None and revoked.updated_at == revoked.revoked_at

    with pytest.deprecated_call():
        assert registrations.unrevoke(account_id=account, id=[target.id]) is None
    assert _list_ids(client, live_server, per_page=1000) == expected_ids(fleet, Expect())
    assert registrations.get(target.id, account_id=account).revoked_at is None

    assert registrations.delete(target.id, account_id=account) is None
    with pytest.raises(cloudflare.NotFoundError):
        registrations.get(target.id, account_id=account)
    assert target.id not in _list_ids(client, live_server, status="all", per_page=1000)


# --- the npm SDK ---


@pytest.fixture(scope="session")
def node() -> str:
    """The node binary, with the pinned npm SDK installed under tests/node."""
    node_bin, npm_bin = shutil.which("node"), shutil.which("npm")
    if node_bin is None or npm_bin is None:
        _unavailable("node and npm are not installed")
    assert node_bin is not None and npm_bin is not None

    if _installed_version() != NODE_SDK_VERSION:
        done = subprocess.run(
            [npm_bin, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if done.returncode != 0:
            _unavailable(f"npm ci failed: {done.stderr.strip()[-800:]}")
    assert _installed_version() == NODE_SDK_VERSION
    return node_bin


def _installed_version() -> str | None:
    manifest = NODE_DIR / "node_modules" / "cloudflare" / "package.json"
    if not manifest.exists():
        return None
    version: str = json.loads(manifest.read_text())["version"]
    return version


def _unavailable(reason: str) -> None:
    if os.environ.get("WARP_REGISTRY_REQUIRE_NODE") == "1":
        pytest.fail(f"the npm SDK check is required (WARP_REGISTRY_REQUIRE_NODE=1): {reason}")
    pytest.skip(reason)


def _run_node(node: str, config: dict[str, Any]) -> dict[str, Any]:
    # Only what node needs from the environment: no CLOUDFLARE_* variable may leak in.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    done = subprocess.run(
        [node, "registrations.mjs", json.dumps(config)],
        cwd=NODE_DIR, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    output: dict[str, Any] = json.loads(done.stdout)
    return output


def test_npm_sdk_auto_paging_and_a_revoke_round_trip(live_server: LiveServer, node: str) -> None:
    fleet = _fleet(live_server)
    walks: list[dict[str, Any]] = [
        {"status": "all", "sort_by": sort_by, "sort_order": sort_order, "per_page": per_page}
        for per_page in PER_PAGES for sort_by in SORTS for sort_order in ORDERS
    ]  # fmt: skip
    target = next(r for r in fleet.registrations if r.revoked_at is None)

    output = _run_node(node, {
        "baseURL": live_server.base_url, "apiToken": live_server.token,
        "accountId": live_server.account_id, "walks": walks, "revokeId": target.id,
    })  # fmt: skip

    for params, got in zip(walks, output["walks"], strict=True):
        want = expected_ids(fleet, Expect(status="all", sort_by=params["sort_by"],
                                          sort_order=params["sort_order"]))  # fmt: skip
        assert got == want, params

    revoke = output["revoke"]
    assert revoke["revokeResult"] is None
    assert revoke["afterRevoke"]["revoked_at"] is not None
    assert revoke["afterRevoke"]["updated_at"] == revoke["afterRevoke"]["revoked_at"]
    assert revoke["activeIds"] == [i for i in expected_ids(fleet, Expect()) if i != target.id]
    assert target.id in revoke["revokedIds"]
    assert revoke["unrevokeResult"] is None
    assert revoke["afterUnrevoke"]["revoked_at"] is None
    assert revoke["afterUnrevoke"]["updated_at"] > revoke["afterRevoke"]["updated_at"]
