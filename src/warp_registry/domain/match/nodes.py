"""The syntax tree of a match expression.

Every node records `pos`, the offset in the source where it starts, for error messages;
positions take no part in equality, so the tree of an expression and the tree of its
printed form (`printer.to_text`) compare equal. Parentheses leave no node: the tree's
shape already says what they grouped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Comparison operators, in their canonical spelling (the parser also takes `eq`, `ne`, `~`).
EQUAL = "=="
NOT_EQUAL = "!="
CONTAINS = "contains"
MATCHES = "matches"
IN = "in"

# Logical operators, from the loosest to the tightest binding.
OR = "or"
XOR = "xor"
AND = "and"
PRECEDENCE = {OR: 1, XOR: 2, AND: 3}

ANY = "any"
ALL = "all"


@dataclass(frozen=True, slots=True)
class Selector:
    """A field of the registration: `os.name`, `identity.groups.name[0]`, `...name[*]`.

    `index` picks one element of a list field; `each` (`[*]`) compares every element,
    which only `any(...)` and `all(...)` can turn back into one answer.
    """

    name: str
    index: int | None = None
    each: bool = False
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Regex:
    """The right-hand side of `matches`: the pattern as the regex engine reads it."""

    source: str
    pos: int = field(default=0, compare=False)


Value = str | tuple[str, ...] | Regex


@dataclass(frozen=True, slots=True)
class Comparison:
    """`selector op value`; `value` is a tuple for `in`, a Regex for `matches`."""

    selector: Selector
    op: str
    value: Value
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Logical:
    """Two or more operands joined by one operator (`a and b and c` is one node)."""

    op: str
    items: tuple[Node, ...]
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Quantifier:
    """`any(...)` or `all(...)` over a comparison of list elements (`[*]`)."""

    kind: str
    operand: Node
    pos: int = field(default=0, compare=False)


Node = Comparison | Not | Logical | Quantifier


def is_vector(node: Node) -> bool:
    """Whether the node gives one answer per list element (it compares `[*]`)."""
    while True:
        if isinstance(node, Comparison):
            return node.selector.each
        if isinstance(node, Quantifier):
            return False
        node = node.operand if isinstance(node, Not) else node.items[0]
