"""What the match-expression parser refuses, and where it says the problem is.

Positions count characters from 0. Every refusal is a MatchSyntaxError, never another
exception; the properties in test_match_properties.py check that over arbitrary text.
"""

from __future__ import annotations

import pytest

from warp_registry.domain.match import MatchSyntaxError, parse

REFUSED: list[tuple[str, int, str]] = [
    # (expression, position, part of the reason)
    ("", 0, "empty expression"),
    ('user.identity == "x"', 0, "unknown selector 'user.identity'"),
    ('identity.email == "x" and identity.mail == "y"', 26, "unknown selector 'identity.mail'"),
    ('identity.saml_attributes == "x"', 0, "not supported"),
    ('network == "office"', 0, "not supported"),
    ('identity.email = "x"', 15, 'comparisons use "=="'),
    ('identity.email "x"', 15, "expected ==, !=, in, contains or matches"),
    ("identity.email == x", 18, "expected a string"),
    ("identity.email == 12", 18, "expected a string"),
    ('identity.email == "x', 18, "no closing quote"),
    ('identity.email == "a\\qb"', 20, "invalid escape \\q"),
    ('identity.email == "\\xff"', 19, "two hex digits of ASCII"),
    ('identity.email == "\\9"', 19, "three octal digits"),
    ('identity.email == r#"x"', 18, "raw string has no closing quote"),
    ('identity.email == "x" and', 25, "expected a selector"),
    ('identity.email == "x" and and os.name == "y"', 26, "expected a selector"),
    ('identity.email == "x" os.name == "y"', 22, "unexpected 'os.name'"),
    ('os.name == "a" AND os.name == "b"', 15, "unexpected 'AND'"),
    ('(os.name == "a"', 15, "expected ')'"),
    ('os.name == "a")', 14, "unexpected ')'"),
    ('identity.groups.name == "x"', 0, "is a list"),
    ('identity.groups.name[*] == "x"', 0, "inside any(...) or all(...)"),
    ('any(os.name == "x")', 0, "needs a comparison of list elements"),
    ('any(identity.groups.name[*] == "x"', 34, "expected ')'"),
    ('os.name[0] == "x"', 0, "not a list"),
    ('identity.groups.name[x] == "x"', 21, "expected * or an index"),
    ('identity.groups.name[100000] == "x"', 21, "expected * or an index"),
    ('any(identity.groups.name[*] == "a" and os.name == "b")', 35, "cannot join"),
    ('identity.email in {"a" 1}', 23, "expected a string or }"),
    ('identity.email in {, "a"}', 19, "expected a string or }"),
    ('identity.email in "a"', 18, "expected '{'"),
    ('os.name matches "(a+)+"', 16, "repeats a repetition"),
    ('os.name matches "(ab|a)*c"', 16, "repeats an alternation"),
    ('os.name matches ".*a.*b.*c"', 16, "too long"),
    ('os.name matches "(?=a)b"', 16, "look-around"),
    ('os.name matches "(a)\\1"', 16, "back-references"),
    ('os.name matches "("', 16, "invalid regex"),
    ('os.name matches "["', 16, "invalid regex"),  # `"` inside [...]: the [ is unclosed
    ('os.name matches "abc', 16, "regex has no closing quote"),
    ("os.name matches abc", 16, "expected a regex"),
    ('os.name == "a" @', 15, "unexpected character '@'"),
    ('os.name == "a" and ' + "(" * 40 + 'os.name == "b"' + ")" * 40, 51, "nested too deeply"),
    ("not " * 40 + 'os.name == "b"', 128, "nested too deeply"),
]


@pytest.mark.parametrize(("expression", "position", "reason"), REFUSED,
                         ids=[row[0][:60] or "empty" for row in REFUSED])  # fmt: skip
def test_refused_with_position(expression: str, position: int, reason: str) -> None:
    with pytest.raises(MatchSyntaxError) as raised:
        parse(expression)
    assert reason in raised.value.reason
    assert raised.value.position == position
    assert str(raised.value).endswith(f"at position {position}")


ACCEPTED = [
    'any(identity.groups.name[*] in {"engineering"})',
    'identity.email matches ".*@contractors\\.example\\.com"',
    'identity.email in {"jdoe@example.com"} or any(identity.groups.name[*] in '
    '{"developers" "admin"}) and os.name == "windows"',
    'os.name in {"windows" "mac" "linux"}',
    'identity.email matches "^[a-z]+@(example|corp)\\.com$"',
    'os.version matches "^1[0-9]\\.[0-9]+"',
    'identity.email matches "[\\"]"',
    'os.name ~ r#"a"b"#',
    "(" * 30 + 'os.name == "b"' + ")" * 30,
]


@pytest.mark.parametrize("expression", ACCEPTED)
def test_accepted(expression: str) -> None:
    parse(expression)
