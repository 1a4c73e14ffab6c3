"""Rules of the WARP client API: request bodies, public keys, devices, users, addresses.

A WARP client enrolls with `POST /reg` and later reads or changes its registration with
`GET`/`PATCH /reg/{id}` (docs/enrollment.md has the protocol as served). This module holds
everything about that exchange that is neither HTTP nor SQL: what a body may contain,
what makes a public key acceptable, which device and user an enrollment belongs to, and
how virtual addresses are chosen. Every refusal is an ApiError the client sees.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import itertools
import json
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from warp_registry.clock import parse_rfc3339
from warp_registry.errors import (
    AddressPoolExhausted,
    InvalidJsonBody,
    InvalidPublicKey,
    InvalidRegistrationRequest,
)

# --- keys ---

KEY_TYPE_WIREGUARD = "curve25519"
KEY_TYPE_MASQUE = "secp256r1"
TUNNEL_WIREGUARD = "wireguard"
TUNNEL_MASQUE = "masque"
TUNNEL_FOR_KEY_TYPE = {KEY_TYPE_WIREGUARD: TUNNEL_WIREGUARD, KEY_TYPE_MASQUE: TUNNEL_MASQUE}
KEY_TYPE_FOR_TUNNEL = {tunnel: key_type for key_type, tunnel in TUNNEL_FOR_KEY_TYPE.items()}

WIREGUARD_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class ClientKey:
    """A client's public key, validated: `key` is canonical base64 of the key bytes."""

    key: str
    key_type: str
    tunnel_type: str


def resolve_key(key: object, key_type: object, tunnel_type: object) -> ClientKey:
    """Validate a key as a body carries it, with its optional `key_type`/`tunnel_type`.

    Without `key_type`, the type is the one implied by `tunnel_type`, else the one the
    bytes are: 32 raw bytes are a curve25519 key, a DER SubjectPublicKeyInfo a P-256 key.
    The key comes back re-encoded as canonical base64, so that one key has one spelling
    and the uniqueness check cannot be dodged by an alternative encoding.
    """
    chosen_type = _key_type(key_type, tunnel_type)
    if not isinstance(key, str) or key == "":
        raise InvalidPublicKey("key: must be a non-empty base64 string")
    raw = _decode_base64(key)

    if chosen_type is None:
        chosen_type = _guess_key_type(raw)
    if chosen_type == KEY_TYPE_WIREGUARD:
        canonical = _check_wireguard_key(raw)
    else:
        canonical = _check_masque_key(raw)
    text = base64.b64encode(canonical).decode()
    return ClientKey(text, chosen_type, TUNNEL_FOR_KEY_TYPE[chosen_type])


def _guess_key_type(raw: bytes) -> str:
    if len(raw) == WIREGUARD_KEY_BYTES:
        return KEY_TYPE_WIREGUARD
    try:
        _check_masque_key(raw)
    except InvalidPublicKey:
        raise InvalidPublicKey(
            f"key: neither a 32-byte curve25519 key nor a P-256 SubjectPublicKeyInfo "
            f"({len(raw)} bytes)"
        ) from None
    return KEY_TYPE_MASQUE


def _key_type(key_type: object, tunnel_type: object) -> str | None:
    """The key type the fields name, or None when neither names one."""
    # isinstance first: a list or object is unhashable and no valid value anyway.
    if key_type is not None and (
        not isinstance(key_type, str) or key_type not in TUNNEL_FOR_KEY_TYPE
    ):
        raise InvalidRegistrationRequest(
            f"key_type: must be {KEY_TYPE_WIREGUARD!r} or {KEY_TYPE_MASQUE!r}"
        )
    if tunnel_type is not None and (
        not isinstance(tunnel_type, str) or tunnel_type not in KEY_TYPE_FOR_TUNNEL
    ):
        raise InvalidRegistrationRequest(
            f"tunnel_type: must be {TUNNEL_WIREGUARD!r} or {TUNNEL_MASQUE!r}"
        )
    if (
        key_type is not None
        and tunnel_type is not None
        and TUNNEL_FOR_KEY_TYPE[key_type] != tunnel_type
    ):
        raise InvalidRegistrationRequest(
            f"tunnel_type {tunnel_type!r} does not go with key_type {key_type!r}: "
            "wireguard uses curve25519 keys, masque secp256r1 keys"
        )
    if key_type is not None:
        return key_type
    if tunnel_type is not None:
        return KEY_TYPE_FOR_TUNNEL[tunnel_type]
    return None


def _decode_base64(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise InvalidPublicKey("key: not valid standard base64") from None


def _check_wireguard_key(raw: bytes) -> bytes:
    # Every 32-byte string is an X25519 public key, so the length is the whole check.
    if len(raw) != WIREGUARD_KEY_BYTES:
        raise InvalidPublicKey(
            f"key: a curve25519 key is base64 of exactly 32 bytes, this is {len(raw)} bytes"
        )
    return raw


def _check_masque_key(raw: bytes) -> bytes:
    """A P-256 public key as DER SubjectPublicKeyInfo; returns its canonical DER."""
    try:
        public = serialization.load_der_public_key(raw)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # Also where a point that is not on the curve ends up.
        raise InvalidPublicKey(
            "key: a secp256r1 key is base64 of a DER SubjectPublicKeyInfo holding a P-256 point"
        ) from None
    if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(
        public.curve, ec.SECP256R1
    ):
        raise InvalidPublicKey("key: a secp256r1 key must be a P-256 (prime256v1) EC key")
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_change(
    current: ClientKey | None,
    new_key: ClientKey | None,
    key_type: str | None,
    tunnel_type: str | None,
) -> ClientKey | None:
    """The key a PATCH leaves in place, or None when the key does not change.

    A new `key` replaces the active one. `key_type` or `tunnel_type` alone cannot move a
    registration to another tunnel: the key would not fit it, so that needs a new key.
    """
    if new_key is not None:
        return None if new_key == current else new_key
    if key_type is None and tunnel_type is None:
        return None
    if current is None:
        raise InvalidPublicKey("a registration without a key needs a key, not only its type")
    if key_type in (None, current.key_type) and tunnel_type in (None, current.tunnel_type):
        return None
    raise InvalidPublicKey("changing key_type or tunnel_type needs a new key in the same body")


def new_wireguard_peer_key() -> tuple[str, str]:
    """A server-side X25519 pair: (private, public), each base64 of the 32 raw bytes."""
    private = x25519.X25519PrivateKey.generate()
    private_raw = private.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    public_raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(private_raw).decode(), base64.b64encode(public_raw).decode()


def new_masque_peer_key() -> tuple[str, str]:
    """A server-side P-256 pair: (PKCS#8 PEM private key, SubjectPublicKeyInfo PEM)."""
    return pem_pair(ec.generate_private_key(ec.SECP256R1()))


def pem_pair(private: PrivateKeyTypes) -> tuple[str, str]:
    """The key pair as text: (unencrypted PKCS#8 PEM private key, SubjectPublicKeyInfo PEM)."""
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem.decode(), public_pem.decode()


# --- request bodies ---

_SHORT = 255
_FIELD_LIMITS = {
    "install_id": _SHORT, "fcm_token": 4096, "model": _SHORT, "type": 32, "locale": 35,
    "serial_number": _SHORT, "os_version": _SHORT, "name": _SHORT, "tos": 64,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class EnrollmentBody:
    """`POST /reg`: every field optional; absent strings are empty."""

    key: ClientKey | None
    install_id: str
    fcm_token: str
    tos: int | None
    model: str
    client_type: str
    locale: str
    serial_number: str
    os_version: str
    name: str
    warp_enabled: bool


@dataclass(frozen=True, slots=True)
class RegistrationUpdate:
    """`PATCH`/`PUT /reg/{id}`: only the fields present change."""

    key: ClientKey | None
    key_type: str | None
    tunnel_type: str | None
    name: str | None
    warp_enabled: bool | None


def parse_enrollment_body(body: bytes) -> EnrollmentBody:
    """Validate a `POST /reg` body (an empty body is an empty object)."""
    fields = _json_object(body)
    key = None
    if fields.get("key") not in (None, ""):
        key = resolve_key(fields["key"], fields.get("key_type"), fields.get("tunnel_type"))
    else:
        _key_type(fields.get("key_type"), fields.get("tunnel_type"))

    return EnrollmentBody(
        key=key,
        install_id=_text(fields, "install_id"),
        fcm_token=_text(fields, "fcm_token"),
        tos=_timestamp(fields, "tos"),
        model=_text(fields, "model"),
        client_type=_text(fields, "type"),
        locale=_text(fields, "locale").replace("_", "-"),
        serial_number=_text(fields, "serial_number"),
        os_version=_text(fields, "os_version"),
        name=_text(fields, "name").strip(),
        warp_enabled=_flag(fields, "warp_enabled", default=True),
    )


def parse_update_body(body: bytes) -> RegistrationUpdate:
    """Validate a `PATCH /reg/{id}` body; the key is checked here, its change in the store."""
    fields = _json_object(body)
    key_type = fields.get("key_type")
    tunnel_type = fields.get("tunnel_type")
    _key_type(key_type, tunnel_type)

    key = None
    if fields.get("key") is not None:
        key = resolve_key(fields["key"], key_type, tunnel_type)

    name = None
    if fields.get("name") is not None:
        name = _text(fields, "name").strip()
        if name == "":
            raise InvalidRegistrationRequest("name: must not be empty")

    warp_enabled = None
    if fields.get("warp_enabled") is not None:
        warp_enabled = _flag(fields, "warp_enabled", default=True)
    return RegistrationUpdate(key, key_type, tunnel_type, name, warp_enabled)


def _json_object(body: bytes) -> dict[str, Any]:
    if body.strip() == b"":
        return {}
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidJsonBody() from None
    if not isinstance(value, dict):
        raise InvalidJsonBody("invalid json request: the body must be a JSON object")
    return value


def _text(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidRegistrationRequest(f"{name}: must be a string")
    if len(value) > _FIELD_LIMITS[name]:
        raise InvalidRegistrationRequest(f"{name}: at most {_FIELD_LIMITS[name]} characters")
    # Control characters have no place in these fields, and PostgreSQL cannot store NUL.
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise InvalidRegistrationRequest(f"{name}: control characters are not allowed")
    return value


def _timestamp(fields: dict[str, Any], name: str) -> int | None:
    text = _text(fields, name)
    if text == "":
        return None
    try:
        return parse_rfc3339(text)
    except (ValueError, OverflowError):
        raise InvalidRegistrationRequest(f"{name}: must be an RFC3339 timestamp") from None


def _flag(fields: dict[str, Any], name: str, *, default: bool) -> bool:
    value = fields.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidRegistrationRequest(f"{name}: must be true or false")
    return value


# --- devices and users ---

_DEVICE_TYPES = {
    "android": "android", "a": "android", "ios": "ios", "i": "ios", "linux": "linux",
    "windows": "windows", "mac": "mac", "macos": "mac", "m": "mac", "chromeos": "chromeos",
}  # fmt: skip
DEFAULT_DEVICE_NAME = "WARP device"


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """What an enrollment tells about the physical device it comes from.

    The store finds the device again by `serial_number`, else by `install_id`, within
    the account; with neither, every enrollment is a new device. Empty strings and None
    mean "not told" and never overwrite what the device already has.
    """

    serial_number: str
    install_id: str
    name: str
    model: str
    device_type: str | None
    os_version: str
    client_version: str | None

    @property
    def new_device_name(self) -> str:
        """A new device's name: the one sent, else the model, else a placeholder."""
        return self.name or self.model or DEFAULT_DEVICE_NAME


def device_facts(body: EnrollmentBody, client_version: str | None) -> DeviceFacts:
    """The device an enrollment describes; `client_version` is the CF-Client-Version header."""
    version = (client_version or "").strip()[:_SHORT] or None
    if version is not None and any(ord(c) < 0x20 or ord(c) == 0x7F for c in version):
        version = None
    return DeviceFacts(
        serial_number=body.serial_number,
        install_id=body.install_id,
        name=body.name,
        model=body.model,
        device_type=_DEVICE_TYPES.get(body.client_type.lower()),
        os_version=body.os_version,
        client_version=version,
    )


@dataclass(frozen=True, slots=True)
class ServiceToken:
    """An Access service token as the store keeps it: the secret only as a hash."""

    id: str
    account_id: str
    name: str
    client_id: str
    secret_hash: str
    revoked_at: int | None


@dataclass(frozen=True, slots=True)
class UserClaims:
    """The user an Access JWT names. `name`/`groups` are None when the JWT leaves them out."""

    email: str
    name: str | None
    groups: tuple[tuple[str, str], ...] | None  # (id, name) pairs


@dataclass(frozen=True, slots=True)
class Enrollee:
    """Who enrolls: a user (from a verified JWT) or a service token, in one account."""

    account_id: str
    user: UserClaims | None = None
    service_token_id: str | None = None
    jti: str | None = None
    jwt_expires_at: int | None = None  # microseconds


def groups_json(groups: tuple[tuple[str, str], ...]) -> str:
    """Groups as the users table keeps them: a JSON array of {id, name}."""
    return json.dumps([{"id": gid, "name": name} for gid, name in groups])


# --- virtual addresses ---

VIRTUAL_IPV4_NETWORK = ipaddress.IPv4Network("100.96.0.0/12")
# .0 is the network and .1 the gateway, as on Cloudflare's 100.96.0.0/12 pool.
FIRST_HOST = 2


# How far enrollment probes upwards from an account's mark before reading every address
# of the account: PROBE_BATCHES queries of PROBE_BATCH candidates each.
PROBE_BATCH = 32
PROBE_BATCHES = 4


@dataclass(frozen=True, slots=True)
class HostNumbering:
    """One address family of an account: host numbers to address text and back.

    The text is the canonical spelling (as `ipaddress` writes it), the one enrollment
    stores: probing for a candidate compares stored text, as the unique indexes do.
    """

    family: socket.AddressFamily
    base: int  # the network address as an integer

    def text(self, host: int) -> str:
        """The address of host number `host`."""
        if self.family == socket.AF_INET:
            return str(ipaddress.IPv4Address(self.base + host))
        return str(ipaddress.IPv6Address(self.base + host))

    def hosts(self, addresses: Iterable[str | None]) -> list[int]:
        """Host numbers of the addresses (NULLs and addresses in another format skipped).

        inet_pton rather than ipaddress: ten times faster, which counts when the slow
        path reads an account of a million registrations.
        """
        hosts = []
        for text in addresses:
            if text is None:
                continue
            try:
                hosts.append(int.from_bytes(socket.inet_pton(self.family, text), "big") - self.base)
            except (OSError, ValueError):  # not an address of this family: no host of the pool
                continue
        return hosts


@dataclass(frozen=True, slots=True)
class AddressPool:
    """Where virtual addresses come from: IPv4 from one network, IPv6 from the account's /64.

    Host numbers run from `first_host` to `last_host` (default: the IPv4 network's last
    address before broadcast), the same numbers in both families.

    The rule (our choice, docs/enrollment.md "Virtual IPs"): each family has a mark per
    account, the host after the last one handed out. An enrollment gets the first free host
    at or above the mark; above the top of the pool it wraps to the lowest free host (the
    gaps deleted registrations left). So a just-freed address is not handed out again until
    the pool has gone round once, as DHCP servers avoid reusing a released lease: an ACL
    still naming a deleted device's address does not silently apply to a new device. An
    unknown mark (NULL) counts as the host after the highest one in use.

    The store probes `candidates(mark)` with indexed lookups (the fast path, a few rows
    whatever the account's size); only when they are all taken, or the mark is unknown or
    past the top, does it read every address of the family and call `choose`.
    """

    ipv4_network: ipaddress.IPv4Network = VIRTUAL_IPV4_NETWORK
    first_host: int = FIRST_HOST
    last_host: int | None = None

    @property
    def top(self) -> int:
        return self.last_host if self.last_host is not None else self.ipv4_network.num_addresses - 2

    def ipv4(self) -> HostNumbering:
        return HostNumbering(socket.AF_INET, int(self.ipv4_network.network_address))

    def ipv6(self, ipv6_prefix: str) -> HostNumbering:
        """The account's IPv6 hosts; `ipv6_prefix` is `accounts.ipv6_prefix`."""
        return HostNumbering(socket.AF_INET6, int(ipv6_network(ipv6_prefix).network_address))

    def candidates(self, mark: int | None) -> list[list[int]]:
        """The fast path's probes: batches of hosts from the mark upwards, lowest first.

        Empty when the mark is unknown or outside the pool: then only `choose` can tell.
        """
        if mark is None or not self.first_host <= mark <= self.top:
            return []
        last = min(mark + PROBE_BATCH * PROBE_BATCHES - 1, self.top)
        hosts = list(range(mark, last + 1))
        return [hosts[i : i + PROBE_BATCH] for i in range(0, len(hosts), PROBE_BATCH)]

    def first_free(self, batch: list[int], taken: Iterable[int]) -> int | None:
        """The first host of a probed batch that the probe did not find in use."""
        found = set(taken)
        return next((host for host in batch if host not in found), None)

    def choose(self, used: Iterable[int], mark: int | None) -> int:
        """The slow path: the host to hand out, given every host of the family in use.

        The first free host at or above the mark (or, with the mark unknown, above the
        highest host in use), else the lowest free host; AddressPoolExhausted if none.
        """
        return self.hand_out(used, mark, 1)[0]

    def hand_out(self, used: Iterable[int], mark: int | None, count: int) -> list[int]:
        """The next `count` hosts by the rule, in the order enrollments would get them
        (what `choose` gives, `count` times over); AddressPoolExhausted if fewer are free.
        The bulk seeder hands out a whole seed's hosts with it."""
        taken = {host for host in used if self.first_host <= host <= self.top}
        start = mark if mark is not None else max(taken, default=self.first_host - 1) + 1
        start = min(max(start, self.first_host), self.top + 1)
        order = itertools.chain(
            range(start, self.top + 1), range(self.first_host, start)
        )  # up to the top, then round from the bottom
        hosts = list(itertools.islice((host for host in order if host not in taken), count))
        if len(hosts) < count:
            raise AddressPoolExhausted()
        return hosts


def ipv6_network(prefix: str) -> ipaddress.IPv6Network:
    """An account's IPv6 prefix (`2606:4700:cf1:1a2b`, four groups) as its /64."""
    return ipaddress.IPv6Network(f"{prefix}::/64")


def client_id(ipv4: str | None) -> str:
    """`config.client_id`: 3 bytes, base64, that WARP puts in WireGuard's reserved bytes.

    Our choice: the low 24 bits of the registration's virtual IPv4. Every host of the /12
    pool fits in them, so the id is unique within the account and needs no storage.
    """
    number = int(ipaddress.IPv4Address(ipv4)) & 0xFFFFFF if ipv4 else 0
    return base64.b64encode(number.to_bytes(3, "big")).decode()
