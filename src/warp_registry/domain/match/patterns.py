"""Regexes for `matches`, compiled with the standard library and kept from backtracking.

Cloudflare runs these patterns on Rust's `regex` crate, which matches in linear time and
has no look-around or back-references. Python's `re` backtracks, so a pattern such as
`(a+)+$` or `a*a*a*a*x` can take minutes on a short string, and a profile's pattern runs
at every client check-in. A pattern is therefore accepted only if its worst case is
bounded, judged on the parsed pattern before it is ever run (our choice):

- no look-around and no back-reference (Rust's engine has neither, so a pattern that
  needs them would not work at Cloudflare either);
- no repetition inside a repetition (`(a+)+`, `(\\.[a-z]+)*`), and no alternation of
  several characters inside a repetition (`(ab|a)*`): the classic exponential shapes;
- the repetitions multiplied together, with the start positions a search tries, stay
  under `_BUDGET` steps for a subject of `MAX_SUBJECT` characters: two unbounded
  repetitions (`.*@example.*`) pass, three (`.*.*.*x`) do not.

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
_BUDGET = MAX_SUBJECT**3
_REPEATS = {sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT}


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
    message = getattr(exc, "msg", None) or str(exc) or type(exc).__name__
    return str(message)


def _check(parsed: Any) -> None:
    cost = MAX_SUBJECT * _cost(parsed, inside_repeat=False)
    if cost > _BUDGET:
        raise RegexRejected(
            "regex could take too long to run: at most two unbounded repetitions "
            "(such as .* or +) are accepted"
        )


def _cost(items: Any, *, inside_repeat: bool) -> int:
    """The product of the repetition counts in `items` (each capped at MAX_SUBJECT)."""
    cost = 1
    for op, argument in items:
        if op in _REPEATS:
            _low, high, body = argument
            repeats = high > 1
            if repeats and inside_repeat:
                raise RegexRejected(
                    "regex repeats a repetition, such as (a+)+, which can take exponential "
                    "time; write it without the nesting"
                )
            cost *= min(high, MAX_SUBJECT) if repeats else 1
            cost *= _cost(body, inside_repeat=inside_repeat or repeats)
        elif op is sre.SUBPATTERN:
            cost *= _cost(argument[3], inside_repeat=inside_repeat)
        elif op is sre.ATOMIC_GROUP:
            cost *= _cost(argument, inside_repeat=inside_repeat)
        elif op is sre.BRANCH:
            if inside_repeat:
                raise RegexRejected(
                    "regex repeats an alternation, such as (ab|a)*, which can take exponential time"
                )
            cost *= max(_cost(branch, inside_repeat=False) for branch in argument[1])
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            raise RegexRejected("regex look-around ((?=...), (?!...), ...) is not supported")
        elif op in (sre.GROUPREF, sre.GROUPREF_EXISTS):
            raise RegexRejected("regex back-references are not supported")
    return cost
