"""The rows of a seeded fleet, made in a child process of `warp-registry seed`.

`generate_rows` runs in a spawned process (store/seeding.py starts it) and sends, in
order: the users, then chunks of (device rows, tag rows, registration rows) of CHUNK
registrations each, then the SeedResult. Rows are plain tuples in the column order of the
INSERT statements in store/seeding.py, sent as `marshal` bytes; everything is derived
from the run's RNG seed, so the same seed makes the same fleet. The fleet's shape is
described in store/seeding.py's docstring.
"""

from __future__ import annotations

import base64
import json
import marshal
import os
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from warp_registry.demo import FIRST_NAMES, GROUPS, LAST_NAMES
from warp_registry.domain.enrollment import VIRTUAL_IPV4_NETWORK

DAY_US = 86_400 * 1_000_000
CHUNK = 20_000  # registrations per executemany batch (and per progress update)
_PARENT_CHECK_S = 0.5

# Shares of the seeded fleet (see the module docstring).
REENROLL_EVERY = 10
SERVICE_TOKEN_SHARE = 0.03
REVOKED_SHARE = 0.02
MASQUE_SHARE = 0.4
DEVICES_PER_USER = 2

_SITES = ["berlin", "lisbon", "austin"]
# device_type, model, manufacturer, os_version, name pattern, client_version; laptops at
# even device positions and phones at odd ones, so each user has one of each.
_LAPTOPS = [
    ("mac", "MacBookPro18,3", "Apple Inc.", "15.6.1", "{u}-MacBook-Pro-{tag}", "2026.7.1377.0"),
    ("windows", "Latitude 7440", "Dell Inc.", "10.0.22631", "DESKTOP-{tag}", "2026.6.1325.0"),
    ("linux", "ThinkPad X1 Carbon Gen 11", "LENOVO", "6.8.0", "{u}-thinkpad-{tag}",
     "2026.7.1377.0"),
]  # fmt: skip
_PHONES = [
    ("ios", "iPhone15,2", "Apple Inc.", "18.5", "{u}'s iPhone {tag}", "1.1.1.1/6.23"),
    ("android", "Pixel 8", "Google", "15", "Pixel-8-{tag}", "a-6.81-4616"),
]

# P-256: keys are consecutive multiples of the generator (k0·G, (k0+1)·G, ...), each
# found from the previous one with one point addition: real, distinct public keys at a
# few microseconds each instead of tens for a fresh private key.
_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
_GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
_GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5
_A = _P - 3
# DER SubjectPublicKeyInfo of an uncompressed P-256 point, up to the point itself.
_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")


@dataclass(frozen=True, slots=True)
class SeedResult:
    """What one seeding run wrote."""

    account_id: str
    registrations: int
    devices: int
    users: int
    first_registration_id: str | None


@dataclass(frozen=True)
class SeedAccount:
    id: str
    ipv6_base: int
    profile_id: str
    profile_name: str
    free_hosts: list[int]
    # The account's address marks once the seed is in (store/enrollment.py): past every
    # host in use, so the next enrollment probes a few free hosts instead of reading all.
    marks_after: tuple[int | None, int | None]


@dataclass(frozen=True, slots=True)
class PlanArgs:
    """What the generating process needs to make the rows (picklable)."""

    rng_seed: str
    account: SeedAccount
    count: int
    now: int


def generate_rows(args: PlanArgs, queue: Any, parent_pid: int) -> None:
    """Child process: make the rows and send them in order: users, chunks, the result."""
    threading.Thread(
        target=_exit_with_parent, args=(parent_pid,), name="parent-watch", daemon=True
    ).start()
    try:
        plan = _Plan(random.Random(args.rng_seed), args.account, args.count, args.now)
        queue.put(("users", marshal.dumps(plan.users())))
        for chunk in plan.chunks():
            queue.put(("chunk", marshal.dumps(chunk)))
        queue.put(("done", plan.result()))
    except Exception as exc:  # reported to the parent, which fails the seed
        queue.put(("error", repr(exc)))


def _exit_with_parent(parent_pid: int) -> None:
    """End this process as soon as the seeding process is gone.

    A parent killed with -9 cannot stop its child, and nobody reads the queue any more:
    the child would block for ever, on a full queue or, after its last message, in the
    queue's writer thread that exit waits for, an orphan holding its rows in memory.
    `os._exit` skips that wait; there is nothing of ours left to clean up.
    """
    while True:
        time.sleep(_PARENT_CHECK_S)
        if os.getppid() != parent_pid:
            os._exit(1)


class _Plan:
    """Makes the rows of one seeding run, deterministically from its RNG."""

    def __init__(self, rng: random.Random, account: SeedAccount, count: int, now: int) -> None:
        self.rng = rng
        self.account = account
        self.count = count
        self.now = now
        self.batch = f"{rng.getrandbits(24):06x}"  # keeps emails unique across runs
        self.device_count = count - count // REENROLL_EVERY
        self.user_count = max(1, -(-self.device_count // DEVICES_PER_USER))
        self.user_ids = [_uuid(rng) for _ in range(self.user_count)]
        self.user_emails: list[str] = []
        self.user_sort_emails: list[str] = []  # folded once per user, not per device
        self.user_names: list[str] = []
        self.first_id: str | None = None
        self._key = _P256Walk(rng)

    def result(self) -> SeedResult:
        return SeedResult(
            self.account.id, self.count, self.device_count, self.user_count, self.first_id
        )

    def users(self) -> list[tuple[Any, ...]]:
        rows = []
        for index, user_id in enumerate(self.user_ids):
            first, last = FIRST_NAMES[index % len(FIRST_NAMES)], self.rng.choice(LAST_NAMES)
            group = GROUPS[index % len(GROUPS)]
            domain = "contractors.example.com" if group == "contractors" else "example.com"
            email = f"{first}.{last}.{self.batch}{index}@{domain}"
            name = f"{first.title()} {last.title()}"
            created = self.now - self.rng.randint(120, 400) * DAY_US
            groups = json.dumps([{"id": f"group-{group}", "name": group}])
            self.user_emails.append(email)
            self.user_sort_emails.append(_ascii_lower(email))
            self.user_names.append(name)
            rows.append((user_id, self.account.id, email, name, groups, created, created))
        return rows

    def chunks(self) -> Iterator[tuple[list[tuple[Any, ...]], ...]]:
        """(device rows, tag rows, registration rows) per CHUNK registrations.

        A re-enrolled device's two registrations are always in the same chunk.
        """
        devices: list[tuple[Any, ...]] = []
        tags: list[tuple[Any, ...]] = []
        registrations: list[tuple[Any, ...]] = []
        device_index = 0
        index = 0
        while index < self.count:
            pair = 2 if index % REENROLL_EVERY == REENROLL_EVERY - 2 else 1
            pair = min(pair, self.count - index)
            device, device_tags, regs = self._device(device_index, index, pair)
            devices.append(device)
            tags.extend(device_tags)
            registrations.extend(regs)
            device_index += 1
            index += pair
            if len(registrations) >= CHUNK:
                yield devices, tags, registrations
                devices, tags, registrations = [], [], []
        if registrations:
            yield devices, tags, registrations

    def _device(
        self, position: int, first_reg: int, count: int
    ) -> tuple[tuple[Any, ...], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """One device with its `count` registrations (the older one revoked when two)."""
        rng = self.rng
        device_id = _uuid(rng)
        if self.first_id is None:
            self.first_id = device_id
        platforms = _LAPTOPS if position % 2 == 0 else _PHONES
        kind, model, maker, os_version, pattern, version = platforms[position // 2 % len(platforms)]
        user = None if rng.random() < SERVICE_TOKEN_SHARE else position // DEVICES_PER_USER
        email = self.user_emails[user] if user is not None else ""
        handle = email.split(".")[0] if email else "device"
        created = self.now - (95 + int(rng.random() * 206)) * DAY_US

        regs = []
        reg_created = created + int(rng.random() * DAY_US)
        for offset in range(count):
            reg_id = device_id if offset == 0 else _uuid(rng)
            replaced = offset < count - 1
            regs.append(self._registration(reg_id, device_id, user, reg_created, first_reg + offset,
                                           replaced))  # fmt: skip
            reg_created += (1 + int(rng.random() * 30)) * DAY_US // 10

        last = max(regs, key=lambda r: r[18])  # most recently seen registration
        active = sum(1 for r in regs if r[19] is None)
        tags_json, tag_pairs = _TAG_TABLE[position % len(_TAG_TABLE)]
        device = (
            device_id, self.account.id, pattern.format(u=handle, tag=f"{rng.getrandbits(24):06X}"),
            created, created, version, kind, model, maker, f"{rng.getrandbits(64):016X}", None,
            rng.randbytes(6).hex(":"), os_version, None,
            base64.urlsafe_b64encode(rng.randbytes(16)).decode()[:22], None,
            tags_json, last[18], last[3], last[0], active,
            version, last[18], self.user_sort_emails[user] if user is not None else "",
        )  # fmt: skip
        return device, [(device_id, k, v) for k, v in tag_pairs], regs

    def _registration(
        self, reg_id: str, device_id: str, user: int | None, created: int, number: int,
        replaced: bool,
    ) -> tuple[Any, ...]:  # fmt: skip
        rng = self.rng
        masque = rng.random() < MASQUE_SHARE
        key = self._key.next() if masque else base64.b64encode(rng.randbytes(32)).decode()
        last_seen = max(self.now - int(rng.random() * 90 * DAY_US), created)
        revoked = replaced or rng.random() < REVOKED_SHARE
        revoked_at = last_seen + 1 if revoked else None
        host = self.account.free_hosts[number]
        ipv4 = socket.inet_ntop(
            socket.AF_INET, (int(VIRTUAL_IPV4_NETWORK.network_address) + host).to_bytes(4, "big")
        )
        ipv6_bytes = (self.account.ipv6_base + host).to_bytes(16, "big")
        ipv6 = socket.inet_ntop(socket.AF_INET6, ipv6_bytes)
        user_id = self.user_ids[user] if user is not None else None
        return (
            reg_id, self.account.id, device_id, user_id,
            self.user_emails[user] if user is not None else "",
            self.user_names[user] if user is not None else "",
            self.account.profile_id, self.account.profile_name, created, key,
            "secp256r1" if masque else "curve25519", "masque" if masque else "wireguard",
            "warp", ipv4, ipv6, rng.randbytes(20).hex(), created, revoked_at or created,
            last_seen, revoked_at, None if user is not None else _uuid(rng), None,
        )  # fmt: skip


def _tags(position: int) -> dict[str, str]:
    """Tags as the demo gives them: `os` and `site` on most devices, some `compliance`."""
    if position % 4 == 3:
        return {}
    platforms = _LAPTOPS if position % 2 == 0 else _PHONES
    kind = platforms[position // 2 % len(platforms)][0]
    tags = {"os": kind, "site": _SITES[position % len(_SITES)]}
    if position % 5 == 0:
        tags["compliance"] = "pci"
    return tags


# A device's tags depend only on its position modulo 60 (the periods 2, 3, 4 and 5 above):
# made once, as the JSON the API shows and as the (key, value) rows the filter reads.
_TAG_TABLE = [
    (json.dumps(tags, separators=(",", ":")), list(tags.items()))
    for tags in (_tags(position) for position in range(60))
]


class _P256Walk:
    """Distinct real P-256 public keys: (k+1)·G, (k+2)·G, ... for a random k.

    Made `_BATCH` at a time as base + j·G (j = 1.._BATCH, a table made once), sharing one
    modular inversion among the batch (Montgomery's trick): a few microseconds per key
    instead of tens for a fresh private key.
    """

    def __init__(self, rng: random.Random) -> None:
        self._base = _scalar_mult(rng.randrange(2, 2**255))
        self._ready: list[str] = []

    def next(self) -> str:
        if not self._ready:
            self._ready = self._batch()
        return self._ready.pop()

    def _batch(self) -> list[str]:
        bx, by = self._base
        diffs = [(tx - bx) % _P for tx, _ in _MULTIPLES]
        prefix = []
        product = 1
        for d in diffs:
            prefix.append(product)
            product = product * d % _P
        inverse = pow(product, -1, _P)
        keys = []
        for index in range(len(diffs) - 1, -1, -1):
            inv = inverse * prefix[index] % _P
            inverse = inverse * diffs[index] % _P
            tx, ty = _MULTIPLES[index]
            slope = (ty - by) * inv % _P
            x = (slope * slope - bx - tx) % _P
            y = (slope * (bx - x) - by) % _P
            if index == len(diffs) - 1:
                self._base = (x, y)  # base + _BATCH·G: where the next batch starts
            point = b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")
            keys.append(base64.b64encode(_SPKI_PREFIX + point).decode())
        return keys


def _add(p: tuple[int, int], q: tuple[int, int]) -> tuple[int, int]:
    """p + q on P-256 for p != ±q (never met by the walk: k stays far below the order)."""
    slope = (q[1] - p[1]) * pow(q[0] - p[0], -1, _P) % _P
    x = (slope * slope - p[0] - q[0]) % _P
    return x, (slope * (p[0] - x) - p[1]) % _P


def _double(p: tuple[int, int]) -> tuple[int, int]:
    slope = (3 * p[0] * p[0] + _A) * pow(2 * p[1], -1, _P) % _P
    x = (slope * slope - 2 * p[0]) % _P
    return x, (slope * (p[0] - x) - p[1]) % _P


def _scalar_mult(k: int) -> tuple[int, int]:
    """k·G by double-and-add (k ≥ 1; run once per seeding run, so speed does not matter)."""
    result: tuple[int, int] | None = None
    addend = (_GX, _GY)
    while k:
        if k & 1:
            result = addend if result is None else _add(result, addend)
        addend = _double(addend)
        k >>= 1
    assert result is not None
    return result


def _multiples(count: int) -> list[tuple[int, int]]:
    """G, 2·G, ..., count·G."""
    points = [(_GX, _GY)]
    points.append(_double(points[0]))
    while len(points) < count:
        points.append(_add(points[-1], points[0]))
    return points


_BATCH = 256
_MULTIPLES = _multiples(_BATCH)


def _uuid(rng: random.Random) -> str:
    """A random version-4 UUID string (as uuid.UUID would print it, at a third of its cost)."""
    n = rng.getrandbits(128) & _UUID_CLEAR | _UUID_SET
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_SET = (0x4000 << 64) | (0x8000 << 48)


def _ascii_lower(text: str) -> str:
    """lower() as SQLite and the "C" collation fold: ASCII letters only (devices.py)."""
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
