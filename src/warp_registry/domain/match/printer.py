"""Writing a tree back as text: `parse(to_text(tree)) == tree` for every tree `parse` makes.

The output is canonical: operators in their symbol or lower-case word form (`==`, `and`),
sets separated by spaces, strings with escapes only where needed, and parentheses only
where the tree needs them. Regexes are written so that the parser reads back the same
pattern: in plain quotes when the pattern holds no `"`, else as a raw string.
"""

from __future__ import annotations

from warp_registry.domain.match.nodes import (
    PRECEDENCE,
    Comparison,
    Logical,
    Node,
    Not,
    Quantifier,
    Regex,
    Selector,
)

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def to_text(node: Node) -> str:
    """The canonical text of a tree."""
    if isinstance(node, Comparison):
        return f"{_selector(node.selector)} {node.op} {_value(node.value)}"
    if isinstance(node, Not):
        return f"not {_operand(node.operand)}"
    if isinstance(node, Quantifier):
        return f"{node.kind}({to_text(node.operand)})"
    return f" {node.op} ".join(_item(item, node.op) for item in node.items)


def _operand(node: Node) -> str:
    """`not`'s operand: a join needs parentheses, as `not` binds tighter than any."""
    return f"({to_text(node)})" if isinstance(node, Logical) else to_text(node)


def _item(node: Node, op: str) -> str:
    """An operand of `op`: parenthesised if its own operator binds no tighter.

    Equal operators are parenthesised too: `(a and b) and c` is a different tree from
    `a and b and c`, and the text must say which.
    """
    if isinstance(node, Logical) and PRECEDENCE[node.op] <= PRECEDENCE[op]:
        return f"({to_text(node)})"
    return to_text(node)


def _selector(selector: Selector) -> str:
    if selector.each:
        return f"{selector.name}[*]"
    if selector.index is not None:
        return f"{selector.name}[{selector.index}]"
    return selector.name


def _value(value: str | tuple[str, ...] | Regex) -> str:
    if isinstance(value, Regex):
        return regex_literal(value.source)
    if isinstance(value, tuple):
        return "{" + " ".join(string_literal(item) for item in value) + "}"
    return string_literal(value)


def string_literal(value: str) -> str:
    """`value` as a double-quoted string with wirefilter's escapes."""
    out = []
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def regex_literal(source: str) -> str:
    """A regex literal that reads back as `source`.

    In plain quotes a regex keeps its backslashes, so only `"` needs care; a pattern
    holding one is written raw, with enough `#` that no `"#...` inside ends it early.
    """
    if '"' not in source:
        return f'"{source}"'
    hashes = 1
    while '"' + "#" * hashes in source:
        hashes += 1
    fence = "#" * hashes
    return f'r{fence}"{source}"{fence}'
