"""The command line's client side: `enroll-token`, `service-token create` and `enroll`.

Commands run as a user runs them (`python -m warp_registry ...`); what they print is
checked against the server through the official SDK, not against the CLI's own code.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
from cloudflare import AsyncCloudflare, Cloudflare

from tests.conftest import LiveServer, cli
from tests.enroll_support import result_of
from tests.warp_test_client import Identity, WarpTestClient
from warp_registry.http.app import RegistryApp
from warp_registry.http.context import AppContext
from warp_registry.store import open_store
from warp_registry.store.sql_store import SqlStore


@pytest.fixture
def initialised(database_url: str) -> dict[str, str]:
    done = cli("init", "--json", "--database", database_url)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


@pytest.fixture
async def opened(database_url: str, initialised: dict[str, str]) -> AsyncIterator[SqlStore]:
    store = await open_store(database_url)
    yield store
    await store.close()


@pytest.fixture
async def client_http(opened: SqlStore) -> AsyncIterator[httpx.AsyncClient]:
    app = RegistryApp(AppContext(store=opened))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        yield http


async def test_enroll_token_prints_a_jwt_that_enrolls(
    database_url: str,
    initialised: dict[str, str],
    opened: SqlStore,
    client_http: httpx.AsyncClient,
) -> None:
    done = cli("enroll-token", "--database", database_url, "--email", "Cli.User@example.com",
               "--name", "Cli User", "--groups", "eng, ops", "--ttl", "120")  # fmt: skip
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()

    # Verifiable with the published keys alone.
    certs = await client_http.get("/cdn-cgi/access/certs")
    kid = jwt.get_unverified_header(token)["kid"]
    [key] = [k for k in jwt.PyJWKSet.from_dict(certs.json()).keys if k.key_id == kid]
    claims = jwt.decode(token, key.key, algorithms=["RS256"], options={"verify_aud": False})
    assert (claims["email"], claims["name"], claims["groups"]) == (
        "Cli.User@example.com",
        "Cli User",
        ["eng", "ops"],
    )
    assert claims["exp"] - claims["iat"] == 120

    reg = await WarpTestClient(client_http).register_wireguard(Identity(jwt=token))
    assert reg.result["account"]["id"] == initialised["account_id"]


def test_enroll_token_refuses_an_unknown_account(
    database_url: str, initialised: dict[str, str]
) -> None:
    done = cli("enroll-token", "--database", database_url, "--account", "0" * 32,
               "--email", "x@example.com")  # fmt: skip
    assert done.returncode == 1 and "no such account" in done.stderr


async def test_service_token_create_prints_headers_that_enroll(
    database_url: str,
    initialised: dict[str, str],
    client_http: httpx.AsyncClient,
) -> None:
    done = cli("service-token", "create", "--database", database_url, "--name", "kiosks")
    assert done.returncode == 0, done.stderr
    headers = dict(line.split(": ", 1) for line in done.stdout.strip().splitlines())
    assert set(headers) == {"CF-Access-Client-Id", "CF-Access-Client-Secret"}

    identity = Identity(client_id=headers["CF-Access-Client-Id"],
                        client_secret=headers["CF-Access-Client-Secret"])  # fmt: skip
    client = WarpTestClient(client_http)
    reg = await client.register_wireguard(identity)
    assert result_of(await client.get(reg))["id"] == reg.id


def test_enroll_needs_someone_to_enroll() -> None:
    done = cli("enroll", "--server", "http://127.0.0.1:9")
    assert done.returncode == 2 and "--email" in done.stderr


def _sdk(server: LiveServer) -> Cloudflare:
    return Cloudflare(api_token=server.token, base_url=server.base_url, max_retries=0)


def _root(server: LiveServer) -> str:
    return server.base_url.removesuffix("/client/v4")


def _registration_id(out: str) -> str:
    found = re.search(r"^# registration (\S+)", out, re.M)
    assert found is not None, out
    return found.group(1)


@pytest.mark.server
def test_enroll_prints_a_wireguard_config(live_server: LiveServer) -> None:
    done = cli("enroll", "--server", _root(live_server), "--database", live_server.database,
               "--email", "laptop.owner@example.com", "--name", "owner-laptop")  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    registration_id = _registration_id(out)
    address = re.search(r"^Address = (\S+)/32, (\S+)/128$", out, re.M)
    peer = re.search(r"^PublicKey = (\S+)$", out, re.M)
    assert address and peer and "[Interface]" in out and "PrivateKey = " in out

    with _sdk(live_server) as sdk:
        seen = sdk.zero_trust.devices.registrations.get(
            registration_id, account_id=live_server.account_id
        )
    assert (seen.virtual_ipv4, seen.virtual_ipv6) == address.groups()
    assert (seen.key_type, seen.tunnel_type, seen.device.name) == (
        "curve25519",
        "wireguard",
        "owner-laptop",
    )
    assert seen.user is not None and seen.user.email == "laptop.owner@example.com"


@pytest.mark.server
def test_enroll_masque_with_a_jwt_from_enroll_token(live_server: LiveServer) -> None:
    minted = cli("enroll-token", "--database", live_server.database,
                 "--email", "masque.user@example.com")  # fmt: skip
    assert minted.returncode == 0, minted.stderr
    done = cli("enroll", "--server", _root(live_server), "--jwt", minted.stdout.strip(),
               "--tunnel", "masque")  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    registration_id = _registration_id(out)
    assert "-----BEGIN PRIVATE KEY-----" in out and "-----BEGIN PUBLIC KEY-----" in out
    ipv4 = re.search(r"^ipv4\s+(\S+)$", out, re.M)

    with _sdk(live_server) as sdk:
        seen = sdk.zero_trust.devices.registrations.get(
            registration_id, account_id=live_server.account_id
        )
    assert (seen.key_type, seen.tunnel_type) == ("secp256r1", "masque")
    assert ipv4 is not None and seen.virtual_ipv4 == ipv4.group(1)

    # The same JWT a second time: refused, and the command says why.
    again = cli("enroll", "--server", _root(live_server), "--jwt", minted.stdout.strip())
    assert again.returncode == 1 and "1016" in again.stderr


def test_enroll_reaches_nothing_gracefully() -> None:
    done = cli("enroll", "--server", "http://127.0.0.1:9", "--jwt", "x.y.z")
    assert done.returncode == 1 and "cannot reach" in done.stderr


async def test_sdk_is_unaffected_by_client_routes(
    initialised: dict[str, str], client_http: httpx.AsyncClient
) -> None:
    """The client API sits beside /client/v4 without shadowing it."""
    sdk = AsyncCloudflare(
        api_token=initialised["api_token"],
        base_url="http://testserver/client/v4",
        http_client=client_http,
        max_retries=0,
    )
    reg = await sdk.zero_trust.devices.registrations.get(
        initialised["example_registration_id"], account_id=initialised["account_id"]
    )
    assert reg.id == initialised["example_registration_id"]
