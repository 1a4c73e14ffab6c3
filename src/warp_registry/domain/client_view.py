"""The registration as the WARP client API shows it (`POST /reg`, `GET`/`PATCH /reg/{id}`).

This is the client's view of the same registration the admin API shows with
`registration_to_api`: its key, its virtual addresses (`config.interface.addresses`), the
server's peer key and endpoint, and the settings of its device settings profile.
warp-registry runs no tunnel endpoint; the endpoint values are Cloudflare's published
ones (our choice, docs/enrollment.md), so the configuration looks like a real one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from warp_registry.clock import format_optional, format_rfc3339
from warp_registry.domain.enrollment import TUNNEL_MASQUE, client_id
from warp_registry.domain.profiles import SETTING_DEFAULTS, client_settings

WIREGUARD_ENDPOINT: dict[str, Any] = {
    "v4": "162.159.192.1:0",
    "v6": "[2606:4700:d0::a29f:c001]:0",
    "host": "engage.cloudflareclient.com:2408",
    "ports": [2408, 500, 1701, 4500],
}
MASQUE_ENDPOINT: dict[str, Any] = {
    "v4": "162.159.198.1:0",
    "v6": "[2606:4700:103::1]:0",
    "host": "zt-masque.cloudflareclient.com:443",
    "ports": [443, 500, 1701, 4500, 4443, 8443, 8095],
}

# What a profile that sets nothing means (api-semantics.md §2.4, the spec's defaults):
# these settings always stand in the client's `policy`, first and in this order. The
# values are the profiles' own defaults (domain/profiles.py), kept in one place.
_ALWAYS_SHOWN = (
    "allow_mode_switch", "allow_updates", "allowed_to_leave", "auto_connect",
    "captive_portal", "disable_auto_fallback", "exclude_office_ips",
    "register_interface_ip_with_dns", "sccm_vpn_boundary_support", "service_mode_v2",
    "support_url", "switch_locked", "tunnel_protocol",
)  # fmt: skip
DEFAULT_PROFILE_SETTINGS: dict[str, Any] = {
    key: copy.deepcopy(SETTING_DEFAULTS[key]) for key in _ALWAYS_SHOWN
}


@dataclass(frozen=True, slots=True)
class ClientRegistration:
    """One registration with everything its client view needs, read in one query."""

    id: str
    account_id: str
    account_name: str
    account_created_at: int
    created_at: int
    updated_at: int
    key: str
    key_type: str | None
    tunnel_type: str | None
    device_id: str
    device_name: str
    model: str
    serial_number: str
    install_id: str
    client_type: str
    locale: str
    fcm_token: str
    tos: int | None
    warp_enabled: bool
    virtual_ipv4: str | None
    virtual_ipv6: str | None
    peer_public_key: str | None
    profile_id: str | None
    profile_is_default: bool
    profile_settings_json: str


def client_registration_to_api(reg: ClientRegistration, token: str | None) -> dict[str, Any]:
    """The `result` of the client API. `token` is given only by `POST /reg`."""
    body: dict[str, Any] = {
        "id": reg.id,
        "type": reg.client_type,
        "model": reg.model,
        "name": reg.device_name,
        "key": reg.key,
        "key_type": reg.key_type,
        "tunnel_type": reg.tunnel_type,
        "account": _account(reg),
        "config": _config(reg),
        "warp_enabled": reg.warp_enabled,
        "waitlist_enabled": False,
        "created": format_rfc3339(reg.created_at),
        "updated": format_rfc3339(reg.updated_at),
        "tos": format_optional(reg.tos),
        "place": 0,
        "locale": reg.locale,
        "enabled": True,
        "install_id": reg.install_id,
        "fcm_token": reg.fcm_token,
        "serial_number": reg.serial_number,
        "policy": profile_settings(reg),
    }
    if token is not None:
        body["token"] = token
    return body


def _account(reg: ClientRegistration) -> dict[str, Any]:
    created = format_rfc3339(reg.account_created_at)
    return {
        "id": reg.account_id,
        "account_type": "team",
        "managed": "not_api_managed",
        "organization": reg.account_name,
        "created": created,
        "updated": created,
    }


def _config(reg: ClientRegistration) -> dict[str, Any]:
    endpoint = MASQUE_ENDPOINT if reg.tunnel_type == TUNNEL_MASQUE else WIREGUARD_ENDPOINT
    return {
        "client_id": client_id(reg.virtual_ipv4),
        "peers": [{"public_key": reg.peer_public_key, "endpoint": dict(endpoint)}],
        "interface": {"addresses": {"v4": reg.virtual_ipv4, "v6": reg.virtual_ipv6}},
        "services": {"http_proxy": "172.16.0.1:2480"},
        "metrics": {"ping": 900, "report": 900},
    }


def profile_settings(reg: ClientRegistration) -> dict[str, Any]:
    """The assigned profile's settings over the defaults, with the profile's id."""
    settings = {**DEFAULT_PROFILE_SETTINGS, **client_settings(reg.profile_settings_json)}
    settings["policy_id"] = reg.profile_id
    settings["default"] = reg.profile_is_default
    settings["organization"] = reg.account_name
    return settings
