"""The one error the match-expression parser raises."""

from __future__ import annotations


class MatchSyntaxError(ValueError):
    """A match expression that cannot be accepted: bad syntax, unknown selector, bad regex.

    `position` is the 0-based offset of the character where the problem was found, and
    `reason` says what is wrong there; `str()` gives both.
    """

    def __init__(self, reason: str, position: int) -> None:
        self.reason = reason
        self.position = position
        super().__init__(f"{reason} at position {position}")
