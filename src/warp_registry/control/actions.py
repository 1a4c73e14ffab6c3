"""Control actions over a store, shared by the control-plane handlers and the CLI.

Each action writes the store and applies what this process must know at once (the clock);
other processes pick the change up from the store (see `runtime.py`).
"""

from __future__ import annotations

import hmac
import secrets
import string
from typing import Any

import orjson

from warp_registry import demo
from warp_registry.bootstrap import InitResult, initialise
from warp_registry.clock import format_rfc3339, real_now_us, set_server_clock
from warp_registry.errors import ControlRequestInvalid
from warp_registry.secrets import hash_secret
from warp_registry.store.sql_store import SqlStore

ADMIN_TOKEN_SETTING = "admin_token_hash"
FROZEN_SETTING = "clock_frozen_us"
OFFSET_SETTING = "clock_offset_us"
JOURNAL_SETTING = "journal_size"
EXPORT_FORMAT = "warp-registry-export"
MAX_SEED_DEVICES = 20_000

# Admin tokens carry a prefix API tokens never have (those are 40 letters and digits),
# so one is never mistaken for the other, by a person or by a lookup.
ADMIN_TOKEN_PREFIX = "wradmin-"
_ALPHABET = string.ascii_letters + string.digits


# --- the admin token ---


def new_admin_token() -> str:
    return ADMIN_TOKEN_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(40))


async def ensure_admin_token(store: SqlStore) -> str | None:
    """Create the admin token if the registry has none; returns it (None if one existed)."""
    if ADMIN_TOKEN_SETTING in await store.control.settings():
        return None
    return await rotate_admin_token(store)


async def rotate_admin_token(store: SqlStore) -> str:
    """Replace the admin token with a new one and return it (stored only as a hash)."""
    token = new_admin_token()
    await store.control.update_settings({ADMIN_TOKEN_SETTING: hash_secret(token)})
    return token


async def is_admin_token(store: SqlStore, token: str) -> bool:
    stored = (await store.control.settings()).get(ADMIN_TOKEN_SETTING)
    return stored is not None and hmac.compare_digest(stored, hash_secret(token))


# --- the server clock ---


def clock_from_settings(settings: dict[str, str]) -> tuple[int | None, int]:
    frozen = settings.get(FROZEN_SETTING)
    return (None if frozen is None else int(frozen)), int(settings.get(OFFSET_SETTING, "0"))


async def clock_state(store: SqlStore) -> dict[str, Any]:
    """The server clock as the store holds it: now, frozen or not, offset from real time."""
    frozen, offset = clock_from_settings(await store.control.settings())
    now = frozen if frozen is not None else real_now_us() + offset
    shown_offset = (now - real_now_us()) if frozen is not None else offset
    return {"now": format_rfc3339(now), "frozen": frozen is not None,
            "offset_seconds": round(shown_offset / 1_000_000, 6)}  # fmt: skip


async def change_clock(store: SqlStore, action: str, value_us: int | None = None) -> dict[str, Any]:
    """`freeze` (at `value_us`, or now), `set` (to `value_us`), `advance` (by `value_us`),
    `resume` (run on from where it stands) or `reset` (the machine's clock)."""
    frozen, offset = clock_from_settings(await store.control.settings())
    real = real_now_us()
    now = frozen if frozen is not None else real + offset

    if action == "freeze":
        frozen = now if value_us is None else value_us
    elif action == "set" and value_us is not None:
        frozen, offset = (value_us, offset) if frozen is not None else (None, value_us - real)
    elif action == "advance" and value_us is not None:
        frozen, offset = (
            (frozen + value_us, offset) if frozen is not None else (None, offset + value_us)
        )
    elif action == "resume":
        frozen, offset = None, now - real
    elif action == "reset":
        frozen, offset = None, 0
    else:
        raise ControlRequestInvalid(f"clock action {action!r} needs a value or does not exist")

    await store.control.update_settings({
        FROZEN_SETTING: None if frozen is None else str(frozen),
        OFFSET_SETTING: str(offset) if offset else None,
    })  # fmt: skip
    set_server_clock(frozen, offset)
    return await clock_state(store)


# --- reset, seed, export, import ---


async def reset(
    store: SqlStore, *, demo_fleet: bool, seed: int, devices: int | None = None
) -> InitResult:
    """Empty the registry and create an account and token (and the demo fleet) as `init`
    does, in one transaction: if writing the new registry fails, the old one stays.
    Faults, journal, rate-limit counts and the clock go too."""
    if devices is not None and not 0 <= devices <= MAX_SEED_DEVICES:
        raise ControlRequestInvalid(f"devices must be from 0 to {MAX_SEED_DEVICES}")
    size = None if devices is None or devices == 0 else demo_size(devices)
    with_demo = demo_fleet and devices != 0
    set_server_clock(None, 0)  # the new fleet is dated by the real clock
    return await initialise(store, seed=seed, with_demo=with_demo, size=size, replace=True)


def demo_size(devices: int) -> demo.DemoSize:
    """A demo fleet of `devices` devices, with users and special cases scaled to it."""
    return demo.DemoSize(
        users=max(3, min(devices, 2000)),
        devices=devices,
        shared_devices=devices // 4,
        revoked=devices // 6,
        browser_extensions=devices // 10,
    )


async def export_document(store: SqlStore) -> bytes:
    """The whole registry as one JSON document; the same registry gives the same bytes."""
    document = {
        "format": EXPORT_FORMAT,
        "schema_version": await store.schema_version(),
        "tables": await store.control.dump(),
    }
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


async def import_document(store: SqlStore, raw: bytes) -> None:
    """Replace the registry with an exported one (nothing changes if it is refused)."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ControlRequestInvalid(f"the export is not JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise ControlRequestInvalid(f"not a {EXPORT_FORMAT} document")
    if document.get("schema_version") != await store.schema_version():
        raise ControlRequestInvalid("the export was made by another schema version")
    tables = document.get("tables")
    if not isinstance(tables, dict) or not all(_is_table(t) for t in tables.values()):
        raise ControlRequestInvalid("tables must map names to {columns, rows}")
    try:
        await store.control.replace_data(tables)
    except ValueError as exc:
        raise ControlRequestInvalid(str(exc)) from None
    set_server_clock(None, 0)


def _is_table(table: Any) -> bool:
    if not isinstance(table, dict) or not isinstance(table.get("columns"), list):
        return False
    width = len(table["columns"])
    rows = table.get("rows")
    return isinstance(rows, list) and all(isinstance(r, list) and len(r) == width for r in rows)


# --- journal ---


async def set_journal_size(store: SqlStore, size: int) -> None:
    """Keep the newest `size` requests; 0 switches the journal off (and empties it)."""
    await store.control.update_settings({JOURNAL_SETTING: str(size) if size else None})
    await store.control.journal_prune(size)
