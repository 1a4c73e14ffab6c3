"""The route table: every Cloudflare Zero Trust devices endpoint, implemented or not.

Endpoints warp-registry does not implement are still routed, to a handler that answers
501 with an envelope naming the operation, so a script gets a clear answer rather than
"no route". `docs/endpoints.md` is generated from this table.
"""

from __future__ import annotations

from warp_registry.errors import NotImplementedEndpoint
from warp_registry.http.context import AppContext
from warp_registry.http.handlers.client import ClientHandlers
from warp_registry.http.handlers.devices import (
    LegacyDeviceHandlers,
    PhysicalDeviceHandlers,
    deprecated,
)
from warp_registry.http.handlers.profiles import ProfileHandlers
from warp_registry.http.handlers.registrations import RegistrationHandlers
from warp_registry.http.request import Request, Response
from warp_registry.http.routing import Handler, Router

PREFIX = "/client/v4"
ACCOUNT = PREFIX + "/accounts/{account_id:account}"

# Cloudflare endpoints of the devices family that warp-registry does not serve (yet):
# (method, path under the account, operation name).
NOT_IMPLEMENTED: list[tuple[str, str, str]] = [
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


def profile_routes(profiles: ProfileHandlers) -> list[tuple[str, str, str, Handler]]:
    """Device settings profiles: the default one, custom ones, and their three lists."""
    one = "/devices/policy/{policy_id:uuid}"
    routes: list[tuple[str, str, str, Handler]] = [
        ("GET", "/devices/policy", "devices-get-default-device-settings-policy",
         profiles.get_default),
        ("PATCH", "/devices/policy", "devices-update-default-device-settings-policy",
         profiles.edit_default),
        ("POST", "/devices/policy", "devices-create-device-settings-policy", profiles.create),
        ("GET", "/devices/policies", "devices-list-device-settings-policies", profiles.list),
        ("GET", one, "devices-get-device-settings-policy-by-id", profiles.get),
        ("PATCH", one, "devices-update-device-settings-policy", profiles.edit),
        ("DELETE", one, "devices-delete-device-settings-policy", profiles.delete),
    ]  # fmt: skip
    # (list, operation name at the default profile, operation name at a custom profile)
    lists = [
        ("exclude", "split-tunnel-exclude-list", "policy-exclude-list"),
        ("include", "split-tunnel-include-list", "policy-include-list"),
        ("fallback_domains", "local-domain-fallback-list", "policy-local-domain-fallback-list"),
    ]
    for field, default_name, custom_name in lists:
        for method, verb, handler_of in (("GET", "get", profiles.list_reader),
                                         ("PUT", "set", profiles.list_writer)):  # fmt: skip
            routes.append((method, f"/devices/policy/{field}", f"devices-{verb}-{default_name}",
                           handler_of(field, default=True)))  # fmt: skip
            routes.append((method, f"{one}/{field}", f"devices-{verb}-{custom_name}",
                           handler_of(field, default=False)))  # fmt: skip
    return routes


def _not_implemented(operation: str) -> Handler:
    async def handler(request: Request) -> Response:
        raise NotImplementedEndpoint(operation)

    return handler


def build_router(context: AppContext) -> Router:
    router = Router()
    registrations = RegistrationHandlers(context)
    devices = PhysicalDeviceHandlers(context)
    legacy = LegacyDeviceHandlers(context)

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
        ("GET", "/devices/physical-devices", "list-devices", devices.list),
        ("GET", "/devices/physical-devices/{device_id:uuid}", "get-device", devices.get),
        ("PATCH", "/devices/physical-devices/{device_id:uuid}", "patch-device", devices.patch),
        ("DELETE", "/devices/physical-devices/{device_id:uuid}", "delete-device", devices.delete),
        (
            "POST",
            "/devices/physical-devices/{device_id:uuid}/revoke",
            "revoke-device",
            devices.revoke,
        ),
        # The deprecated v1 endpoints (docs/devices.md): a registration id is their device id.
        ("GET", "/devices", "devices-list-devices", deprecated(legacy.list)),
        ("GET", "/devices/{device_id:uuid}", "devices-device-details", deprecated(legacy.get)),
        (
            "GET",
            "/devices/{device_id:uuid}/override_codes",
            "devices-list-admin-override-code",
            deprecated(legacy.override_codes),
        ),
        ("POST", "/devices/revoke", "devices-revoke-devices", deprecated(legacy.revoke)),
        ("POST", "/devices/unrevoke", "devices-unrevoke-devices", deprecated(legacy.unrevoke)),
        # Device settings profiles (docs/profiles.md).
        *profile_routes(ProfileHandlers(context)),
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
