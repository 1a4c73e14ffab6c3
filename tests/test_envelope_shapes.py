"""Every route answers in the v4 envelope, on success and on failure.

The tests walk `router.operations`: every endpoint the router knows, implemented or not.
An implemented admin API operation (`/client/v4/...`) must succeed on a happy call (a real
id from the demo fleet in every path parameter) with `success: true`; an unimplemented one
must answer 501 naming the operation. The WARP client API's happy calls need an enrolled
device and live in test_enroll_protocol.py; its JWKS is a bare document by design.

Every operation must fail in the error envelope on a malformed id in its path, without
credentials and with an unknown token, and every path must answer a method it lacks with a
405 envelope whose Allow header lists exactly the methods the router has for it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Registry
from tests.expect import LIST_ENVELOPE_KEYS, assert_error_envelope, assert_success_envelope
from warp_registry.http.app import RegistryApp
from warp_registry.http.context import AppContext
from warp_registry.http.routes import PREFIX, build_router
from warp_registry.http.routing import Operation
from warp_registry.secrets import new_api_token

# Built once at collection time (the context is never started: no store is opened).
OPERATIONS: list[Operation] = build_router(AppContext(database="unused")).operations

# Batch operations take their ids from the query string (api-semantics.md §3.4).
QUERY_FOR: dict[str, str] = {
    "delete-registrations": "id={registration_id}",
    "revoke-registrations": "id={registration_id}",
    "unrevoke-registrations": "id={registration_id}",
}
# Operations that take a JSON body (docs/devices.md); the others are sent none.
BODY_FOR: dict[str, str] = {
    "patch-device": '{{"tags": {{"site": "berlin"}}}}',
    "devices-revoke-devices": '["{registration_id}"]',
    "devices-unrevoke-devices": '["{registration_id}"]',
    # Device settings profiles (docs/profiles.md): a profile to create, whole lists to set.
    "devices-create-device-settings-policy": '{{"name": "Envelope check", "precedence": 999}}',
    "devices-set-split-tunnel-exclude-list": "[]",
    "devices-set-split-tunnel-include-list": "[]",
    "devices-set-local-domain-fallback-list": "[]",
    "devices-set-policy-exclude-list": "[]",
    "devices-set-policy-include-list": "[]",
    "devices-set-policy-local-domain-fallback-list": "[]",
}
# Published keys: public (no credentials) and read by JWT libraries as a bare JWKS.
PUBLIC_DOCUMENTS = {"access-certs"}
ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

_PARAM = re.compile(r"\{(\w+)(?::(\w+))?\}")
_ID_TYPES = {"account", "uuid", "client_version", "client_registration"}

ADMIN = [o for o in OPERATIONS if o.template.startswith(PREFIX)]
HAPPY = ADMIN + [o for o in OPERATIONS if o.name in PUBLIC_DOCUMENTS]
GUARDED = [o for o in OPERATIONS if o.name not in PUBLIC_DOCUMENTS]
WITH_IDS = [
    o for o in OPERATIONS if any(m.group(2) in _ID_TYPES for m in _PARAM.finditer(o.template))
]


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """Envelopes are built by the HTTP layer alone, so SQLite is enough for these tests."""
    return str(tmp_path / "registry.db")


def _label(operation: Operation) -> str:
    return f"{operation.method} {operation.name}"


def _concrete(template: str, registry: Registry, *, malformed: bool = False) -> str:
    """The template with a real id from the fleet in each parameter.

    With `malformed`, the first id parameter gets a value no id can have instead.
    """
    values = {
        "account_id": registry.account_id,
        "registration_id": registry.fleet.registrations[0].id,
        "device_id": registry.fleet.devices[0].id,
        "policy_id": registry.fleet.profiles[-1].id,
        "client_version": "v0",
    }
    spoiled = [False]

    def value(match: re.Match[str]) -> str:
        if malformed and not spoiled[0] and match.group(2) in _ID_TYPES:
            spoiled[0] = True
            return "not-an-id"
        return values.get(match.group(1), "x")

    return _PARAM.sub(value, template)


def _init_token(registry: Registry) -> dict[str, str]:
    return {"Authorization": f"Bearer {registry.token}"}


def _query(operation: Operation, registry: Registry) -> str:
    template = QUERY_FOR.get(operation.name)
    if template is None:
        return ""
    return template.format(registration_id=registry.fleet.registrations[0].id)


def _body(operation: Operation, registry: Registry) -> bytes:
    template = BODY_FOR.get(operation.name)
    if template is None:
        return b""
    return template.format(registration_id=registry.fleet.registrations[0].id).encode()


@pytest.fixture
async def client(app: RegistryApp) -> AsyncIterator[httpx.AsyncClient]:
    """Absolute paths (the templates carry /client/v4), and no credentials of its own."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        yield http


def test_the_walked_routes_are_the_routers(app: RegistryApp) -> None:
    walked = [(o.method, o.template, o.name, o.implemented) for o in OPERATIONS]
    served = [(o.method, o.template, o.name, o.implemented) for o in app.router.operations]
    assert walked == served
    assert set(QUERY_FOR) <= {o.name for o in OPERATIONS}, "QUERY_FOR names a missing route"


@pytest.mark.parametrize("operation", HAPPY, ids=_label)
async def test_happy_call(
    client: httpx.AsyncClient, registry: Registry, operation: Operation
) -> None:
    path = _concrete(operation.template, registry)
    response = await client.request(
        operation.method, path, params=_query(operation, registry), headers=_init_token(registry),
        content=_body(operation, registry),
    )  # fmt: skip
    body = response.json()

    if operation.name in PUBLIC_DOCUMENTS:
        assert response.status_code == 200
        assert isinstance(body, dict) and isinstance(body["keys"], list)
    elif operation.implemented:
        assert 200 <= response.status_code < 300, response.text
        assert_success_envelope(body)
        if operation.method == "GET" and isinstance(body["result"], list):
            assert set(body) == LIST_ENVELOPE_KEYS
    else:
        assert response.status_code == 501
        error = assert_error_envelope(body, 7010)
        assert operation.name in error["message"]


# The failing calls of one operation share a registry: none of them may change anything.


@pytest.mark.parametrize("operation", OPERATIONS, ids=_label)
async def test_failing_calls_are_error_envelopes(
    client: httpx.AsyncClient, registry: Registry, operation: Operation
) -> None:
    if operation in WITH_IDS:
        await _check_malformed_id(client, registry, operation)
    if operation in GUARDED:
        await _check_credentials(client, registry, operation, None, (400, 9106))
        unknown = f"Bearer {new_api_token()}"
        await _check_credentials(client, registry, operation, unknown, (403, 9109))


async def _check_malformed_id(
    client: httpx.AsyncClient, registry: Registry, operation: Operation
) -> None:
    path = _concrete(operation.template, registry, malformed=True)
    response = await client.request(
        operation.method, path, params=_query(operation, registry), headers=_init_token(registry)
    )
    assert response.status_code == 404
    error = assert_error_envelope(response.json(), 7003)
    assert error["message"].startswith(f"Could not route to {path},")


async def _check_credentials(
    client: httpx.AsyncClient,
    registry: Registry,
    operation: Operation,
    authorization: str | None,
    admin_answer: tuple[int, int],
) -> None:
    """Without credentials (None) or with an unknown token: an error envelope, nothing else.

    `admin_answer` is the (status, code) an implemented admin operation must give.
    """
    headers = {} if authorization is None else {"Authorization": authorization}
    path = _concrete(operation.template, registry)
    response = await client.request(
        operation.method, path, params=_query(operation, registry), headers=headers,
        content=_body(operation, registry),
    )  # fmt: skip

    error = assert_error_envelope(response.json())
    if operation in ADMIN and operation.implemented:
        assert (response.status_code, error["code"]) == admin_answer
    elif operation in ADMIN:
        assert (response.status_code, error["code"]) == (501, 7010)
    else:
        assert 400 <= response.status_code < 500


def _methods_by_template() -> dict[str, set[str]]:
    methods: dict[str, set[str]] = defaultdict(set)
    for operation in OPERATIONS:
        methods[operation.template].add(operation.method)
    return dict(methods)


@pytest.mark.parametrize("template", sorted(_methods_by_template()))
async def test_missing_methods_are_405_envelopes(
    client: httpx.AsyncClient, registry: Registry, template: str
) -> None:
    served = _methods_by_template()[template]
    path = _concrete(template, registry)
    for method in ALL_METHODS:
        if method in served:
            continue
        response = await client.request(method, path, headers=_init_token(registry))
        assert response.status_code == 405, (method, template)
        assert_error_envelope(response.json(), 10000)
        assert response.headers["allow"] == ", ".join(sorted(served))
