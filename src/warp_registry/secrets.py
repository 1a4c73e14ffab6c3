"""Credentials: how API tokens, global keys and client tokens are made and stored.

Secrets are long random strings, so a single SHA-256 is enough to store them: there is no
password to brute-force. Only the hash is kept; the secret is shown once, at creation.
"""

from __future__ import annotations

import hashlib
import secrets
import string

_TOKEN_ALPHABET = string.ascii_letters + string.digits
TOKEN_LENGTH = 40
GLOBAL_KEY_LENGTH = 37


def new_api_token() -> str:
    """A 40-character alphanumeric token, the length of Cloudflare's classic tokens."""
    return "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))


def new_global_key() -> str:
    """A 37-character lowercase hex key, the shape of a Cloudflare Global API Key."""
    return secrets.token_hex(19)[:GLOBAL_KEY_LENGTH]


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def mask(secret: str) -> str:
    """What logs and listings may show of a secret."""
    return secret[:4] + "…" if len(secret) > 8 else "…"
