"""The fields a match expression may name, and what kind of value each holds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SelectorSpec:
    name: str
    is_list: bool
    meaning: str


SELECTORS: dict[str, SelectorSpec] = {
    spec.name: spec
    for spec in (
        SelectorSpec("identity.email", False, "the enrolled user's email (lower case)"),
        SelectorSpec("identity.groups.name", True, "the names of the user's groups"),
        SelectorSpec("identity.groups.id", True, "the ids of the user's groups"),
        SelectorSpec("identity.groups.email", True, "the emails of the user's groups"),
        SelectorSpec("identity.service_token_uuid", False, "the id of the enrolling service token"),
        SelectorSpec("os.name", False, "the device's OS: windows, mac, linux, ios, ..."),
        SelectorSpec("os.version", False, "the device's OS version, as the client sent it"),
    )
}

# Selectors Cloudflare documents that warp-registry cannot evaluate: it keeps no SAML
# attributes and no managed networks. Refused like unknown ones, with a clearer reason.
UNSUPPORTED_SELECTORS = frozenset({"identity.saml_attributes", "network"})
