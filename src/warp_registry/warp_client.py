"""A small WARP client for `warp-registry enroll`: the client API as a real device uses it.

It generates an X25519 key pair, enrolls with `POST /v0/reg` (an Access JWT or a service
token proves who enrolls), and, for MASQUE, switches the registration to a fresh P-256
key with `PATCH /v0/reg/{id}`, as usque does. The result renders as a WireGuard
`[Interface]`/`[Peer]` configuration or as the MASQUE details a client would keep.
Only the standard library speaks HTTP here, so the command needs nothing the server does
not already install.
"""

from __future__ import annotations

import base64
import json
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from warp_registry import __version__
from warp_registry.clock import format_rfc3339, now_us

CLIENT_VERSION = f"warp-registry-{__version__}"
# Longer than the server's SQLite write budget (store/sqlite.py, 60 s): a client that gave
# up first would leave behind a registration it never received the token of.
TIMEOUT_S = 90
# Cloudflare's resolvers and WARP's MTU, as in the configurations WARP tools write.
WARP_DNS = "1.1.1.1, 1.0.0.1, 2606:4700:4700::1111, 2606:4700:4700::1001"
WARP_MTU = 1280


class ClientApiError(Exception):
    """The server refused a call; carries its status and the envelope's first error."""

    def __init__(self, status: int, code: int | None, message: str) -> None:
        super().__init__(f"HTTP {status}" + (f", code {code}" if code else "") + f": {message}")
        self.status = status
        self.code = code


@dataclass(frozen=True, slots=True)
class Enrolled:
    """A finished enrollment: the last registration answer and the private key in use."""

    registration: dict[str, Any]
    token: str
    wireguard_private_key: str  # base64 of the 32 raw bytes
    masque_private_key: str | None  # PEM (PKCS#8), when the tunnel is MASQUE


def enroll(
    server: str,
    identity_headers: dict[str, str],
    *,
    tunnel: str = "wireguard",
    name: str | None = None,
    serial_number: str | None = None,
) -> Enrolled:
    """Run the whole protocol against `server` (its root URL) and return what it gave."""
    base = _client_api_base(server)
    private = x25519.X25519PrivateKey.generate()
    body: dict[str, Any] = {
        "key": _b64(private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)),
        "key_type": "curve25519",
        "tunnel_type": "wireguard",
        "install_id": secrets.token_urlsafe(16)[:22],
        "fcm_token": "",
        "tos": format_rfc3339(now_us()),
        "model": "warp-registry enroll",
        "type": "linux",
        "locale": "en_US",
        "serial_number": serial_number or secrets.token_hex(8),
    }  # fmt: skip
    if name:
        body["name"] = name
    registration = _call("POST", f"{base}/reg", body, identity_headers)
    token = str(registration["token"])

    masque_pem = None
    if tunnel == "masque":
        masque = ec.generate_private_key(ec.SECP256R1())
        spki = masque.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        update = {"key": _b64(spki), "key_type": "secp256r1", "tunnel_type": "masque"}
        auth = {"Authorization": f"Bearer {token}"}
        registration = _call("PATCH", f"{base}/reg/{registration['id']}", update, auth)
        masque_pem = masque.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    raw_private = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return Enrolled(registration, token, _b64(raw_private), masque_pem)


def wireguard_config(enrolled: Enrolled) -> str:
    """A wg-quick configuration for the registration."""
    config = enrolled.registration["config"]
    addresses = config["interface"]["addresses"]
    peer = config["peers"][0]
    return "\n".join([
        "[Interface]",
        f"PrivateKey = {enrolled.wireguard_private_key}",
        f"Address = {addresses['v4']}/32, {addresses['v6']}/128",
        f"DNS = {WARP_DNS}",
        f"MTU = {WARP_MTU}",
        "",
        "[Peer]",
        f"PublicKey = {peer['public_key']}",
        "AllowedIPs = 0.0.0.0/0, ::/0",
        f"Endpoint = {peer['endpoint']['host']}",
        "",
    ])  # fmt: skip


def masque_details(enrolled: Enrolled) -> str:
    """What a MASQUE client keeps: its key, the pinned server key, endpoints, addresses."""
    config = enrolled.registration["config"]
    addresses = config["interface"]["addresses"]
    endpoint = config["peers"][0]["endpoint"]
    lines = [
        f"ipv4           {addresses['v4']}",
        f"ipv6           {addresses['v6']}",
        f"endpoint_v4    {_strip_port(endpoint['v4'])}",
        f"endpoint_v6    {_strip_port(endpoint['v6'])}",
        f"endpoint_host  {endpoint['host']}",
        "private key (P-256, keep it secret):",
        (enrolled.masque_private_key or "").rstrip(),
        "server public key (pin it):",
        str(config["peers"][0]["public_key"]).rstrip(),
        "",
    ]
    return "\n".join(lines)


def _strip_port(endpoint: str) -> str:
    """`162.159.198.1:0` -> `162.159.198.1`, `[2606:4700::1]:0` -> `2606:4700::1`."""
    host = endpoint.rsplit(":", 1)[0] if endpoint.endswith(":0") else endpoint
    return host.strip("[]")


def _client_api_base(server: str) -> str:
    """The client API lives at the server's root; `/client/v4` is the admin API's."""
    return server.rstrip("/").removesuffix("/client/v4") + "/v0"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _call(method: str, url: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method=method,
        headers={
            "Content-Type": "application/json",
            "CF-Client-Version": CLIENT_VERSION,
            "User-Agent": f"warp-registry/{__version__}",
            **headers,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            envelope = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise _refusal(exc) from None
    return dict(envelope["result"])


def _refusal(exc: urllib.error.HTTPError) -> ClientApiError:
    try:
        errors = json.loads(exc.read()).get("errors") or [{}]
    except (ValueError, AttributeError):
        errors = [{}]
    first = errors[0] if isinstance(errors[0], dict) else {}
    return ClientApiError(exc.code, first.get("code"), str(first.get("message", exc.reason)))
