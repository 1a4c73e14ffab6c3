"""Device settings profiles: their fields and defaults, request bodies, the API's shapes,
and which profile a registration gets.

A profile is a row of `device_profiles`: a few columns (name, description, match,
precedence, enabled, profile type) and a JSON object of settings. Every account has one
default profile (no name, match or precedence) and any number of custom ones. The default
values of the settings (api-semantics.md §2.4, and Cloudflare's recorded answers for the
lists: cases.md R14) are filled in when a profile is created, so a profile created with a
name alone reads back complete; profiles stored without settings read as the defaults.

A registration is assigned the first enabled custom profile, in ascending precedence,
whose match expression holds for its user and device, else the default profile
(`choose_profile`). docs/profiles.md describes all of it for API users.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from warp_registry.domain import match as match_language
from warp_registry.domain import profile_fields as fields
from warp_registry.domain.match import Facts, Group, MatchSyntaxError
from warp_registry.errors import (
    ENUM_CHAIN,
    MATCH_CHAIN,
    PAGE_CHAIN,
    PER_PAGE_CHAIN,
    InvalidJsonBody,
    InvalidParameters,
)

DEFAULT_PROFILE_NAME = "Default"  # how `include=policy` names the default profile

# The 16 ranges Cloudflare fills in (recorded: cases.md R14); the spec's "17" is not
# borne out by any recorded answer.
DEFAULT_EXCLUDE: list[dict[str, str]] = [
    {"address": "10.0.0.0/8"},
    {"address": "100.64.0.0/10"},
    {"address": "169.254.0.0/16", "description": "DHCP Unspecified"},
    {"address": "172.16.0.0/12"},
    {"address": "192.0.0.0/24"},
    {"address": "192.168.0.0/16"},
    {"address": "224.0.0.0/24"},
    {"address": "240.0.0.0/4"},
    {"address": "255.255.255.255/32", "description": "DHCP Broadcast"},
    {"address": "fe80::/10", "description": "IPv6 Link Local"},
    {"address": "fd00::/8"},
    {"address": "ff01::/16"},
    {"address": "ff02::/16"},
    {"address": "ff03::/16"},
    {"address": "ff04::/16"},
    {"address": "ff05::/16"},
]
DEFAULT_FALLBACK_DOMAINS: list[dict[str, str]] = [
    {"suffix": suffix}
    for suffix in ("home.arpa", "intranet", "internal", "private", "localdomain", "domain",
                   "lan", "home", "host", "corp", "local", "localhost", "invalid", "test")
]  # fmt: skip

SETTING_DEFAULTS: dict[str, Any] = {
    "allow_mode_switch": False,
    "allow_updates": False,
    "allowed_to_leave": True,
    "auto_connect": 0,
    "captive_portal": 180,
    "disable_auto_fallback": False,
    "exclude_office_ips": False,
    "register_interface_ip_with_dns": True,
    "sccm_vpn_boundary_support": False,
    "switch_locked": False,
    "uninstall_protection": False,
    "support_url": "",
    "tunnel_protocol": "",
    "service_mode_v2": {"mode": "warp"},
    "exclude": DEFAULT_EXCLUDE,
    "fallback_domains": DEFAULT_FALLBACK_DOMAINS,
    "dns_search_suffixes": [],
    "global_acceleration": None,
    "virtual_networks": None,
}
SPLIT_TUNNEL_FIELDS = ("exclude", "include")
LIST_FIELDS = (*SPLIT_TUNNEL_FIELDS, "fallback_domains")
_OMITTED_WHEN_UNSET = ("lan_allow_minutes", "lan_allow_subnet_size")

# Settings both kinds of profile take, and how each is checked.
_SETTINGS: dict[str, fields.Validator] = {
    **{name: fields.boolean for name, default in SETTING_DEFAULTS.items()
       if isinstance(default, bool)},
    "auto_connect": fields.seconds,
    "captive_portal": fields.seconds,
    "support_url": fields.support_url,
    "tunnel_protocol": fields.tunnel_protocol,
    "service_mode_v2": fields.service_mode,
    "exclude": fields.split_tunnel_entries,
    "include": fields.split_tunnel_entries,
    "fallback_domains": fields.fallback_domains,
    "dns_search_suffixes": fields.dns_search_suffixes,
    "global_acceleration": fields.nullable(fields.global_acceleration),
    "virtual_networks": fields.nullable(fields.virtual_networks),
    "lan_allow_minutes": fields.nullable(fields.seconds),
    "lan_allow_subnet_size": fields.nullable(fields.subnet_size),
}  # fmt: skip
_CUSTOM_SETTINGS: dict[str, fields.Validator] = {
    "browser_extension_config": fields.nullable(fields.browser_extension_config),
}
_NULL_CLEARS = frozenset(
    {"global_acceleration", "virtual_networks", "browser_extension_config",
     *_OMITTED_WHEN_UNSET}
)  # fmt: skip
_COLUMNS = ("name", "description", "match", "precedence", "enabled")
# Shown by the API, set by the server: a body may repeat them unchanged (so that writing
# back what was read is a no-op), never change them.
_READ_ONLY = ("policy_id", "gateway_unique_id", "default", "profile_type", "target_tests")

CREATE, UPDATE, UPDATE_DEFAULT = "create", "update", "update-default"


@dataclass(frozen=True, slots=True)
class Profile:
    """One stored profile. `settings` may lack keys: their defaults apply."""

    id: str
    account_id: str
    is_default: bool
    name: str | None
    description: str | None
    match: str | None
    precedence: int | None
    enabled: bool
    profile_type: str
    settings: Mapping[str, Any]
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class ProfileChanges:
    """A validated body: new column values, new settings, and read-only fields it repeats."""

    columns: Mapping[str, Any]
    settings: Mapping[str, Any]
    repeated: Mapping[str, Any]


# --- request bodies ---


def parse_profile_body(body: bytes, kind: str) -> ProfileChanges:
    """Validate the body of `POST /devices/policy` (CREATE), `PATCH /devices/policy/{id}`
    (UPDATE) or `PATCH /devices/policy` (UPDATE_DEFAULT). An empty body is `{}`.

    Null stands for "not given", except where it is a value of its own (the nullable
    objects and the `lan_*` numbers, which null clears).
    """
    data = _json(body, allow_empty=True)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise fields.field_error("body", "must be a JSON object")
    if data.get("exclude") is not None and data.get("include") is not None:
        raise fields.field_error(
            "include", "cannot be set together with exclude: a profile either excludes "
            "routes from the tunnel or includes them"
        )  # fmt: skip

    columns: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    repeated: dict[str, Any] = {}
    for key, value in data.items():
        if value is None and key not in _NULL_CLEARS:
            continue
        if key in _READ_ONLY or (kind == UPDATE_DEFAULT and key == "enabled"):
            # The default profile is always enabled: `enabled` is read-only there.
            if kind == CREATE and key == "profile_type":
                columns[key] = fields.choice(key, value, fields.PROFILE_TYPES)
            else:
                repeated[key] = value
        elif key in _COLUMNS or key in _CUSTOM_SETTINGS:
            if kind == UPDATE_DEFAULT:
                raise fields.field_error(key, "the default profile does not take this field")
            _store(key, value, columns, settings)
        elif key in _SETTINGS:
            settings[key] = _SETTINGS[key](key, value)
        else:
            raise fields.field_error(str(key), "unknown field")

    if kind == CREATE and "name" not in columns:
        raise fields.field_error("name", "is required")
    return ProfileChanges(columns, settings, repeated)


def _store(key: str, value: Any, columns: dict[str, Any], settings: dict[str, Any]) -> None:
    """A field only custom profiles take, checked, into its place."""
    if key == "name":
        columns[key] = fields.text(key, value, fields.MAX_NAME, required=True)
    elif key == "description":
        columns[key] = fields.text(key, value, fields.MAX_DESCRIPTION)
    elif key == "match":
        columns[key] = check_match(value)
    elif key == "precedence":
        columns[key] = fields.integer(key, value)
    elif key == "enabled":
        columns[key] = fields.boolean(key, value)
    else:
        settings[key] = _CUSTOM_SETTINGS[key](key, value)


def check_match(value: Any) -> str:
    """A match expression as stored: at most 500 characters that parse (or empty: none)."""
    text = fields.text("match", value, fields.MAX_MATCH)
    if text.strip() == "":
        return ""
    try:
        match_language.parse(text)
    except MatchSyntaxError as exc:
        raise InvalidJsonBody(chain=[(MATCH_CHAIN, f"match: {exc}")]) from None
    return text


def parse_list_body(body: bytes, field: str) -> list[dict[str, Any]]:
    """The body of `PUT .../exclude`, `.../include` or `.../fallback_domains`: a JSON array."""
    data = _json(body, allow_empty=False)
    validator = (
        fields.fallback_domains if field == "fallback_domains" else (fields.split_tunnel_entries)
    )
    result: list[dict[str, Any]] = validator(field, data)
    return result


def _json(body: bytes, *, allow_empty: bool) -> Any:
    if allow_empty and body.strip() == b"":
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:  # also bodies that are not UTF-8
        raise InvalidJsonBody() from None


# --- applying changes ---


def new_profile(
    changes: ProfileChanges, *, profile_id: str, account_id: str, precedence: int, now: int
) -> Profile:
    """A custom profile from a validated create body, every setting filled in."""
    columns = changes.columns
    _check_repeated(changes.repeated, {"default": False, "target_tests": None}, creating=True)
    profile = Profile(
        id=profile_id,
        account_id=account_id,
        is_default=False,
        name=columns["name"],
        description=columns.get("description", ""),
        match=columns.get("match", ""),
        precedence=columns.get("precedence", precedence),
        enabled=columns.get("enabled", True),
        profile_type=columns.get("profile_type", "warp"),
        settings=_merged({}, changes.settings),
        created_at=now,
        updated_at=now,
    )
    _check_browser_extension(profile, creating=True)
    return profile


def changed_profile(
    profile: Profile, changes: ProfileChanges, gateway_unique_id: str, now: int
) -> Profile:
    """The profile with a validated PATCH body applied (read-only fields checked too)."""
    _check_repeated(changes.repeated, _read_only_values(profile, gateway_unique_id))
    updated = replace(
        profile,
        **changes.columns,
        settings=_merged(profile.settings, changes.settings),
        updated_at=now,
    )
    _check_browser_extension(updated, creating=False)
    return updated


def with_list(profile: Profile, field: str, entries: list[dict[str, Any]], now: int) -> Profile:
    """The profile with one list replaced; setting `exclude` or `include` picks that mode."""
    return replace(profile, settings=_merged(profile.settings, {field: entries}), updated_at=now)


def _merged(stored: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Complete settings: the stored ones (defaults filled in) with `changes` applied."""
    settings = resolved_settings(stored)
    for key, value in changes.items():
        if key in SPLIT_TUNNEL_FIELDS:
            # One list is in force: the one set last.
            settings.pop("exclude", None)
            settings.pop("include", None)
        if value is None and key in _OMITTED_WHEN_UNSET:
            settings.pop(key, None)
        else:
            settings[key] = value
    return settings


def resolved_settings(stored: Mapping[str, Any]) -> dict[str, Any]:
    """`stored` over the defaults; a profile in include mode has no `exclude`."""
    settings = copy.deepcopy(SETTING_DEFAULTS)
    settings.update(copy.deepcopy(dict(stored)))
    if "include" in stored:
        settings.pop("exclude", None)
    return settings


def _read_only_values(profile: Profile, gateway_unique_id: str) -> dict[str, Any]:
    return {
        "policy_id": profile.id,
        "gateway_unique_id": gateway_unique_id,
        "default": profile.is_default,
        "enabled": profile.enabled,
        "profile_type": profile.profile_type,
        "target_tests": None,
    }


def _check_repeated(
    repeated: Mapping[str, Any], current: Mapping[str, Any], *, creating: bool = False
) -> None:
    for key, value in repeated.items():
        if key == "target_tests":
            if value not in (None, []):
                raise fields.field_error(key, "is deprecated and cannot be set")
        elif creating and key != "default":
            raise fields.field_error(key, "is set by the server")
        elif key == "default" and value != current.get(key):
            raise fields.field_error(key, "cannot be changed: there is one default profile, "
                                     "served at /devices/policy")  # fmt: skip
        elif value != current.get(key):
            raise fields.field_error(key, f"cannot be changed (it is {current.get(key)!r})")


def _check_browser_extension(profile: Profile, *, creating: bool) -> None:
    config = profile.settings.get("browser_extension_config")
    if profile.profile_type == "browser_extension" and config is None:
        raise fields.field_error(
            "browser_extension_config", "is required for browser_extension profiles"
        )
    if profile.profile_type == "warp" and config is not None:
        raise fields.field_error("browser_extension_config", "is only for browser_extension "
                                 "profiles")  # fmt: skip


# --- the API's shapes ---


def profile_to_api(profile: Profile, gateway_unique_id: str) -> dict[str, Any]:
    """A profile as `GET /devices/policy[/{id}]` shows it, keys in alphabetical order."""
    settings = resolved_settings(profile.settings)
    for key in _OMITTED_WHEN_UNSET:
        if settings.get(key) is None:
            settings.pop(key, None)

    body: dict[str, Any] = {
        **settings,
        "policy_id": profile.id,
        "default": profile.is_default,
        "enabled": profile.enabled,
        "profile_type": profile.profile_type,
        "gateway_unique_id": gateway_unique_id,
    }
    if profile.is_default:
        body.pop("browser_extension_config", None)
    else:
        body.setdefault("browser_extension_config", None)
        body.update(
            name=profile.name or "",
            description=profile.description or "",
            match=profile.match or "",
            precedence=profile.precedence,
        )
    return dict(sorted(body.items()))


def list_of(profile: Profile, field: str) -> list[dict[str, Any]]:
    """One of the lists, as its sub-resource shows it (`[]` for the list not in force)."""
    value: list[dict[str, Any]] = resolved_settings(profile.settings).get(field, [])
    return value


def client_settings(stored_json: str | None) -> dict[str, Any]:
    """A profile's settings (defaults filled in) as the WARP client API's `policy` shows."""
    settings = resolved_settings(load_settings(stored_json))
    return {key: value for key, value in settings.items() if value is not None}


def load_settings(stored_json: str | None) -> dict[str, Any]:
    """The settings column, read leniently: anything unreadable is no settings."""
    try:
        value = json.loads(stored_json or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def dump_settings(settings: Mapping[str, Any]) -> str:
    return json.dumps(settings, separators=(",", ":"), sort_keys=True)


# --- listing ---

DEFAULT_PER_PAGE = 1000  # one page holds every profile: the SDKs read only the first page
MAX_PER_PAGE = 1000
MAX_PAGE = 1_000_000
_DIGITS = re.compile(r"[0-9]{1,7}")


@dataclass(frozen=True, slots=True)
class ProfileListQuery:
    profile_type: str
    page: int
    per_page: int


def parse_list_query(query: Mapping[str, Sequence[str]]) -> ProfileListQuery:
    """`profile_type` (default `warp`: "when omitted, only WARP profiles"), `page`,
    `per_page`."""
    profile_type = _last(query, "profile_type") or "warp"
    if profile_type not in fields.PROFILE_TYPES:
        raise InvalidParameters(
            ENUM_CHAIN, f"profile_type: unsupported value {profile_type[:40]!r}; "
            f"allowed: {', '.join(fields.PROFILE_TYPES)}",
        )  # fmt: skip
    page = _bounded(query, "page", 1, MAX_PAGE, PAGE_CHAIN)
    per_page = _bounded(query, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE, PER_PAGE_CHAIN)
    return ProfileListQuery(profile_type, page, per_page)


def _last(query: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _bounded(
    query: Mapping[str, Sequence[str]], name: str, default: int, high: int, chain: int
) -> int:
    raw = _last(query, name)
    if raw is None:
        return default
    if _DIGITS.fullmatch(raw) is None or not 1 <= int(raw) <= high:
        raise InvalidParameters(chain, f"{name} variable must be a number between 1 and {high}")
    return int(raw)


def whole_list_result_info(count: int) -> dict[str, int]:
    """`result_info` of a list that is never paged (a profile's lists, DELETE's answer)."""
    return page_result_info(ProfileListQuery("warp", 1, MAX_PER_PAGE), count, count)


def page_result_info(query: ProfileListQuery, count: int, total: int) -> dict[str, int]:
    """The page-based `result_info` (api-semantics.md §3.3)."""
    return {
        "page": query.page,
        "per_page": query.per_page,
        "count": count,
        "total_count": total,
        "total_pages": math.ceil(total / query.per_page),
    }


# --- assignment ---


@dataclass(frozen=True, slots=True)
class Candidate:
    """A profile a registration could get: the default one, or an enabled custom one of the
    registration's type."""

    id: str
    name: str
    match: str | None
    precedence: int | None
    is_default: bool


def choose_profile(candidates: Sequence[Candidate], facts: Facts) -> Candidate | None:
    """The first custom candidate in ascending precedence whose match holds, else the
    default one (None only if there is no default either). Never raises."""
    customs = sorted(
        (c for c in candidates if not c.is_default), key=lambda c: (c.precedence or 0, c.id)
    )
    for candidate in customs:
        if match_language.matches(candidate.match, facts):
            return candidate
    return next((c for c in candidates if c.is_default), None)


def facts_for(
    email: str | None,
    groups_json: str | None,
    service_token_uuid: str | None,
    os_name: str | None,
    os_version: str | None,
) -> Facts:
    """What match expressions see of a registration, from its stored columns.

    Empty strings are no value; groups are the users table's JSON (`[{"id", "name"}]`),
    read leniently (anything unreadable is no groups), and None when there is no user.
    """
    return Facts(
        email=email or None,
        groups=_groups(groups_json),
        service_token_uuid=service_token_uuid or None,
        os_name=os_name or None,
        os_version=os_version or None,
    )


def _groups(groups_json: str | None) -> tuple[Group, ...] | None:
    if groups_json is None:
        return None
    try:
        items = json.loads(groups_json or "[]")
    except ValueError:
        return ()
    if not isinstance(items, list):
        return ()
    groups = []
    for item in items:
        if isinstance(item, str):
            groups.append(Group(id=item, name=item))
        elif isinstance(item, dict):
            groups.append(Group(id=_text_or_none(item.get("id")),
                                name=_text_or_none(item.get("name")),
                                email=_text_or_none(item.get("email"))))  # fmt: skip
    return tuple(groups)


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None
