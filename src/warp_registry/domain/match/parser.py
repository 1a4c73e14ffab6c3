"""Parsing match expressions into the tree of `nodes.py`.

The grammar (docs/profiles.md has it with examples):

    expression := term (("or" | "||" | "xor" | "^^" | "and" | "&&") term)*
    term       := ("not" | "!") term | "(" expression ")" | ("any" | "all") "(" expression ")"
                | comparison
    comparison := selector ("==" | "eq" | "!=" | "ne" | "contains") string
                | selector ("matches" | "~") regex
                | selector "in" "{" string ("," ? string)* "}"
    selector   := name ("[" (integer | "*") "]")?

`and` binds tighter than `xor`, which binds tighter than `or`; `not` binds tightest. A
list field (`identity.groups.name`) must be indexed: `[0]` takes one element, `[*]` compares
each, and a `[*]` comparison must sit inside `any(...)` or `all(...)`. Every refusal is a
MatchSyntaxError carrying the offset where it was found.
"""

from __future__ import annotations

from functools import lru_cache

from warp_registry.domain.match.errors import MatchSyntaxError
from warp_registry.domain.match.lexer import END, INTEGER, NAME, STRING, SYMBOL, Lexer, Token
from warp_registry.domain.match.nodes import (
    ALL,
    AND,
    ANY,
    CONTAINS,
    EQUAL,
    IN,
    MATCHES,
    NOT_EQUAL,
    OR,
    PRECEDENCE,
    XOR,
    Comparison,
    Logical,
    Node,
    Not,
    Quantifier,
    Regex,
    Selector,
    Value,
    is_vector,
)
from warp_registry.domain.match.patterns import RegexRejected, compile_pattern
from warp_registry.domain.match.selectors import SELECTORS, UNSUPPORTED_SELECTORS

MAX_DEPTH = 32  # nested parentheses, `not`s and functions; keeps recursion bounded
MAX_INDEX = 9999

_LOGICAL = {"or": OR, "||": OR, "xor": XOR, "^^": XOR, "and": AND, "&&": AND}
_COMPARISONS = {
    "==": EQUAL, "eq": EQUAL, "!=": NOT_EQUAL, "ne": NOT_EQUAL, "contains": CONTAINS,
    "matches": MATCHES, "~": MATCHES, "in": IN,
}  # fmt: skip
_KEYWORDS = frozenset(_LOGICAL) | frozenset(_COMPARISONS) | {"not", ANY, ALL}
_OPERATOR_NAMES = "==, !=, in, contains or matches"


@lru_cache(maxsize=1024)
def parse(text: str) -> Node:
    """The tree of `text`, or MatchSyntaxError. Cached: stored expressions repeat."""
    parser = _Parser(text)
    if parser.lexer.peek().kind == END:
        raise MatchSyntaxError("empty expression", 0)

    node = parser.expression(0, 0)
    trailing = parser.lexer.peek()
    if trailing.kind != END:
        raise MatchSyntaxError(f"unexpected {_show(trailing)}", trailing.pos)
    if is_vector(node):
        raise MatchSyntaxError("a [*] comparison must be inside any(...) or all(...)", node.pos)
    return node


def _show(token: Token) -> str:
    if token.kind == END:
        return "end of expression"
    if token.kind == STRING:
        return "string"
    return repr(token.value)


class _Parser:
    def __init__(self, text: str) -> None:
        self.lexer = Lexer(text)

    def expression(self, min_precedence: int, depth: int) -> Node:
        """Operands joined by logical operators that bind at least `min_precedence`."""
        left = self.term(depth)
        joined_here = False
        while True:
            token = self.lexer.peek()
            op = _LOGICAL.get(token.value) if token.kind in (NAME, SYMBOL) else None
            if op is None or PRECEDENCE[op] < min_precedence:
                return left
            self.lexer.next()
            right = self.expression(PRECEDENCE[op] + 1, depth)
            if is_vector(left) != is_vector(right):
                raise MatchSyntaxError(
                    f'"{op}" cannot join a [*] comparison with a single-value one', token.pos
                )
            # `a and b and c` is one node; `(a and b) and c` keeps its grouping.
            if joined_here and isinstance(left, Logical) and left.op == op:
                left = Logical(op, (*left.items, right), left.pos)
            else:
                left = Logical(op, (left, right), left.pos)
            joined_here = True

    def term(self, depth: int) -> Node:
        if depth >= MAX_DEPTH:
            raise MatchSyntaxError(
                f"expression nested too deeply (at most {MAX_DEPTH} levels)",
                self.lexer.peek().pos,
            )
        token = self.lexer.next()

        if (token.kind, token.value) in ((SYMBOL, "!"), (NAME, "not")):
            return Not(self.term(depth + 1), token.pos)
        if token.kind == SYMBOL and token.value == "(":
            inner = self.expression(0, depth + 1)
            self._expect(")", "to close the parenthesis")
            return inner
        if token.kind == NAME and token.value in (ANY, ALL):
            return self._quantifier(token, depth)
        if token.kind == NAME and token.value not in _KEYWORDS:
            return self._comparison(token)
        raise MatchSyntaxError(f"expected a selector, not, any( or (; found {_show(token)}",
                               token.pos)  # fmt: skip

    def _quantifier(self, token: Token, depth: int) -> Node:
        self._expect("(", f"after {token.value}")
        inner = self.expression(0, depth + 1)
        self._expect(")", f"to close {token.value}(")
        if not is_vector(inner):
            raise MatchSyntaxError(
                f"{token.value}() needs a comparison of list elements, such as "
                f'{token.value}(identity.groups.name[*] == "admins")',
                token.pos,
            )
        return Quantifier(token.value, inner, token.pos)

    def _comparison(self, token: Token) -> Comparison:
        selector = self._selector(token)
        op_token = self.lexer.next()
        op = _COMPARISONS.get(op_token.value) if op_token.kind in (NAME, SYMBOL) else None
        if op is None:
            raise MatchSyntaxError(
                f"expected {_OPERATOR_NAMES} after {selector.name}; found {_show(op_token)}",
                op_token.pos,
            )

        value: Value
        if op == MATCHES:
            regex = self.lexer.next_regex()
            try:
                compile_pattern(regex.value)
            except RegexRejected as exc:
                raise MatchSyntaxError(str(exc), regex.pos) from None
            value = Regex(regex.value, regex.pos)
        elif op == IN:
            value = self._set()
        else:
            value = self._string(f"after {op_token.value}")
        return Comparison(selector, op, value, selector.pos)

    def _selector(self, token: Token) -> Selector:
        name = token.value
        spec = SELECTORS.get(name)
        if name in UNSUPPORTED_SELECTORS:
            raise MatchSyntaxError(f"selector {name} is not supported by warp-registry",
                                   token.pos)  # fmt: skip
        if spec is None:
            raise MatchSyntaxError(
                f"unknown selector {name!r}; known: {', '.join(SELECTORS)}", token.pos
            )

        index, each = self._index()
        if spec.is_list and index is None and not each:
            raise MatchSyntaxError(
                f"{name} is a list: compare its elements, as in "
                f'any({name}[*] == "...") or {name}[0] == "..."',
                token.pos,
            )
        if not spec.is_list and (index is not None or each):
            raise MatchSyntaxError(f"{name} is not a list and takes no [index]", token.pos)
        return Selector(name, index, each, token.pos)

    def _index(self) -> tuple[int | None, bool]:
        if not self._at_symbol("["):
            return None, False
        self.lexer.next()
        token = self.lexer.next()
        if token.kind == SYMBOL and token.value == "*":
            index, each = None, True
        elif token.kind == INTEGER and int(token.value) <= MAX_INDEX:
            index, each = int(token.value), False
        else:
            raise MatchSyntaxError(f"expected * or an index up to {MAX_INDEX} in [...]",
                                   token.pos)  # fmt: skip
        self._expect("]", "to close the index")
        return index, each

    def _set(self) -> tuple[str, ...]:
        """`{"a" "b"}`: strings separated by spaces (commas are accepted too)."""
        self._expect("{", 'after "in"')
        values: list[str] = []
        while True:
            token = self.lexer.next()
            if token.kind == SYMBOL and token.value == "}":
                return tuple(values)
            if token.kind == SYMBOL and token.value == "," and values:
                continue
            if token.kind != STRING:
                raise MatchSyntaxError(f"expected a string or }} in the set; found {_show(token)}",
                                       token.pos)  # fmt: skip
            values.append(token.value)

    def _string(self, where: str) -> str:
        token = self.lexer.next()
        if token.kind != STRING:
            raise MatchSyntaxError(f"expected a string in double quotes {where}; found "
                                   f"{_show(token)}", token.pos)  # fmt: skip
        return token.value

    def _at_symbol(self, symbol: str) -> bool:
        token = self.lexer.peek()
        return token.kind == SYMBOL and token.value == symbol

    def _expect(self, symbol: str, where: str) -> None:
        token = self.lexer.next()
        if token.kind != SYMBOL or token.value != symbol:
            raise MatchSyntaxError(f"expected {symbol!r} {where}; found {_show(token)}",
                                   token.pos)  # fmt: skip
