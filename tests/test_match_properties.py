"""Properties of the match-expression parser and printer, checked with hypothesis.

- The parser never fails in any other way than MatchSyntaxError, whatever the text:
  arbitrary Unicode, and "token soup" made of the language's own words and symbols,
  which reaches far deeper into the grammar than random characters do.
- Printing a tree and parsing the text gives the same tree (positions aside) and the
  same answers, for trees generated directly and for trees parsed from token soup.
- Evaluation never raises, whatever the facts.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warp_registry.domain.match import Facts, Group, MatchSyntaxError, evaluate, parse, to_text
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
    XOR,
    Comparison,
    Logical,
    Node,
    Not,
    Quantifier,
    Regex,
    Selector,
)
from warp_registry.domain.match.patterns import RegexRejected, compile_pattern
from warp_registry.domain.match.printer import regex_literal, string_literal

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SCALAR_SELECTORS = ["identity.email", "identity.service_token_uuid", "os.name", "os.version"]
LIST_SELECTORS = ["identity.groups.name", "identity.groups.id", "identity.groups.email"]

# Words, symbols and literals of the language, valid and invalid, for token soup.
TOKENS = [
    *SCALAR_SELECTORS, *LIST_SELECTORS, "user.identity", "network", "any", "all", "not",
    "and", "or", "xor", "in", "eq", "ne", "contains", "matches", "==", "!=", "&&", "||",
    "^^", "!", "~", "(", ")", "{", "}", "[", "]", "[*]", "[0]", "[12]", "*", ",", "=",
    '"a"', '"b@example.com"', '""', '"\\x41"', '"\\101"', '"\\q"', '"unterminated',
    'r"raw"', 'r#"a"b"#', 'r##"x', '".*"', '"^[a-z]+$"', '"(a+)+"', '"["', '"\\\\"',
    "12", "@", "\n", "'",
]  # fmt: skip

FACTS = [
    Facts(),
    Facts(
        email="a@example.com",
        groups=(Group("g1", "a", "list@example.com"), Group("g2", "b")),
        os_name="linux",
        os_version="6.8.0",
    ),
    Facts(email="b@example.com", groups=(), os_name="mac", os_version="15.6.1"),
    Facts(service_token_uuid="2c11d308-55c1-4b42-96e6-7259a3ee1e70", os_name="a"),
    Facts(email="", groups=(Group(None, None),), os_name="", os_version=""),
]

token_soup = st.lists(st.sampled_from(TOKENS), max_size=25).map(" ".join)


def _outcome(text: str) -> Node | None:
    """The tree, or None for a MatchSyntaxError; any other exception fails the test."""
    try:
        return parse(text)
    except MatchSyntaxError as exc:
        assert 0 <= exc.position <= len(text)
        return None


@SETTINGS
@given(st.text(max_size=200))
def test_arbitrary_text_parses_or_is_a_syntax_error(text: str) -> None:
    _outcome(text)


@SETTINGS
@given(token_soup)
def test_token_soup_parses_or_is_a_syntax_error(text: str) -> None:
    _outcome(text)


# --- generated trees ---

# Characters that need care in strings: quotes, backslashes, control characters.
strings = st.text(alphabet=st.sampled_from(list('ab@."\\#\n\t\x00\x7fé{} ')), max_size=8)


def _accepted(source: str) -> bool:
    try:
        compile_pattern(source)
    except RegexRejected:
        return False
    return True


regex_sources = st.text(
    alphabet=st.sampled_from(list('ab."#\\[]^$*+?()|{}0-9')), max_size=10
).filter(_accepted)


@st.composite
def comparisons(draw: st.DrawFn, *, each: bool) -> Comparison:
    if each:
        selector = Selector(draw(st.sampled_from(LIST_SELECTORS)), each=True)
    elif draw(st.booleans()):
        selector = Selector(draw(st.sampled_from(SCALAR_SELECTORS)))
    else:
        name = draw(st.sampled_from(LIST_SELECTORS))
        selector = Selector(name, index=draw(st.integers(0, 3)))

    op = draw(st.sampled_from([EQUAL, NOT_EQUAL, CONTAINS, MATCHES, IN]))
    value: str | tuple[str, ...] | Regex
    if op == MATCHES:
        value = Regex(draw(regex_sources))
    elif op == IN:
        value = tuple(draw(st.lists(strings, max_size=3)))
    else:
        value = draw(strings)
    return Comparison(selector, op, value)


def _joined(items: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return st.one_of(
        st.builds(Not, items),
        st.builds(
            Logical, st.sampled_from([AND, OR, XOR]), st.lists(items, min_size=2, max_size=3)
            .map(tuple),
        ),
    )  # fmt: skip


vector_trees = st.recursive(comparisons(each=True), _joined, max_leaves=6)
scalar_leaves = st.one_of(
    comparisons(each=False), st.builds(Quantifier, st.sampled_from([ANY, ALL]), vector_trees)
)
scalar_trees = st.recursive(scalar_leaves, _joined, max_leaves=8)


@SETTINGS
@given(scalar_trees)
def test_generated_trees_print_and_parse_back(tree: Node) -> None:
    printed = to_text(tree)
    assert parse(printed) == tree, printed
    for facts in FACTS:
        assert evaluate(parse(printed), facts) == evaluate(tree, facts)


# --- the same trees, written the many ways the syntax allows ---


@st.composite
def spelled(draw: st.DrawFn, tree: Node) -> str:
    """`tree` as text, written independently of the printer: every alternative spelling
    (`eq`, `&&`, `!`, `~`), raw strings, commas in sets, extra parentheses and spaces."""
    space = draw(st.sampled_from([" ", "  ", "\n", "\t "]))
    if isinstance(tree, Comparison):
        text = _spelled_comparison(draw, tree, space)
    elif isinstance(tree, Not):
        inner = draw(spelled(tree.operand))
        if isinstance(tree.operand, Logical) or draw(st.booleans()):
            inner = f"({inner})"
        text = draw(st.sampled_from(["not ", "!", "not" + space])) + inner
    elif isinstance(tree, Quantifier):
        text = f"{tree.kind}({space}{draw(spelled(tree.operand))}{space})"
    else:
        words = {AND: ["and", "&&"], OR: ["or", "||"], XOR: ["xor", "^^"]}[tree.op]
        parts = []
        for item in tree.items:
            part = draw(spelled(item))
            binds = {AND: 3, XOR: 2, OR: 1}
            if isinstance(item, Logical) and binds[item.op] <= binds[tree.op]:
                part = f"({part})"
            parts.append(part)
        text = parts[0]
        for part in parts[1:]:
            text += f"{space}{draw(st.sampled_from(words))}{space}{part}"
    return f"({text})" if draw(st.integers(0, 5)) == 0 else text


def _spelled_comparison(draw: st.DrawFn, tree: Comparison, space: str) -> str:
    selector = tree.selector
    left = selector.name + ("[*]" if selector.each else "")
    if selector.index is not None:
        left += f"[{selector.index}]"
    words = {EQUAL: ["==", "eq"], NOT_EQUAL: ["!=", "ne"], MATCHES: ["matches", "~"]}
    op = draw(st.sampled_from(words.get(tree.op, [tree.op])))
    value = tree.value
    if isinstance(value, Regex):
        right = _raw(value.source) if draw(st.booleans()) else regex_literal(value.source)
    elif isinstance(value, tuple):
        separator = draw(st.sampled_from([" ", ", ", space]))
        right = "{" + separator.join(_string(draw, item) for item in value) + "}"
    else:
        right = _string(draw, value)
    return f"{left}{space}{op}{space}{right}"


def _string(draw: st.DrawFn, value: str) -> str:
    return _raw(value) if draw(st.booleans()) else string_literal(value)


def _raw(value: str) -> str:
    hashes = 0
    while '"' + "#" * hashes in value:
        hashes += 1
    return f'r{"#" * hashes}"{value}"{"#" * hashes}'


@SETTINGS
@given(st.data())
def test_every_spelling_parses_to_the_same_tree(data: st.DataObject) -> None:
    tree = data.draw(scalar_trees)
    text = data.draw(spelled(tree))
    assert parse(text) == tree, text


@SETTINGS
@given(st.data())
def test_damaged_expressions_fail_cleanly_or_print_back(data: st.DataObject) -> None:
    """A valid text with a slice cut out or a token dropped in: a syntax error, or a tree
    that prints and parses back to itself."""
    text = data.draw(spelled(data.draw(scalar_trees)))
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, min(len(text), start + 8)))
    damaged = text[:start] + data.draw(st.sampled_from(["", *TOKENS])) + text[end:]
    tree = _outcome(damaged)
    if tree is not None:
        printed = to_text(tree)
        assert parse(printed) == tree
        for facts in FACTS:
            assert evaluate(parse(printed), facts) == evaluate(tree, facts)


@st.composite
def facts(draw: st.DrawFn) -> Facts:
    text = st.none() | st.text(max_size=300)
    groups = st.none() | st.lists(st.builds(Group, text, text, text), max_size=3).map(tuple)
    return Facts(draw(text), draw(groups), draw(text), draw(text), draw(text))


@SETTINGS
@given(scalar_trees, facts())
def test_evaluation_never_raises(tree: Node, given_facts: Facts) -> None:
    assert evaluate(tree, given_facts) in (True, False)
