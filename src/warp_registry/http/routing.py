"""A small path router: literal segments first, then typed parameters.

Routes are templates such as `/accounts/{account_id:account}/devices/{device_id:uuid}`.
A parameter's type says what a well-formed value looks like; a path that matches a route
in shape but carries a malformed id is answered with Cloudflare's 7003 "could not route"
error rather than "no route". Matching walks a tree of segments, so its cost depends on
the depth of the path, not on the number of routes.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from warp_registry import ids
from warp_registry.errors import InvalidObjectIdentifier, MethodNotAllowed, NoRoute
from warp_registry.http.request import Request, Response

Handler = Callable[[Request], Awaitable[Response]]


def _is_any(value: str) -> bool:
    return value != ""


# The WARP client API's version segment: `v0`, or `v0` + a platform letter + a build
# number (`v0a4471`, `v0i2308311933`). Clients pick builds freely; any build is served.
_CLIENT_VERSION = re.compile(r"v0(?:[a-z][0-9]{1,16})?")


def _is_client_version(value: str) -> bool:
    return _CLIENT_VERSION.fullmatch(value) is not None


def _is_client_registration(value: str) -> bool:
    """A registration id as clients send it: a UUID, or `t.<uuid>` (Zero Trust ids)."""
    return ids.is_uuid(value.removeprefix("t."))


def _client_registration(value: str) -> str:
    return value.removeprefix("t.").lower()


# Parameter type -> (check, normalise). UUIDs are accepted in any case and lowered.
_CONVERTERS: dict[str, tuple[Callable[[str], bool], Callable[[str], str]]] = {
    "account": (ids.is_account_id, str.lower),
    "uuid": (ids.is_uuid, str.lower),
    "str": (_is_any, str),
    "client_version": (_is_client_version, str),
    "client_registration": (_is_client_registration, _client_registration),
}


@dataclass(slots=True)
class Operation:
    """One method on one route, with the Cloudflare operation name it implements."""

    method: str
    template: str
    name: str
    handler: Handler
    implemented: bool = True


@dataclass(slots=True)
class _Node:
    literals: dict[str, _Node] = field(default_factory=dict)
    param: tuple[str, str, _Node] | None = None  # (name, type, child)
    operations: dict[str, Operation] = field(default_factory=dict)


class Router:
    def __init__(self) -> None:
        self._root = _Node()
        self.operations: list[Operation] = []

    def add(
        self, method: str, template: str, name: str, handler: Handler, *, implemented: bool = True
    ) -> None:
        node = self._root
        for segment in _segments(template):
            if segment.startswith("{"):
                param_name, _, param_type = segment[1:-1].partition(":")
                param_type = param_type or "str"
                if param_type not in _CONVERTERS:
                    raise ValueError(f"unknown parameter type in {template!r}")
                if node.param is None:
                    node.param = (param_name, param_type, _Node())
                elif node.param[:2] != (param_name, param_type):
                    raise ValueError(f"conflicting parameter at {template!r}")
                node = node.param[2]
            else:
                node = node.literals.setdefault(segment, _Node())

        if method in node.operations:
            raise ValueError(f"duplicate route {method} {template}")
        operation = Operation(method, template, name, handler, implemented)
        node.operations[method] = operation
        self.operations.append(operation)

    def resolve(self, method: str, path: str) -> tuple[Operation, dict[str, str]]:
        """Find the operation for a request, or raise the matching routing error."""
        segments = _segments(path)
        found = _match_straight(self._root, segments)
        if found is None:
            params: dict[str, str] = {}
            malformed: list[bool] = [False]
            node = _match(self._root, segments, 0, params, malformed)
            if node is None:
                if malformed[0]:
                    raise InvalidObjectIdentifier(path)
                raise NoRoute()
            found = node, params

        node, params = found
        operation = node.operations.get(method)
        if operation is None:
            if method == "HEAD" and "GET" in node.operations:
                return node.operations["GET"], params
            raise MethodNotAllowed(method, sorted(node.operations))
        return operation, params


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def _match_straight(root: _Node, segments: list[str]) -> tuple[_Node, dict[str, str]] | None:
    """The common case without backtracking: a literal where the path has one, else the
    parameter, every parameter well formed. None sends the request to `_match`, which
    tries the other branches and tells a malformed id from no route at all. Both agree
    when this finds a route: `_match` tries literals first too."""
    node = root
    params: dict[str, str] = {}
    for segment in segments:
        literal = node.literals.get(segment)
        if literal is not None:
            node = literal
            continue
        if node.param is None:
            return None
        name, param_type, node = node.param
        check, normalise = _CONVERTERS[param_type]
        if not check(segment):
            return None
        params[name] = normalise(segment)
    return (node, params) if node.operations else None


def _match(
    node: _Node, segments: list[str], index: int, params: dict[str, str], malformed: list[bool]
) -> _Node | None:
    if index == len(segments):
        return node if node.operations else None

    segment = segments[index]
    literal = node.literals.get(segment)
    if literal is not None:
        found = _match(literal, segments, index + 1, params, malformed)
        if found is not None:
            return found

    if node.param is None:
        return None

    name, param_type, child = node.param
    check, normalise = _CONVERTERS[param_type]
    # Try the rest of the path first, so that a malformed id is reported only when the
    # path would otherwise have matched a route.
    found = _match(child, segments, index + 1, params, malformed)
    if found is None:
        return None
    if not check(segment):
        malformed[0] = True
        return None
    params[name] = normalise(segment)
    return found
