"""Evaluating a parsed match expression against one registration's user and device.

Evaluation never raises. A selector with no value (a service token has no email, a user
no service token, a device may not report its OS version) makes every comparison on it
false, `!=` included: `identity.email != "a@example.com"` is false for a service token,
and `not identity.email == "a@example.com"` is true. Strings compare exactly, case and
all (as in wirefilter); emails are stored in lower case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from warp_registry.domain.match.nodes import (
    ALL,
    AND,
    CONTAINS,
    EQUAL,
    IN,
    MATCHES,
    NOT_EQUAL,
    OR,
    Comparison,
    Node,
    Not,
    Quantifier,
    Regex,
)
from warp_registry.domain.match.patterns import MAX_SUBJECT, RegexRejected, compile_pattern


@dataclass(frozen=True, slots=True)
class Group:
    """One of the user's identity-provider groups."""

    id: str | None = None
    name: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class Facts:
    """What a match expression can see. None means "no value" (see the module doc).

    `groups` is None when there is no user at all (a service token), and empty for a
    user in no group: `all(...)` is false for the first and true for the second.
    """

    email: str | None = None
    groups: tuple[Group, ...] | None = None
    service_token_uuid: str | None = None
    os_name: str | None = None
    os_version: str | None = None


def evaluate(node: Node, facts: Facts) -> bool:
    """Whether the expression holds for `facts`."""
    if isinstance(node, Comparison):
        return _compare(node, _scalar(node, facts))
    if isinstance(node, Not):
        return not evaluate(node.operand, facts)
    if isinstance(node, Quantifier):
        if facts.groups is None:  # every list selector is about groups
            return False
        answers = _each(node.operand, facts)
        return any(answers) if node.kind != ALL else all(answers)
    if node.op == AND:
        return all(evaluate(item, facts) for item in node.items)
    if node.op == OR:
        return any(evaluate(item, facts) for item in node.items)
    return sum(evaluate(item, facts) for item in node.items) % 2 == 1


def _each(node: Node, facts: Facts) -> list[bool]:
    """One answer per group, for a `[*]` expression (inside any() or all()).

    Operands are combined element by element, as wirefilter does; every list field has
    one element per group, so the lists line up.
    """
    if isinstance(node, Comparison):
        return [_compare(node, value) for value in _list(node.selector.name, facts)]
    if isinstance(node, Not):
        return [not answer for answer in _each(node.operand, facts)]
    if isinstance(node, Quantifier):  # not reachable from the parser: any() is scalar
        return []

    columns = [_each(item, facts) for item in node.items]
    rows = zip(*columns, strict=False)
    if node.op == AND:
        return [all(row) for row in rows]
    if node.op == OR:
        return [any(row) for row in rows]
    return [sum(row) % 2 == 1 for row in rows]


def _scalar(node: Comparison, facts: Facts) -> str | None:
    selector = node.selector
    if selector.index is not None:
        values = _list(selector.name, facts)
        return values[selector.index] if selector.index < len(values) else None
    if selector.name == "identity.email":
        return facts.email
    if selector.name == "identity.service_token_uuid":
        return facts.service_token_uuid
    if selector.name == "os.name":
        return facts.os_name
    if selector.name == "os.version":
        return facts.os_version
    return None


def _list(name: str, facts: Facts) -> Sequence[str | None]:
    if facts.groups is None:
        return []
    if name == "identity.groups.name":
        return [group.name for group in facts.groups]
    if name == "identity.groups.id":
        return [group.id for group in facts.groups]
    if name == "identity.groups.email":
        return [group.email for group in facts.groups]
    return []


def _compare(node: Comparison, value: str | None) -> bool:
    if value is None:
        return False
    expected = node.value
    if node.op == EQUAL:
        return value == expected
    if node.op == NOT_EQUAL:
        return value != expected
    if node.op == CONTAINS:
        return isinstance(expected, str) and expected in value
    if node.op == IN:
        return isinstance(expected, tuple) and value in expected
    if node.op == MATCHES and isinstance(expected, Regex):
        return _matches(expected.source, value)
    return False


def _matches(source: str, value: str) -> bool:
    if len(value) > MAX_SUBJECT:
        return False
    try:
        return compile_pattern(source).search(value) is not None
    except RegexRejected:  # a pattern stored before today's rules: it matches nothing
        return False
