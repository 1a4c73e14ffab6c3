"""Validation of the fields of a device settings profile, one function per kind of value.

Every function takes the field's path as the client sees it (`exclude[2].address`) and the
value from the JSON body, and returns the value to store or raises `field_error`, an
`InvalidJsonBody` (400, code 2003 "invalid json request") whose `error_chain` entry names
the field and what it accepts. Limits are api-semantics.md §2.4's where it gives them
(names, descriptions, match expressions) and our choice elsewhere (docs/profiles.md).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from typing import Any

from warp_registry import ids
from warp_registry.errors import BODY_FIELD_CHAIN, InvalidJsonBody

Validator = Callable[[str, Any], Any]

MAX_NAME = 100
MAX_DESCRIPTION = 500
MAX_MATCH = 500
MAX_ENTRY_DESCRIPTION = 100
MAX_SUPPORT_URL = 2048
MAX_LIST_ENTRIES = 1000  # split-tunnel entries, fallback domains or search suffixes
MAX_DNS_SERVERS = 10
MAX_ACCELERATION_ENDPOINTS = 5
MAX_HOST = 253
MAX_INT = 2**31 - 1

SERVICE_MODES = ("warp", "1dot1", "proxy", "posture_only", "warp_tunnel_only")
TUNNEL_PROTOCOLS = ("", "wireguard", "masque")
PROFILE_TYPES = ("warp", "browser_extension")
PROXY_CONTROLS = ("unlocked", "locked")

# A host or domain suffix: labels of letters, digits, `-` and `_`, an optional leading
# `*.` wildcard and an optional trailing dot.
_HOST = re.compile(r"(\*\.)?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?")
_CIDR = re.compile(r"[0-9A-Fa-f:.]+(/[0-9]{1,3})?")
# Control characters other than tab and line breaks; NUL cannot be stored by PostgreSQL.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def field_error(path: str, problem: str) -> InvalidJsonBody:
    """The 400 for one field: `invalid json request`, the chain naming the field."""
    return InvalidJsonBody(chain=[(BODY_FIELD_CHAIN, f"{path[:120]}: {problem}")])


# --- scalars ---


def boolean(path: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise field_error(path, "must be true or false")
    return value


def integer(path: str, value: Any, low: int = 0, high: int = MAX_INT) -> int:
    """A JSON number with an integral value (`10` or `10.0`) within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise field_error(path, "must be a number")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise field_error(path, "must be a whole number")
    if not low <= value <= high:
        raise field_error(path, f"must be between {low} and {high}")
    return int(value)


def seconds(path: str, value: Any) -> int:
    return integer(path, value, 0, 86_400)


def subnet_size(path: str, value: Any) -> int:
    return integer(path, value, 0, 128)


def text(path: str, value: Any, limit: int, *, required: bool = False) -> str:
    """A string of at most `limit` characters, without control characters."""
    if not isinstance(value, str):
        raise field_error(path, "must be a string")
    if required and value.strip() == "":
        raise field_error(path, "must not be empty")
    if len(value) > limit:
        raise field_error(path, f"at most {limit} characters, got {len(value)}")
    if _CONTROL.search(value):
        raise field_error(path, "must not contain control characters")
    return value


def choice(path: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        shown = ", ".join(repr(a) for a in allowed)
        raise field_error(path, f"must be one of {shown}")
    return value


def support_url(path: str, value: Any) -> str:
    return text(path, value, MAX_SUPPORT_URL)


def tunnel_protocol(path: str, value: Any) -> str:
    return choice(path, value, TUNNEL_PROTOCOLS)


def nullable(validator: Validator) -> Validator:
    """The same check, where null is a value of its own: it clears the field."""

    def check(path: str, value: Any) -> Any:
        return None if value is None else validator(path, value)

    return check


# --- objects ---


def _object(path: str, value: Any, keys: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise field_error(path, "must be an object")
    unknown = sorted(set(value) - keys)
    if unknown:
        raise field_error(f"{path}.{unknown[0]}", "unknown field")
    missing = sorted(k for k in required if value.get(k) is None)
    if missing:
        raise field_error(f"{path}.{missing[0]}", "is required")
    return value


def service_mode(path: str, value: Any) -> dict[str, Any]:
    """`{mode?, port?}`; the mode one of SERVICE_MODES, the port 1 to 65535."""
    given = _object(path, value, {"mode", "port"}, set())
    mode: dict[str, Any] = {}
    if given.get("mode") is not None:
        mode["mode"] = choice(f"{path}.mode", given["mode"], SERVICE_MODES)
    if given.get("port") is not None:
        mode["port"] = integer(f"{path}.port", given["port"], 1, 65_535)
    return mode


def browser_extension_config(path: str, value: Any) -> dict[str, Any]:
    given = _object(path, value, {"proxy_enabled", "proxy_control"},
                    {"proxy_enabled", "proxy_control"})  # fmt: skip
    return {
        "proxy_control": choice(f"{path}.proxy_control", given["proxy_control"], PROXY_CONTROLS),
        "proxy_enabled": boolean(f"{path}.proxy_enabled", given["proxy_enabled"]),
    }


def virtual_networks(path: str, value: Any) -> dict[str, Any]:
    """`{allowed: [uuid, ...] (at least one, no repeats), default: one of allowed}`."""
    given = _object(path, value, {"allowed", "default"}, {"allowed", "default"})
    allowed = given["allowed"]
    if not isinstance(allowed, list) or not allowed or len(allowed) > MAX_LIST_ENTRIES:
        raise field_error(f"{path}.allowed", f"must list 1 to {MAX_LIST_ENTRIES} UUIDs")
    for index, item in enumerate(allowed):
        if not isinstance(item, str) or not ids.is_uuid(item):
            raise field_error(f"{path}.allowed[{index}]", "must be a UUID")
    if len({item.lower() for item in allowed}) != len(allowed):
        raise field_error(f"{path}.allowed", "must not repeat a virtual network")
    default = given["default"]
    if not isinstance(default, str) or default.lower() not in {a.lower() for a in allowed}:
        raise field_error(f"{path}.default", "must be one of the allowed virtual networks")
    return {"allowed": list(allowed), "default": default}


def global_acceleration(path: str, value: Any) -> dict[str, Any]:
    """`{enabled, api_endpoints, masque_endpoints, wireguard_endpoints, autoswitch?}`."""
    keys = {"enabled", "api_endpoints", "masque_endpoints", "wireguard_endpoints", "autoswitch"}
    given = _object(path, value, keys, {"enabled"})
    result: dict[str, Any] = {"enabled": boolean(f"{path}.enabled", given["enabled"])}
    for name in ("api_endpoints", "masque_endpoints", "wireguard_endpoints"):
        result[name] = _endpoints(f"{path}.{name}", given.get(name, []))
    if not (result["masque_endpoints"] or result["wireguard_endpoints"]):
        raise field_error(path, "needs wireguard_endpoints or masque_endpoints")
    if given.get("autoswitch") is not None:
        result["autoswitch"] = boolean(f"{path}.autoswitch", given["autoswitch"])
    return result


def _endpoints(path: str, value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_ACCELERATION_ENDPOINTS:
        raise field_error(path, f"must be a list of at most {MAX_ACCELERATION_ENDPOINTS} strings")
    return [text(f"{path}[{index}]", item, MAX_HOST, required=True)
            for index, item in enumerate(value)]  # fmt: skip


# --- lists ---


def _entries(path: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise field_error(path, "must be a JSON array")
    if len(value) > MAX_LIST_ENTRIES:
        raise field_error(path, f"at most {MAX_LIST_ENTRIES} entries, got {len(value)}")
    return value


def split_tunnel_entries(path: str, value: Any) -> list[dict[str, str]]:
    """`[{address: CIDR} | {host}, description?]`: exactly one of address and host.

    Entries are kept as sent, order and spelling included, so they read back unchanged.
    """
    return [_split_tunnel_entry(f"{path}[{i}]", e) for i, e in enumerate(_entries(path, value))]


def _split_tunnel_entry(path: str, value: Any) -> dict[str, str]:
    given = _object(path, value, {"address", "host", "description"}, set())
    has_address, has_host = given.get("address") is not None, given.get("host") is not None
    if has_address == has_host:
        raise field_error(path, "needs exactly one of address and host")

    entry: dict[str, str] = {}
    if has_address:
        entry["address"] = cidr(f"{path}.address", given["address"])
    else:
        entry["host"] = host(f"{path}.host", given["host"])
    if given.get("description") is not None:
        entry["description"] = text(f"{path}.description", given["description"],
                                    MAX_ENTRY_DESCRIPTION)  # fmt: skip
    return entry


def cidr(path: str, value: Any) -> str:
    """An IPv4 or IPv6 network as `address/prefix` (or a bare address), host bits clear."""
    if not isinstance(value, str) or _CIDR.fullmatch(value) is None:
        raise field_error(path, "must be an IP network in CIDR notation, e.g. 10.0.0.0/8")
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise field_error(path, f"not a valid CIDR network: {exc}") from None
    return value


def host(path: str, value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_HOST or _HOST.fullmatch(value) is None:
        raise field_error(path, f"must be a host name or domain of at most {MAX_HOST} characters")
    return value


def fallback_domains(path: str, value: Any) -> list[dict[str, Any]]:
    """`[{suffix, description?, dns_server?: [IP, ...]}]`, kept as sent."""
    return [_fallback_domain(f"{path}[{i}]", e) for i, e in enumerate(_entries(path, value))]


def _fallback_domain(path: str, value: Any) -> dict[str, Any]:
    given = _object(path, value, {"suffix", "description", "dns_server"}, {"suffix"})
    entry: dict[str, Any] = {"suffix": host(f"{path}.suffix", given["suffix"])}
    if given.get("description") is not None:
        entry["description"] = text(f"{path}.description", given["description"],
                                    MAX_ENTRY_DESCRIPTION)  # fmt: skip
    if given.get("dns_server") is not None:
        servers = given["dns_server"]
        if not isinstance(servers, list) or len(servers) > MAX_DNS_SERVERS:
            limit = f"must be a list of at most {MAX_DNS_SERVERS} IP addresses"
            raise field_error(f"{path}.dns_server", limit)
        entry["dns_server"] = [_ip(f"{path}.dns_server[{i}]", s) for i, s in enumerate(servers)]
    return entry


def _ip(path: str, value: Any) -> str:
    try:
        if not isinstance(value, str) or value != value.strip():
            raise ValueError
        ipaddress.ip_address(value)
    except ValueError:
        raise field_error(path, "must be an IPv4 or IPv6 address") from None
    return value


def dns_search_suffixes(path: str, value: Any) -> list[dict[str, str]]:
    """`[{suffix, description?}]`; an empty list clears them."""
    result = []
    for index, item in enumerate(_entries(path, value)):
        entry_path = f"{path}[{index}]"
        given = _object(entry_path, item, {"suffix", "description"}, {"suffix"})
        entry = {"suffix": host(f"{entry_path}.suffix", given["suffix"])}
        if given.get("description") is not None:
            entry["description"] = text(f"{entry_path}.description", given["description"],
                                        MAX_ENTRY_DESCRIPTION)  # fmt: skip
        result.append(entry)
    return result
