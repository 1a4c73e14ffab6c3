"""Credentials, routing errors and the error envelope (api-semantics.md §4 and §6).

Every error here is checked for its HTTP status, its code and the full v4 failure shape;
the codes and messages are listed in docs/errors.md.
"""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest

from tests.conftest import Registry
from tests.expect import assert_error_envelope, assert_success_envelope
from warp_registry.bootstrap import plan_registry
from warp_registry.http.app import MAX_BODY_BYTES, RegistryApp
from warp_registry.ids import new_uuid
from warp_registry.secrets import hash_secret, new_api_token, new_global_key
from warp_registry.store.sql_store import SqlStore

OTHER_SEED = 2


def _reg_path(account_id: str, registration_id: str) -> str:
    return f"/accounts/{account_id}/devices/registrations/{registration_id}"


def _example(registry: Registry) -> str:
    return _reg_path(registry.account_id, registry.fleet.registrations[0].id)


async def _new_token(store: SqlStore, permission: str, accounts: list[str]) -> tuple[str, str]:
    """A fresh token (id, secret) scoped to `accounts`."""
    token_id, secret = new_uuid(), new_api_token()
    assert await store.create_token(token_id, "test", hash_secret(secret), permission, accounts)
    return token_id, secret


async def _other_account(registry: Registry) -> str:
    """A second, empty account in the same registry."""
    fleet, account_id, _ = plan_registry(OTHER_SEED, False, registry.anchor_us)
    assert await registry.store.insert_fleet(fleet)
    assert account_id != registry.account_id
    return account_id


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


# --- missing and malformed credentials ---


async def test_no_credentials_is_400_9106(anon: httpx.AsyncClient, registry: Registry) -> None:
    response = await anon.get(_example(registry))
    assert response.status_code == 400
    error = assert_error_envelope(response.json(), 9106)
    assert error["message"] == "Missing X-Auth-Key, X-Auth-Email or Authorization headers"


# Header checks need no store, so each test walks its cases against one registry.
# As raw header bytes: one of them is not ASCII.
MALFORMED_AUTHORIZATION: list[bytes] = [
    value.encode("latin-1")
    for value in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "bearer abc", "Bearer a b",
                  "Token abc", "Bearer " + "a" * 513, "Bearer tök"]
]  # fmt: skip


async def test_malformed_authorization_is_6003_with_6111(
    anon: httpx.AsyncClient, registry: Registry
) -> None:
    for value in MALFORMED_AUTHORIZATION:
        response = await anon.get(_example(registry), headers={b"Authorization": value})
        assert response.status_code == 400, value
        error = assert_error_envelope(response.json(), 6003)
        assert error["message"] == "Invalid request headers"
        assert error["error_chain"] == [
            {"code": 6111, "message": "Invalid format for Authorization header"}
        ]


GOOD_EMAIL = "admin@example.com"
GOOD_KEY = "0123456789abcdef0123456789abcdef01234"


MALFORMED_GLOBAL_KEYS = [
    # (X-Auth-Email, X-Auth-Key, the error_chain codes expected)
    ("not-an-email", GOOD_KEY, [6102]),
    (GOOD_EMAIL, "short", [6103]),
    (GOOD_EMAIL, "x" * 36 + "!", [6103]),
    ("two@at@signs", "k", [6102, 6103]),
]


async def test_malformed_global_key_headers_are_6003(
    anon: httpx.AsyncClient, registry: Registry
) -> None:
    for email, key, chain in MALFORMED_GLOBAL_KEYS:
        headers = {"X-Auth-Email": email, "X-Auth-Key": key}
        response = await anon.get(_example(registry), headers=headers)
        assert response.status_code == 400, headers
        error = assert_error_envelope(response.json(), 6003)
        assert [link["code"] for link in error["error_chain"]] == chain


async def test_half_a_global_key_pair_is_missing_credentials(
    anon: httpx.AsyncClient, registry: Registry
) -> None:
    for header in ({"X-Auth-Email": GOOD_EMAIL}, {"X-Auth-Key": GOOD_KEY}):
        response = await anon.get(_example(registry), headers=header)
        assert response.status_code == 400, header
        assert_error_envelope(response.json(), 9106)


# --- tokens ---


async def test_unknown_token_is_403_9109(anon: httpx.AsyncClient, registry: Registry) -> None:
    response = await anon.get(_example(registry), headers=_bearer(new_api_token()))
    assert response.status_code == 403
    error = assert_error_envelope(response.json(), 9109)
    assert error["message"] == "Invalid access token"


async def test_revoked_token_is_403_9109(anon: httpx.AsyncClient, registry: Registry) -> None:
    token_id, secret = await _new_token(registry.store, "write", [registry.account_id])
    assert (await anon.get(_example(registry), headers=_bearer(secret))).status_code == 200

    assert await registry.store.revoke_token(token_id)
    response = await anon.get(_example(registry), headers=_bearer(secret))
    assert response.status_code == 403
    assert_error_envelope(response.json(), 9109)


async def test_read_token_can_get(anon: httpx.AsyncClient, registry: Registry) -> None:
    _, secret = await _new_token(registry.store, "read", [registry.account_id])
    response = await anon.get(_example(registry), headers=_bearer(secret))
    assert response.status_code == 200
    assert_success_envelope(response.json())


async def test_token_for_several_accounts_reads_each(
    anon: httpx.AsyncClient, registry: Registry
) -> None:
    other = await _other_account(registry)
    _, secret = await _new_token(registry.store, "read", [registry.account_id, other])
    assert (await anon.get(_example(registry), headers=_bearer(secret))).status_code == 200
    # The other account exists and the token covers it; it just has no such registration.
    missing = await anon.get(_reg_path(other, str(uuid.uuid4())), headers=_bearer(secret))
    assert missing.status_code == 404


async def test_foreign_and_nonexistent_accounts_get_identical_403_10000(
    anon: httpx.AsyncClient, registry: Registry
) -> None:
    other = await _other_account(registry)
    _, secret = await _new_token(registry.store, "write", [other])
    registration_id = registry.fleet.registrations[0].id
    nonexistent = uuid.uuid4().hex

    foreign = await anon.get(_reg_path(registry.account_id, registration_id),
                             headers=_bearer(secret))  # fmt: skip
    missing = await anon.get(_reg_path(nonexistent, registration_id), headers=_bearer(secret))

    assert foreign.status_code == missing.status_code == 403
    assert foreign.content == missing.content
    error = assert_error_envelope(foreign.json(), 10000)
    assert error["message"] == "Authentication error"

    # And the init token, which has its own account only, gets the same for the new one.
    own_token = await anon.get(_reg_path(nonexistent, registration_id),
                               headers=_bearer(registry.token))  # fmt: skip
    assert own_token.content == missing.content


# --- the legacy Global API Key pair ---


async def test_global_key_works_on_member_accounts_only(
    anon: httpx.AsyncClient, registry: Registry
) -> None:
    other = await _other_account(registry)
    key = new_global_key()
    email = "ops@example.com"
    assert await registry.store.create_global_key(
        new_uuid(), email, hash_secret(key), registry.account_id
    )
    headers = {"X-Auth-Email": email, "X-Auth-Key": key}

    member = await anon.get(_example(registry), headers=headers)
    assert member.status_code == 200
    assert member.json()["result"]["id"] == registry.fleet.registrations[0].id

    not_member = await anon.get(_reg_path(other, str(uuid.uuid4())), headers=headers)
    assert not_member.status_code == 403
    assert_error_envelope(not_member.json(), 10000)


async def test_global_key_email_is_case_insensitive(
    anon: httpx.AsyncClient, registry: Registry
) -> None:
    key = new_global_key()
    assert await registry.store.create_global_key(
        new_uuid(), "ops@example.com", hash_secret(key), registry.account_id
    )
    headers = {"X-Auth-Email": "Ops@Example.COM", "X-Auth-Key": key}
    assert (await anon.get(_example(registry), headers=headers)).status_code == 200


async def test_second_account_membership_keeps_one_key(
    anon: httpx.AsyncClient, registry: Registry
) -> None:
    other = await _other_account(registry)
    email = "ops@example.com"
    first, second = new_global_key(), new_global_key()
    assert await registry.store.create_global_key(
        new_uuid(), email, hash_secret(first), registry.account_id
    )
    # Joining a second account issues a new key, which replaces the first everywhere.
    assert await registry.store.create_global_key(new_uuid(), email, hash_secret(second), other)

    new_key = {"X-Auth-Email": email, "X-Auth-Key": second}
    old_key = {"X-Auth-Email": email, "X-Auth-Key": first}
    assert (await anon.get(_example(registry), headers=new_key)).status_code == 200
    # A member of the other account now, which holds no registrations: 404, not 403.
    in_other = await anon.get(_reg_path(other, str(uuid.uuid4())), headers=new_key)
    assert in_other.status_code == 404
    refused = await anon.get(_example(registry), headers=old_key)
    assert refused.status_code == 403
    assert_error_envelope(refused.json(), 9103)


async def test_wrong_global_key_is_403_9103(anon: httpx.AsyncClient, registry: Registry) -> None:
    email = "ops@example.com"
    assert await registry.store.create_global_key(
        new_uuid(), email, hash_secret(new_global_key()), registry.account_id
    )
    for sender in (email, "nobody@example.com"):
        headers = {"X-Auth-Email": sender, "X-Auth-Key": new_global_key()}
        response = await anon.get(_example(registry), headers=headers)
        assert response.status_code == 403, sender
        error = assert_error_envelope(response.json(), 9103)
        assert error["message"] == "Unknown X-Auth-Key or X-Auth-Email"


# --- routing errors ---


async def test_malformed_account_id_is_404_7003(api: httpx.AsyncClient, registry: Registry) -> None:
    for account in ("xyz", "023e105f4ecef8ad9ca31a8372d0c35", "g" * 32, str(uuid.uuid4())):
        await _assert_could_not_route(api, _reg_path(account, registry.fleet.registrations[0].id))


async def test_malformed_registration_id_is_404_7003(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    for registration in ("not-a-uuid", "1234", str(uuid.uuid4()) + "0", uuid.uuid4().hex):
        await _assert_could_not_route(api, _reg_path(registry.account_id, registration))


async def _assert_could_not_route(api: httpx.AsyncClient, path: str) -> None:
    response = await api.get(path)
    assert response.status_code == 404, path
    error = assert_error_envelope(response.json(), 7003)
    assert error["message"] == (
        f"Could not route to /client/v4{path}, perhaps your object identifier is invalid?"
    )


async def test_routing_errors_come_before_credentials(
    anon: httpx.AsyncClient, registry: Registry
) -> None:
    malformed = await anon.get(_reg_path("xyz", registry.fleet.registrations[0].id))
    assert malformed.status_code == 404
    assert_error_envelope(malformed.json(), 7003)


async def test_unknown_registration_is_404_1100(api: httpx.AsyncClient, registry: Registry) -> None:
    response = await api.get(_reg_path(registry.account_id, str(uuid.uuid4())))
    assert response.status_code == 404
    error = assert_error_envelope(response.json(), 1100)
    assert error["message"] == "Registration not found"


async def test_registration_of_another_account_is_404(
    anon: httpx.AsyncClient, registry: Registry
) -> None:
    """A token for both accounts cannot read account A's registration under account B."""
    other = await _other_account(registry)
    _, secret = await _new_token(registry.store, "read", [registry.account_id, other])
    response = await anon.get(
        _reg_path(other, registry.fleet.registrations[0].id), headers=_bearer(secret)
    )
    assert response.status_code == 404
    assert_error_envelope(response.json(), 1100)


UNKNOWN_ROUTES = [
    "/", "/accounts", "/zones/abc", "/accounts/{account}/devices/registrations/{reg}/extra",
    "/accounts/{account}/gateway/rules", "/accounts/{account}",
]  # fmt: skip


async def test_unknown_route_is_400_7000(api: httpx.AsyncClient, registry: Registry) -> None:
    for template in UNKNOWN_ROUTES:
        path = template.format(account=registry.account_id,
                               reg=registry.fleet.registrations[0].id)  # fmt: skip
        response = await api.get(path)
        assert response.status_code == 400, path
        error = assert_error_envelope(response.json(), 7000)
        assert error["message"] == "No route for that URI"


async def test_path_outside_client_v4_is_7000(app: RegistryApp, registry: Registry) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        response = await client.get(
            f"/accounts/{registry.account_id}/devices/registrations/{uuid.uuid4()}",
            headers=_bearer(registry.token),
        )
    assert response.status_code == 400
    assert_error_envelope(response.json(), 7000)


async def test_method_the_route_lacks_is_405_with_allow(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    for method in ("PUT", "PATCH", "POST", "OPTIONS"):
        response = await api.request(method, _example(registry))
        assert response.status_code == 405, method
        error = assert_error_envelope(response.json(), 10000)
        assert error["message"] == f"{method} method not allowed for this route"
        allowed = [m.strip() for m in response.headers["allow"].split(",")]
        assert "GET" in allowed and method not in allowed
        assert allowed == sorted(allowed)


# --- server-side failures ---


async def test_unexpected_exception_is_a_generic_500(
    api: httpx.AsyncClient,
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    marker = "secret-internal-detail-4242"

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(marker)

    monkeypatch.setattr(registry.store, "get_registration", broken)
    with caplog.at_level(logging.INFO, logger="warp_registry"):
        response = await api.get(_example(registry))

    assert response.status_code == 500
    error = assert_error_envelope(response.json(), 10001)
    assert error["message"] == "Internal server error"
    assert marker not in response.text and "RuntimeError" not in response.text

    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    assert len(tracebacks) == 1
    assert marker in caplog.text
    assert response.headers["x-request-id"] in tracebacks[0].getMessage()


async def test_unreachable_store_is_503(
    api: httpx.AsyncClient, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refused(*args: object, **kwargs: object) -> None:
        raise ConnectionRefusedError("connection refused")

    monkeypatch.setattr(registry.store, "get_registration", refused)
    response = await api.get(_example(registry))
    assert response.status_code == 503
    assert_error_envelope(response.json(), 10002)
    assert "refused" not in response.text


async def test_oversized_body_is_413(api: httpx.AsyncClient, registry: Registry) -> None:
    path = f"/accounts/{registry.account_id}/devices/registrations/revoke"
    response = await api.post(path, content=b"x" * (MAX_BODY_BYTES + 1))
    assert response.status_code == 413
    assert_error_envelope(response.json(), 6007)
