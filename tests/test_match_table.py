"""The match-expression language, as docs/profiles.md documents it, over five identities.

Each row is an expression and the identities it must hold for. The expected answers were
written from the documentation (selectors, operators, precedence, escapes, "a selector
with no value makes every comparison on it false"), not from running the code.
"""

from __future__ import annotations

import pytest

from warp_registry.domain.match import Facts, Group, evaluate, matches, parse

IDENTITIES: dict[str, Facts] = {
    # An engineer in two groups, on Linux.
    "alice": Facts(
        email="alice@example.com",
        groups=(
            Group(id="g-eng", name="engineering", email="eng-list@example.com"),
            Group(id="g-admin", name="admins"),
        ),
        os_name="linux",
        os_version="6.8.0",
    ),
    # A contractor in no group, on Windows.
    "bob": Facts(
        email="bob@contractors.example.com", groups=(), os_name="windows", os_version="10.0.22631"
    ),
    # Finance, on a Mac.
    "carol": Facts(
        email="carol.smith@example.com",
        groups=(Group(id="group-finance", name="finance"),),
        os_name="mac",
        os_version="15.6.1",
    ),
    # A service token on a Linux box that reports no OS version: no user, no groups.
    "token": Facts(service_token_uuid="2c11d308-55c1-4b42-96e6-7259a3ee1e70", os_name="linux"),
    # Sales, on an iPhone.
    "dave": Facts(
        email="dave@example.com",
        groups=(Group(id="g-sales", name="Sales"),),
        os_name="ios",
        os_version="18.5",
    ),
}
EVERYONE = frozenset(IDENTITIES)

TABLE: list[tuple[str, set[str]]] = [
    # == and eq: exact, case-sensitive
    ('identity.email == "alice@example.com"', {"alice"}),
    ('identity.email eq "alice@example.com"', {"alice"}),
    ('identity.email == "ALICE@example.com"', set()),
    # != holds only where there is a value; `not ==` also where there is none
    ('identity.email != "alice@example.com"', {"bob", "carol", "dave"}),
    ('identity.email ne "alice@example.com"', {"bob", "carol", "dave"}),
    ('not identity.email == "alice@example.com"', {"bob", "carol", "token", "dave"}),
    # sets: spaces or commas between strings; the empty set holds nothing
    ('identity.email in {"alice@example.com" "dave@example.com"}', {"alice", "dave"}),
    ('identity.email in {"alice@example.com", "dave@example.com"}', {"alice", "dave"}),
    ("identity.email in {}", set()),
    # contains: a substring
    ('identity.email contains "@example.com"', {"alice", "carol", "dave"}),
    ('identity.email contains "example"', {"alice", "bob", "carol", "dave"}),
    # matches and ~: a regex found anywhere, backslashes kept for the regex
    ('identity.email matches ".*@contractors\\.example\\.com$"', {"bob"}),
    ('identity.email ~ "^[a-z]+@example\\.com$"', {"alice", "dave"}),
    ('identity.email matches "smith"', {"carol"}),
    ('identity.email matches "SMITH"', set()),
    ('identity.email matches "(?i)SMITH"', {"carol"}),
    # os.name and os.version
    ('os.name == "linux"', {"alice", "token"}),
    ('os.name in {"windows" "mac"}', {"bob", "carol"}),
    ('os.name != "linux"', {"bob", "carol", "dave"}),
    ('os.version == "18.5"', {"dave"}),
    ('os.version matches "^1[05]\\."', {"bob", "carol"}),
    ('os.version != "6.8.0"', {"bob", "carol", "dave"}),
    # lists: any() and all() over [*]
    ('any(identity.groups.name[*] == "engineering")', {"alice"}),
    ('any(identity.groups.name[*] in {"finance" "Sales"})', {"carol", "dave"}),
    ('any(identity.groups.name[*] in {"sales"})', set()),
    ('any(identity.groups.id[*] == "group-finance")', {"carol"}),
    ('any(identity.groups.name[*] matches "^fin")', {"carol"}),
    ('any(identity.groups.email[*] == "eng-list@example.com")', {"alice"}),
    ('all(identity.groups.name[*] != "engineering")', {"bob", "carol", "dave"}),
    ('all(identity.groups.id[*] matches "^g-")', {"alice", "bob", "dave"}),
    ('not any(identity.groups.name[*] == "engineering")', {"bob", "carol", "token", "dave"}),
    # [*] comparisons combine element by element: one group with both properties
    ('any(identity.groups.name[*] == "admins" and identity.groups.id[*] == "g-admin")',
     {"alice"}),
    ('any(identity.groups.name[*] == "admins" and identity.groups.id[*] == "g-eng")', set()),
    # an index takes one element; out of range is no value
    ('identity.groups.name[0] == "engineering"', {"alice"}),
    ('identity.groups.name[1] == "admins"', {"alice"}),
    ('identity.groups.name[1] != "anything"', {"alice"}),
    # service tokens
    ('identity.service_token_uuid == "2c11d308-55c1-4b42-96e6-7259a3ee1e70"', {"token"}),
    ('identity.service_token_uuid matches "^[0-9a-f-]{36}$"', {"token"}),
    ('identity.service_token_uuid != "x"', {"token"}),
    # and / or / xor, in words and symbols; not and !
    ('os.name == "linux" and identity.email contains "alice"', {"alice"}),
    ('os.name == "linux" && not identity.email == "alice@example.com"', {"token"}),
    ('os.name == "linux" or os.name == "ios"', {"alice", "token", "dave"}),
    ('os.name == "linux" || os.name == "ios"', {"alice", "token", "dave"}),
    ('os.name == "linux" xor any(identity.groups.name[*] == "engineering")', {"token"}),
    ('os.name == "linux" ^^ os.version == "6.8.0"', {"token"}),
    ('!(os.name == "linux")', {"bob", "carol", "dave"}),
    ('not not os.name == "mac"', {"carol"}),
    # precedence: and before or; parentheses override
    ('identity.email == "bob@contractors.example.com" or os.name == "ios" and '
     'os.version == "17.0"', {"bob"}),
    ('(identity.email == "bob@contractors.example.com" or os.name == "ios") and '
     'os.version == "18.5"', {"dave"}),
    ('os.name == "mac" or os.name == "ios" xor os.version == "18.5"', {"carol"}),
    # strings: raw, hex and octal escapes
    ('identity.email == r"alice@example.com"', {"alice"}),
    ('identity.email matches r#"^alice@"#', {"alice"}),
    ('identity.email == "alice\\x40example.com"', {"alice"}),
    ('identity.email == "alice\\100example.com"', {"alice"}),
    # whitespace and line breaks between tokens do not matter
    ('os.name in {"ios"}\n  and any(identity.groups.name[*] == "Sales")', {"dave"}),
]  # fmt: skip


def test_the_table_is_large_enough() -> None:
    assert len(TABLE) >= 40
    assert len({expression for expression, _ in TABLE}) == len(TABLE)


@pytest.mark.parametrize(("expression", "holds_for"), TABLE, ids=[row[0] for row in TABLE])
def test_expression(expression: str, holds_for: set[str]) -> None:
    assert holds_for <= EVERYONE
    tree = parse(expression)
    for name, facts in IDENTITIES.items():
        expected = name in holds_for
        assert evaluate(tree, facts) is expected, (name, expected)
        assert matches(expression, facts) is expected, name


def test_no_expression_matches_nothing() -> None:
    for facts in IDENTITIES.values():
        assert matches(None, facts) is False
        assert matches("", facts) is False
        assert matches("   ", facts) is False


def test_a_stored_expression_that_no_longer_parses_matches_nothing() -> None:
    for facts in IDENTITIES.values():
        assert matches('os.name matches "(a+)+$"', facts) is False
        assert matches("nonsense ==", facts) is False


def test_long_values_never_match_a_regex() -> None:
    long_email = "x" * 300 + "@example.com"
    facts = Facts(email=long_email)
    assert matches('identity.email matches "example"', facts) is False
    assert matches('identity.email contains "example"', facts) is True
