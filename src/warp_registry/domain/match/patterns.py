"""Regexes for `matches`, compiled with the standard library and kept from backtracking.

Cloudflare runs these patterns on Rust's `regex` crate, which matches in linear time and
has no look-around or back-references. Python's `re` backtracks, so a pattern such as
`(a+)+$`, `(a?){26}a{26}` or `a*a*a*a*x` can take minutes on a short string, and a
profile's pattern runs at every client check-in. A pattern is therefore accepted only if
its worst case is bounded, judged on the parsed pattern before it is ever run (our
choice, deliberately conservative: some harmless patterns are refused too):

- no look-around and no back-reference (Rust's engine has neither, so a pattern that
  needs them would not work at Cloudflare either);
- a repetition that can run more than once (`*`, `+`, `{n}` with n > 1, `{n,m}`) must
  repeat something plain: its body may hold no quantifier at all, not even `?`
  (`(a+)+`, `(a?){26}`, `(\\.[a-z]+)*`), no alternation (`(ab|a)*`) and nothing that can
  match the empty string (`(\\b)*`, `(){5}`): each is a way for the engine to split the
  same text in exponentially many ways;
- a counted repetition names at most `MAX_COUNT` repeats (`a{101}` and `a{5,200}` are
  refused);
- the choices a backtracking engine has, multiplied along the pattern, stay under
  `_BUDGET` steps for a subject of `MAX_SUBJECT` characters and every start position.
  A quantifier offers as many choices as counts it allows (`?` two, `a{2,5}` four, `*`
  and `+` one per character, a fixed `{n}` one), an alternation one per branch. So two
  unbounded repetitions (`.*@example.*`) pass, three (`.*.*.*x`) do not, and neither do
  seventeen or more `?` in one pattern.

A value longer than `MAX_SUBJECT` characters is never matched (the comparison is false).
"""

from __future__ import annotations

import re
import warnings
from functools import lru_cache
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parser  # type: ignore[attr-defined]
from typing import Any

MAX_SUBJECT = 256
MAX_COUNT = 100  # the largest count a `{n}` or `{n,m}` may name
_BUDGET = MAX_SUBJECT**3
_REPEATS = {sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT}
_GROUPS = {sre.SUBPATTERN, sre.ATOMIC_GROUP}
_NESTED = (
    "regex repeats a repetition or optional part, such as (a+)+ or (a?){5}, which can "
    "take exponential time; write it without the nesting"
)


class RegexRejected(ValueError):
    """The pattern does not compile, or could run too long; the message says why."""


@lru_cache(maxsize=1024)
def compile_pattern(source: str) -> re.Pattern[str]:
    """The compiled pattern, or RegexRejected. Cached: profiles are evaluated often."""
    try:
        # Python warns about constructs whose meaning may change (`[[a]`); the pattern is
        # judged on what it means today, and the warning must not escape to the caller.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = sre_parser.parse(source)
            _check(parsed)
            return re.compile(source)
    except RegexRejected:
        raise
    except (re.error, OverflowError, RecursionError, ValueError, TypeError) as exc:
        raise RegexRejected(f"invalid regex: {_describe(exc)}") from None


def _describe(exc: BaseException) -> str:
    message = str(getattr(exc, "msg", None) or str(exc) or type(exc).__name__)
    offset = getattr(exc, "pos", None)
    if isinstance(offset, int):
        message += f" (at offset {offset} of the regex)"
    return message


def _check(parsed: Any) -> None:
    cost = MAX_SUBJECT * _cost(parsed, inside_repeat=False)
    if cost > _BUDGET:
        raise RegexRejected(
            "regex could take too long to run: at most two unbounded repetitions "
            "(such as .* or +) are accepted, and few optional parts (?) in a row"
        )


def _cost(items: Any, *, inside_repeat: bool) -> int:
    """The product of the choices the quantifiers and alternations in `items` offer."""
    cost = 1
    for op, argument in items:
        if op in _REPEATS:
            cost *= _repeat_cost(argument, inside_repeat=inside_repeat)
        elif op in _GROUPS:
            body = argument[3] if op is sre.SUBPATTERN else argument
            cost *= _cost(body, inside_repeat=inside_repeat)
        elif op is sre.BRANCH:
            if inside_repeat:
                raise RegexRejected(
                    "regex repeats an alternation, such as (ab|a)*, which can take exponential time"
                )
            # A failing match may try every branch in turn.
            cost *= sum(_cost(branch, inside_repeat=False) for branch in argument[1])
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            raise RegexRejected("regex look-around ((?=...), (?!...), ...) is not supported")
        elif op in (sre.GROUPREF, sre.GROUPREF_EXISTS):
            raise RegexRejected("regex back-references are not supported")
        cost = min(cost, _BUDGET + 1)  # keep the numbers small; anything above is refused
    return cost


def _repeat_cost(argument: Any, *, inside_repeat: bool) -> int:
    """The choices one quantifier offers; refuses the shapes that backtrack exponentially."""
    low, high, body = argument
    for count in (low, high):
        if count != sre.MAXREPEAT and count > MAX_COUNT:
            raise RegexRejected(f"regex repetition count {count} is above the {MAX_COUNT} accepted")
    if inside_repeat:
        raise RegexRejected(_NESTED)

    if high > 1:
        # The body is repeated: it must match one way only, and never the empty string.
        if body.getwidth()[0] == 0:
            raise RegexRejected(
                "regex repeats something that can match the empty string, such as (a|)* "
                "or (\\b)*, which can take exponential time"
            )
        _cost(body, inside_repeat=True)

    upper = MAX_SUBJECT if high == sre.MAXREPEAT else high
    return max(1, min(upper - low + 1, MAX_SUBJECT)) * _cost(body, inside_repeat=False)
