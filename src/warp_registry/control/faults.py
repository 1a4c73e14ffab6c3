"""Fault rules: make chosen requests fail (or slow down) on purpose, deterministically.

A rule matches a method and a path pattern (shell-style: `*` matches any run of
characters, `/` included) and answers with a status, an error code, an optional
`Retry-After` and extra headers, after an optional added latency; a rule without a
status only adds the latency. It fires for the next N matching requests, or for each
matching request with a probability drawn from its seed (the n-th matching request
fires or not the same way on every run), or for every matching request.
"""

from __future__ import annotations

import fnmatch
import random
import re
from dataclasses import dataclass, field
from typing import Any

from warp_registry.clock import format_rfc3339
from warp_registry.errors import ControlRequestInvalid
from warp_registry.http.envelope import error_body
from warp_registry.http.request import JSON_HEADERS, Response
from warp_registry.store.sql_store import SqlStore

# What a rule answers when it names a status but no code (our choice, docs/control-plane.md).
_DEFAULT_ERRORS: dict[int, tuple[int, str]] = {
    429: (971, "Please wait and consider throttling your request speed"),
    500: (10001, "Internal server error"),
    503: (10002, "The registry store is unavailable; try again"),
}
_FALLBACK_ERROR = (1000, "Fault injected by warp-registry")
_METHODS = frozenset({"*", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
_HEADER_NAME = re.compile(r"[A-Za-z0-9-]{1,64}")
_FIELDS = frozenset({"method", "path", "status", "code", "message", "retry_after",
                     "latency_ms", "headers", "times", "probability", "seed"})  # fmt: skip


@dataclass(slots=True)
class FaultRule:
    id: str
    method: str
    path: str
    status: int | None
    code: int
    message: str
    retry_after: int | None
    latency_ms: int
    headers: dict[str, str]
    times: int | None
    probability: float | None
    seed: int
    exhausted: bool = field(default=False)

    def matches(self, method: str, path: str) -> bool:
        if self.method != "*" and self.method != method:
            return False
        return fnmatch.fnmatchcase(path, self.path)

    def response(self) -> Response:
        """The error this rule answers with (only for rules with a status)."""
        assert self.status is not None
        headers = list(JSON_HEADERS)
        if self.retry_after is not None:
            headers.append((b"retry-after", str(self.retry_after).encode()))
        headers.extend((k.lower().encode(), v.encode()) for k, v in self.headers.items())
        body = error_body([{"code": self.code, "message": self.message}])
        return Response(self.status, body, headers)


def parse_fault(body: Any) -> dict[str, Any]:
    """Validate a rule as posted; returns its normalised spec. Raises ControlRequestInvalid."""
    if not isinstance(body, dict):
        raise ControlRequestInvalid("a fault rule is a JSON object")
    unknown = set(body) - _FIELDS
    if unknown:
        raise ControlRequestInvalid(f"unknown fault rule fields: {', '.join(sorted(unknown))}")

    method = _text(body, "method", "*").upper()
    if method not in _METHODS:
        raise ControlRequestInvalid(f"method must be one of {', '.join(sorted(_METHODS))}")
    status = _integer(body, "status", None, 100, 599)
    if status is None and not body.get("latency_ms"):
        raise ControlRequestInvalid("a fault rule needs a status, a latency_ms, or both")
    default_code, default_message = _DEFAULT_ERRORS.get(status or 0, _FALLBACK_ERROR)
    times = _integer(body, "times", None, 1, 1_000_000)
    probability = body.get("probability")
    if probability is not None:
        if isinstance(probability, bool) or not isinstance(probability, int | float):
            raise ControlRequestInvalid("probability must be a number from 0 to 1")
        if not 0 <= probability <= 1:
            raise ControlRequestInvalid("probability must be a number from 0 to 1")
        if times is not None:
            raise ControlRequestInvalid("give times or probability, not both")

    return {
        "method": method,
        "path": _text(body, "path", "*"),
        "status": status,
        "code": _integer(body, "code", default_code, 1, 99_999),
        "message": _text(body, "message", default_message),
        "retry_after": _integer(body, "retry_after", None, 0, 86_400),
        "latency_ms": _integer(body, "latency_ms", 0, 0, 60_000),
        "headers": _headers(body.get("headers")),
        "times": times,
        "probability": None if probability is None else float(probability),
        "seed": _integer(body, "seed", 0, -(2**62), 2**62),
    }


def rule_from_spec(rule_id: str, spec: dict[str, Any], remaining: int | None) -> FaultRule:
    rule = FaultRule(id=rule_id, **spec)
    rule.exhausted = rule.times is not None and (remaining or 0) <= 0
    return rule


def rule_to_api(
    row: tuple[str, int, dict[str, Any], int | None, int, int],
) -> dict[str, Any]:
    """A stored rule as the control plane shows it."""
    rule_id, created_at, spec, remaining, seen, fired = row
    return {"id": rule_id, **spec, "remaining": remaining, "matched": seen, "fired": fired,
            "created_at": format_rfc3339(created_at)}  # fmt: skip


async def pick(store: SqlStore, rules: list[FaultRule], method: str, path: str) -> FaultRule | None:
    """The first rule that fires for this request, counting the request in the store."""
    for rule in rules:
        if rule.exhausted or not rule.matches(method, path):
            continue
        if rule.times is not None:
            if await store.control.take_fault(rule.id):
                return rule
            rule.exhausted = True  # another worker may have used the last one
            continue
        if rule.probability is None:
            if await store.control.see_fault(rule.id, fired=True) is not None:
                return rule
            continue
        number = await store.control.see_fault(rule.id)
        if number is not None and _draw(rule.seed, number) < rule.probability:
            await store.control.count_firing(rule.id)
            return rule
    return None


def _draw(seed: int, number: int) -> float:
    """The n-th matching request's draw in [0, 1): the same for a seed on every run."""
    return random.Random(f"{seed}:{number}").random()


def _text(body: dict[str, Any], name: str, default: str) -> str:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str) or not 0 < len(value) <= 1000:
        raise ControlRequestInvalid(f"{name} must be a non-empty string")
    return value


def _integer(body: dict[str, Any], name: str, default: int | None, low: int, high: int) -> Any:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ControlRequestInvalid(f"{name} must be an integer from {low} to {high}")
    return value


def _headers(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 20:
        raise ControlRequestInvalid("headers must be an object of at most 20 names")
    for name, text in value.items():
        if _HEADER_NAME.fullmatch(name) is None or not isinstance(text, str):
            raise ControlRequestInvalid(f"bad header {name!r}")
        if any(ord(c) < 32 or ord(c) > 126 for c in text) or len(text) > 1000:
            raise ControlRequestInvalid(f"bad value for header {name!r}")
    return {name.lower(): text for name, text in value.items()}
