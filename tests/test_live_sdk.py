"""The official synchronous `cloudflare` SDK against a real `warp-registry serve` process.

This is what a user does: `warp-registry init`, `warp-registry serve`, then point
`Cloudflare(base_url=...)` at it. Every typed field the SDK parses is compared with the
registration as the store holds it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import cloudflare
import pytest
from cloudflare import Cloudflare
from cloudflare.types.zero_trust.devices.registration_get_response import (
    RegistrationGetResponse,
)

from tests.conftest import LiveServer
from tests.expect import rfc3339
from warp_registry.bootstrap import DEFAULT_SEED, plan_registry
from warp_registry.domain.models import Registration
from warp_registry.store import open_store

pytestmark = pytest.mark.server

# Ids do not depend on the time the fleet was made, only on the seed, so the records of
# the seed name registrations of each kind in the live server's database.
_FLEET = plan_registry(DEFAULT_SEED, True, 0)[0]
SERVICE_TOKEN_ID = next(r.id for r in _FLEET.registrations if r.user_id is None)
REVOKED_ID = next(r.id for r in _FLEET.registrations if r.revoked_at is not None)
MASQUE_ID = next(r.id for r in _FLEET.registrations if r.key_type == "secp256r1")


def stored(database: str, account_id: str, registration_id: str) -> Registration:
    """The registration as the store holds it, read directly (not through HTTP)."""

    async def read() -> Registration | None:
        store = await open_store(database)
        try:
            return await store.find_registration(account_id, registration_id)
        finally:
            await store.close()

    found = asyncio.run(read())
    assert found is not None, registration_id
    return found


def client_for(server: LiveServer, api_token: str | None = None) -> Cloudflare:
    """The sync SDK on the live server; the init token unless another is given."""
    return Cloudflare(api_token=api_token or server.token, base_url=server.base_url, max_retries=0)


def assert_matches(got: RegistrationGetResponse, want: Registration, with_policy: bool) -> None:
    """Every typed field of the SDK's model against the stored registration."""
    assert got.id == want.id
    assert got.created_at == rfc3339(want.created_at)
    assert got.updated_at == rfc3339(want.updated_at)
    assert got.last_seen_at == rfc3339(want.last_seen_at)
    assert got.key == want.key
    assert got.key_type == want.key_type
    assert got.tunnel_type == want.tunnel_type
    assert got.registration_type == want.registration_type
    assert got.virtual_ipv4 == want.virtual_ipv4
    assert got.virtual_ipv6 == want.virtual_ipv6
    assert got.revoked_at == (None if want.revoked_at is None else rfc3339(want.revoked_at))
    assert got.deleted_at is None

    assert got.device.id == want.device_id
    assert got.device.name == want.device_name
    assert got.device.client_version == want.device_client_version

    assert got.user is not None
    if want.user_id is None:
        assert (got.user.id, got.user.email, got.user.name) == (None, None, None)
    else:
        assert (got.user.id, got.user.email, got.user.name) == (
            want.user_id, want.user_email, want.user_name,
        )  # fmt: skip

    if not with_policy:
        assert got.policy is None
        return
    assert got.policy is not None and want.policy is not None
    assert got.policy.id == want.policy.id
    assert got.policy.name == want.policy.name
    assert got.policy.default is want.policy.is_default
    assert got.policy.deleted is want.policy.deleted
    assert got.policy.updated_at == rfc3339(want.policy.updated_at)


def test_sdk_fetches_registrations_with_and_without_policy(
    live_server: LiveServer, tmp_path: Path
) -> None:
    ids = [live_server.example_registration_id, SERVICE_TOKEN_ID, REVOKED_ID, MASQUE_ID]
    with client_for(live_server) as client:
        registrations = client.zero_trust.devices.registrations
        for registration_id in ids:
            want = stored(live_server.database, live_server.account_id, registration_id)

            plain = registrations.get(registration_id, account_id=live_server.account_id)
            assert_matches(plain, want, with_policy=False)

            with_policy = registrations.get(
                registration_id, account_id=live_server.account_id, include="policy"
            )
            assert_matches(with_policy, want, with_policy=True)

    # One access line per request reached the server's log, and the token never did. The
    # server flushes its log every 0.2 s (warp_registry.logs), so give it a moment.
    deadline = time.monotonic() + 10
    log = (tmp_path / "server.log").read_text()
    while log.count("warp_registry.access GET") < 2 * len(ids) and time.monotonic() < deadline:
        time.sleep(0.1)
        log = (tmp_path / "server.log").read_text()
    assert log.count("warp_registry.access GET") >= 2 * len(ids)
    assert live_server.token not in log


def test_sdk_errors_from_a_live_server(live_server: LiveServer) -> None:
    account = live_server.account_id
    with client_for(live_server) as client:
        registrations = client.zero_trust.devices.registrations

        with pytest.raises(cloudflare.NotFoundError) as unknown:
            registrations.get("11ffb86f-3f0c-4306-b4a2-e62f872b166a", account_id=account)
        assert unknown.value.status_code == 404
        assert "1100" in str(unknown.value)

        with pytest.raises(cloudflare.NotFoundError) as malformed:
            registrations.get("not-a-uuid", account_id=account)
        assert "7003" in str(malformed.value)

    with client_for(live_server, api_token="x" * 40) as stranger:
        with pytest.raises(cloudflare.PermissionDeniedError) as denied:
            stranger.zero_trust.devices.registrations.get(
                live_server.example_registration_id, account_id=account
            )
        assert "9109" in str(denied.value)
