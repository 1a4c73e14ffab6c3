"""Match expressions: which registrations a device settings profile applies to.

A custom profile's `match` is written in Cloudflare's wirefilter syntax, for example
`any(identity.groups.name[*] in {"engineering"}) and os.name == "linux"`. This package
reads it (`parse`, which refuses unknown selectors, bad regexes and bad syntax with a
MatchSyntaxError giving the position), writes it back (`to_text`) and decides it for one
registration (`matches`, which never raises). docs/profiles.md documents the language.

The modules: `lexer` (tokens), `parser` (the tree), `nodes` (the tree's classes),
`printer` (text again), `evaluate` (the answer), `patterns` (guarded regexes),
`selectors` (the fields an expression may name).
"""

from __future__ import annotations

import logging

from warp_registry.domain.match.errors import MatchSyntaxError
from warp_registry.domain.match.evaluate import Facts, Group, evaluate
from warp_registry.domain.match.nodes import Node
from warp_registry.domain.match.parser import parse
from warp_registry.domain.match.printer import to_text
from warp_registry.domain.match.selectors import SELECTORS

__all__ = [
    "SELECTORS",
    "Facts",
    "Group",
    "MatchSyntaxError",
    "Node",
    "evaluate",
    "matches",
    "parse",
    "to_text",
]

log = logging.getLogger("warp_registry.match")


def matches(expression: str | None, facts: Facts) -> bool:
    """Whether a stored match expression holds for `facts`; never raises.

    No expression (None or blank) matches nothing. An expression that no longer parses
    (stored before a rule changed) matches nothing either, and is logged.
    """
    if expression is None or expression.strip() == "":
        return False
    try:
        return evaluate(parse(expression), facts)
    except MatchSyntaxError:
        log.warning("stored match expression does not parse: %r", expression)
        return False
    except Exception:  # evaluation is written not to raise; a bug must not fail a client
        log.exception("match expression failed to evaluate: %r", expression)
        return False
