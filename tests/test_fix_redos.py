"""Regression: profile `matches` regexes that backtrack for seconds or hours are refused.

A counted repeat of something optional (`(a?){26}`) passed the guard and then blocked the
whole server while one 26-character value was matched. These tests write such patterns
through the API (both engines) and check that they are refused before anything is
stored, that safe patterns still pass, and that an invalid regex is reported as one.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Registry
from tests.expect import assert_error_envelope
from warp_registry.domain.match import Facts, MatchSyntaxError, matches, parse
from warp_registry.domain.match.patterns import MAX_SUBJECT

MATCH_CHAIN = 11030

# Patterns whose backtracking is exponential, or polynomial of high degree, on Python's
# engine, each with the words the refusal must contain.
EXPLOSIVE = [
    ("^(a?){26}a{26}$", "empty string"),  # the reported one: seconds per value
    ("^(a?){40}a{40}$", "empty string"),  # hours per value
    ("^(a?b?){20}$", "empty string"),
    ("^(ab?){30}$", "repeats a repetition"),
    ("^(a{1,2}){30}$", "repeats a repetition"),
    ("(a|)*x", "empty string"),
    ("(\\b)+x", "empty string"),
    ("^(ab|a){20}$", "repeats an alternation"),
    ("a{101}", "above the 100"),
    ("a{5,200}", "above the 100"),
    ("a{1000,}", "above the 100"),
    ("^" + "a?" * 30 + "a" * 30 + "$", "too long"),  # the same blow-up, unrolled
    ("^" + "(ab|a)" * 30 + "$", "too long"),
    ("a{0,100}a{0,100}a{0,100}x", "too long"),
]

SAFE = [
    "^[0-9a-f-]{36}$",
    ".*@contractors\\.example\\.com$",
    "^.*@.*\\.com$",
    "^[a-z]+@(example|corp)\\.com$",
    "^(ab){1,100}$",
    "^a{0,100}b{0,100}$",
    "^\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}$",
    "^" + "a?" * 8 + "$",
]


def _policy_path(registry: Registry) -> str:
    return f"/accounts/{registry.account_id}/devices/policy"


def _match_error(response: httpx.Response) -> str:
    """The message of a 400 / 2003 refusal whose one chain entry is the match code."""
    assert response.status_code == 400, response.text
    error = assert_error_envelope(response.json(), 2003)
    assert [link["code"] for link in error["error_chain"]] == [MATCH_CHAIN], error
    message: str = error["error_chain"][0]["message"]
    return message


async def _profiles(api: httpx.AsyncClient, registry: Registry) -> list[Any]:
    response = await api.get(f"/accounts/{registry.account_id}/devices/policies")
    assert response.status_code == 200, response.text
    result: list[Any] = response.json()["result"]
    return result


def _expression(pattern: str) -> str:
    escaped = pattern.replace('"', '\\"')
    return f'os.version matches "{escaped}"'


async def test_the_reported_pattern_is_refused_at_create(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    before = await _profiles(api, registry)
    body = {"name": "redos", "match": 'os.version matches "^(a?){26}a{26}$"', "precedence": 0}

    response = await api.post(_policy_path(registry), json=body)

    message = _match_error(response)
    assert message.startswith("match: ") and "exponential" in message
    assert message.endswith("at position 19")  # the opening quote of the regex
    assert await _profiles(api, registry) == before


@pytest.mark.parametrize(("pattern", "reason"), EXPLOSIVE)
async def test_explosive_patterns_are_refused_at_create_and_update(
    api: httpx.AsyncClient, registry: Registry, pattern: str, reason: str
) -> None:
    created = await api.post(
        _policy_path(registry), json={"name": "safe", "match": 'os.name == "linux"'}
    )
    assert created.status_code == 200, created.text
    policy_id = created.json()["result"]["policy_id"]
    before = await _profiles(api, registry)
    match = _expression(pattern)

    for response in (
        await api.post(_policy_path(registry), json={"name": "x", "match": match}),
        await api.patch(f"{_policy_path(registry)}/{policy_id}", json={"match": match}),
    ):
        assert reason in _match_error(response)
    assert await _profiles(api, registry) == before


@pytest.mark.parametrize("pattern", SAFE)
async def test_safe_patterns_are_still_accepted(
    api: httpx.AsyncClient, registry: Registry, pattern: str
) -> None:
    response = await api.post(
        _policy_path(registry), json={"name": "ok", "match": _expression(pattern)}
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"]["match"] == _expression(pattern)


async def test_an_unterminated_class_is_reported_as_an_invalid_regex(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    response = await api.post(
        _policy_path(registry), json={"name": "x", "match": 'os.version matches "["'}
    )
    message = _match_error(response)
    assert "invalid regex" in message and "character set" in message
    assert "closing quote" not in message
    assert message.endswith("at position 19")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('os.version matches "["', ["invalid regex", "offset 0"]),
        ('os.version matches "ab[c"', ["invalid regex", "offset 2"]),
        ('os.version matches "a**"', ["invalid regex", "offset 2"]),
        ('os.version matches "[abc', ["no closing quote"]),  # truly unterminated
    ],
)
def test_invalid_regex_messages_say_what_and_where(text: str, words: list[str]) -> None:
    with pytest.raises(MatchSyntaxError) as raised:
        parse(text)
    assert raised.value.position == 19
    for word in words:
        assert word in str(raised.value)


def test_a_value_longer_than_the_cap_never_matches() -> None:
    # The evaluation input stays capped: even `.*` does not match an over-long value.
    long_value = Facts(os_version="a" * (MAX_SUBJECT + 1))
    short_value = Facts(os_version="a" * MAX_SUBJECT)
    assert matches('os.version matches ".*"', long_value) is False
    assert matches('os.version matches ".*"', short_value) is True
