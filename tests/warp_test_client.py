"""A WARP client at the protocol level, for the tests, written from the protocol reference.

It is deliberately independent of warp-registry's own code (the CLI's `enroll` included):
requests are built the way the reference (warp-client-protocol.md) shows real clients
building them, keys are made with `cryptography` directly, and responses are read as
plain JSON. Two flows:

- wgcf (Android flavour, §2.1): `POST /v0a1922/reg` with an X25519 public key, `tos`,
  `install_id`, `fcm_token`, `model`, `type`, `locale`, headers `CF-Client-Version:
  a-6.3-1922` and `User-Agent: okhttp/3.12.1`; later calls with `Authorization: Bearer`.
- usque (§2.4): `POST /v0a4471/reg` with a throwaway 32-byte key and a random 16-hex
  serial number, then `PATCH /v0a4471/reg/{id}` with a P-256 key as base64 DER
  SubjectPublicKeyInfo, `key_type: secp256r1`, `tunnel_type: masque` and a name.

Zero Trust enrollment adds `Cf-Access-Jwt-Assertion` (§3), or a service token.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519


def wireguard_key_pair() -> tuple[x25519.X25519PrivateKey, str]:
    """An X25519 key and its public half as std base64 of 32 bytes (wgcf's format)."""
    private = x25519.X25519PrivateKey.generate()
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return private, base64.b64encode(public).decode()


def masque_key_pair() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A P-256 key and its public half as base64 DER SubjectPublicKeyInfo (usque's)."""
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, base64.b64encode(der).decode()


@dataclass
class Identity:
    """The enrollment credential: an Access JWT, or a service token's id and secret."""

    jwt: str | None = None
    client_id: str | None = None
    client_secret: str | None = None

    def headers(self) -> dict[str, str]:
        if self.jwt is not None:
            return {"Cf-Access-Jwt-Assertion": self.jwt}
        if self.client_id is not None:
            return {
                "CF-Access-Client-Id": self.client_id,
                "CF-Access-Client-Secret": self.client_secret or "",
            }
        return {}


@dataclass
class Registered:
    """What a client keeps after `POST /reg`: the id, the token and the first answer."""

    id: str
    token: str
    result: dict[str, Any]
    private_key: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class WarpTestClient:
    """One WARP client installation: fixed version path, client version and device ids."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        version: str = "v0a1922",
        client_version: str = "a-6.3-1922",
        user_agent: str = "okhttp/3.12.1",
        serial_number: str | None = None,
        install_id: str | None = None,
    ) -> None:
        self.http = http
        self.version = version
        self.headers = {
            "CF-Client-Version": client_version,
            "User-Agent": user_agent,
            "Content-Type": "application/json; charset=UTF-8",
        }
        self.serial_number = serial_number or secrets.token_hex(8)
        self.install_id = install_id if install_id is not None else secrets.token_urlsafe(16)[:22]

    def path(self, suffix: str = "") -> str:
        return f"/{self.version}/reg{suffix}"

    async def post_reg(self, identity: Identity, body: dict[str, Any]) -> httpx.Response:
        """`POST /reg` with any body (bad-input tests use this directly)."""
        return await self.http.post(
            self.path(), json=body, headers={**self.headers, **identity.headers()}
        )

    def wgcf_body(self, public_key: str) -> dict[str, Any]:
        """The body wgcf sends (§2.1), with this installation's ids."""
        return {
            "key": public_key,
            "install_id": self.install_id,
            "fcm_token": f"{self.install_id}:APA91b{secrets.token_urlsafe(100)[:134]}",
            "tos": "2026-01-02T03:04:05.678+02:00",
            "model": "Pixel 7 Pro",
            "serial_number": self.serial_number,
            "type": "Android",
            "locale": "en_US",
        }

    async def register_wireguard(self, identity: Identity) -> Registered:
        """Enroll as wgcf does; fails the test on anything but a 200 with a token."""
        private, public = wireguard_key_pair()
        response = await self.post_reg(identity, self.wgcf_body(public))
        assert response.status_code == 200, response.text
        result = response.json()["result"]
        return Registered(result["id"], result["token"], result, private)

    async def register_usque(self, identity: Identity) -> Registered:
        """usque's step 1: a throwaway 32-byte key it never uses."""
        body = {
            "key": base64.b64encode(secrets.token_bytes(32)).decode(),
            "install_id": "",
            "fcm_token": "",
            "tos": "2026-01-02T03:04:05.123456789Z",
            "model": "PC",
            "serial_number": self.serial_number,
            "os_version": "",
            "key_type": "curve25519",
            "tunnel_type": "wireguard",
            "locale": "en_US",
        }
        response = await self.post_reg(identity, body)
        assert response.status_code == 200, response.text
        result = response.json()["result"]
        return Registered(result["id"], result["token"], result)

    async def get(self, reg: Registered) -> httpx.Response:
        return await self.http.get(self.path(f"/{reg.id}"), headers={**self.headers, **reg.auth})

    async def patch(self, reg: Registered, body: dict[str, Any]) -> httpx.Response:
        return await self.http.patch(
            self.path(f"/{reg.id}"), json=body, headers={**self.headers, **reg.auth}
        )

    async def enroll_masque(self, reg: Registered, name: str | None = None) -> httpx.Response:
        """usque's step 2: PATCH a fresh P-256 key and switch the tunnel to MASQUE."""
        private, public = masque_key_pair()
        body: dict[str, Any] = {"key": public, "key_type": "secp256r1", "tunnel_type": "masque"}
        if name is not None:
            body["name"] = name
        response = await self.patch(reg, body)
        reg.private_key = private
        reg.extra["masque_public_key"] = public
        return response

    async def delete(self, reg: Registered) -> httpx.Response:
        return await self.http.delete(self.path(f"/{reg.id}"), headers={**self.headers, **reg.auth})
