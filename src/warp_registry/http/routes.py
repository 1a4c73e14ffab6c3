"""The route table: every Cloudflare Zero Trust devices endpoint, implemented or not.

Endpoints warp-registry does not implement are still routed, to a handler that answers
501 with an envelope naming the operation, so a script gets a clear answer rather than
"no route". `docs/endpoints.md` is generated from this table.
"""

from __future__ import annotations

from warp_registry.errors import NotImplementedEndpoint
from warp_registry.http.context import AppContext
from warp_registry.http.handlers.client import ClientHandlers
from warp_registry.http.handlers.registrations import RegistrationHandlers
from warp_registry.http.request import Request, Response
from warp_registry.http.routing import Handler, Router

PREFIX = "/client/v4"
ACCOUNT = PREFIX + "/accounts/{account_id:account}"

# Cloudflare endpoints of the devices family that warp-registry does not serve (yet):
# (method, path under the account, operation name).
NOT_IMPLEMENTED: list[tuple[str, str, str]] = [
    ("GET", "/devices/physical-devices", "list-devices"),
    ("GET", "/devices/physical-devices/{device_id:uuid}", "get-device"),
    ("PATCH", "/devices/physical-devices/{device_id:uuid}", "patch-device"),
    ("DELETE", "/devices/physical-devices/{device_id:uuid}", "delete-device"),
    ("POST", "/devices/physical-devices/{device_id:uuid}/revoke", "revoke-device"),
    ("GET", "/devices", "devices-list-devices"),
    ("GET", "/devices/{device_id:uuid}", "devices-device-details"),
    ("GET", "/devices/{device_id:uuid}/override_codes", "devices-list-admin-override-code"),
    ("POST", "/devices/revoke", "devices-revoke-devices"),
    ("POST", "/devices/unrevoke", "devices-unrevoke-devices"),
    ("GET", "/devices/policy", "devices-get-default-device-settings-policy"),
    ("PATCH", "/devices/policy", "devices-update-default-device-settings-policy"),
    ("POST", "/devices/policy", "devices-create-device-settings-policy"),
    ("GET", "/devices/policies", "devices-list-device-settings-policies"),
    ("GET", "/devices/policy/{policy_id:uuid}", "devices-get-device-settings-policy-by-id"),
    ("PATCH", "/devices/policy/{policy_id:uuid}", "devices-update-device-settings-policy"),
    ("DELETE", "/devices/policy/{policy_id:uuid}", "devices-delete-device-settings-policy"),
    ("GET", "/devices/policy/exclude", "devices-get-split-tunnel-exclude-list"),
    ("PUT", "/devices/policy/exclude", "devices-set-split-tunnel-exclude-list"),
    ("GET", "/devices/policy/include", "devices-get-split-tunnel-include-list"),
    ("PUT", "/devices/policy/include", "devices-set-split-tunnel-include-list"),
    ("GET", "/devices/policy/fallback_domains", "devices-get-local-domain-fallback-list"),
    ("PUT", "/devices/policy/fallback_domains", "devices-set-local-domain-fallback-list"),
    ("GET", "/devices/policy/{policy_id:uuid}/exclude", "devices-get-policy-exclude-list"),
    ("PUT", "/devices/policy/{policy_id:uuid}/exclude", "devices-set-policy-exclude-list"),
    ("GET", "/devices/policy/{policy_id:uuid}/include", "devices-get-policy-include-list"),
    ("PUT", "/devices/policy/{policy_id:uuid}/include", "devices-set-policy-include-list"),
    (
        "GET",
        "/devices/policy/{policy_id:uuid}/fallback_domains",
        "devices-get-policy-local-domain-fallback-list",
    ),
    (
        "PUT",
        "/devices/policy/{policy_id:uuid}/fallback_domains",
        "devices-set-policy-local-domain-fallback-list",
    ),
    ("GET", "/devices/settings", "zero-trust-accounts-get-device-settings"),
    ("PUT", "/devices/settings", "zero-trust-accounts-update-device-settings"),
    ("PATCH", "/devices/settings", "zero-trust-accounts-patch-device-settings"),
    ("DELETE", "/devices/settings", "zero-trust-accounts-delete-device-settings"),
    ("GET", "/devices/posture", "device-posture-rules-list"),
    ("POST", "/devices/posture", "device-posture-rules-create"),
    ("GET", "/devices/posture/{rule_id:str}", "device-posture-rules-details"),
    ("PUT", "/devices/posture/{rule_id:str}", "device-posture-rules-update"),
    ("DELETE", "/devices/posture/{rule_id:str}", "device-posture-rules-delete"),
    ("GET", "/devices/networks", "device-managed-networks-list"),
    ("POST", "/devices/networks", "device-managed-networks-create"),
    ("GET", "/devices/networks/{network_id:str}", "device-managed-networks-details"),
    ("PUT", "/devices/networks/{network_id:str}", "device-managed-networks-update"),
    ("DELETE", "/devices/networks/{network_id:str}", "device-managed-networks-delete"),
    ("GET", "/devices/dex_tests", "device-dex-test-list"),
    ("POST", "/devices/dex_tests", "device-dex-test-create"),
    ("GET", "/devices/resilience/disconnect", "devices-resilience-get-global-warp-override"),
    ("POST", "/devices/resilience/disconnect", "devices-resilience-set-global-warp-override"),
]


def _not_implemented(operation: str) -> Handler:
    async def handler(request: Request) -> Response:
        raise NotImplementedEndpoint(operation)

    return handler


def build_router(context: AppContext) -> Router:
    router = Router()
    registrations = RegistrationHandlers(context)

    implemented: list[tuple[str, str, str, Handler]] = [
        (
            "GET",
            "/devices/registrations/{registration_id:uuid}",
            "get-registration",
            registrations.get,
        ),
        ("GET", "/devices/registrations", "list-registrations", registrations.list),
        ("DELETE", "/devices/registrations", "delete-registrations", registrations.bulk_delete),
        (
            "DELETE",
            "/devices/registrations/{registration_id:uuid}",
            "delete-registration",
            registrations.delete,
        ),
        (
            "POST",
            "/devices/registrations/revoke",
            "revoke-registrations",
            registrations.revoke,
        ),
        (
            "POST",
            "/devices/registrations/unrevoke",
            "unrevoke-registrations",
            registrations.unrevoke,
        ),
        (
            "GET",
            "/devices/registrations/{registration_id:uuid}/override_codes",
            "get-registration-override-codes",
            registrations.override_codes,
        ),
    ]
    for method, path, name, handler in implemented:
        router.add(method, ACCOUNT + path, name, handler)

    for method, path, name in NOT_IMPLEMENTED:
        router.add(method, ACCOUNT + path, name, _not_implemented(name), implemented=False)
    add_client_routes(router, context)
    return router


# The WARP client API (docs/enrollment.md), beside the admin API: `/v0/reg`, `/v0a4471/reg`,
# `/v0i2308311933/reg`, ... (any build), and the JWKS of warp-registry's Access role.
CLIENT_REG = "/{client_version:client_version}/reg"


def add_client_routes(router: Router, context: AppContext) -> None:
    """Route the client API to `ClientHandlers`; `PUT` is the iOS app's spelling of PATCH."""
    client = ClientHandlers(context)
    one = CLIENT_REG + "/{registration_id:client_registration}"
    routes: list[tuple[str, str, str, Handler]] = [
        ("POST", CLIENT_REG, "client-create-registration", client.enroll),
        ("GET", one, "client-get-registration", client.get),
        ("PATCH", one, "client-update-registration", client.update),
        ("PUT", one, "client-update-registration-put", client.update),
        ("DELETE", one, "client-delete-registration", client.delete),
        ("GET", "/cdn-cgi/access/certs", "access-certs", client.access_certs),
    ]
    for method, path, name, handler in routes:
        router.add(method, path, name, handler)
