"""Tokens of a match expression, read on demand.

The parser asks for one token at a time because the text after `matches` is read by
different rules than any other string: a regex literal keeps its backslashes for the
regex engine (`"\\.example\\.com"`), where an ordinary string accepts only the escapes
`\\"`, `\\\\`, `\\n`, `\\r`, `\\t`, `\\xHH` (ASCII) and `\\NNN` (octal). Both may also be
written raw, `r"..."` or `r#"..."#`, with no escapes at all. These are wirefilter's rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from warp_registry.domain.match.errors import MatchSyntaxError
from warp_registry.domain.match.patterns import RegexRejected, compile_pattern

NAME = "name"  # a selector, keyword or function name: letters, digits, `_`, `.`
STRING = "string"
INTEGER = "integer"
SYMBOL = "symbol"
END = "end"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_INTEGER = re.compile(r"[0-9]+")
_SPACE = " \t\r\n"
# Longest first, so that `==` is never read as `=` then `=`.
_SYMBOLS = ("==", "!=", "&&", "||", "^^", "!", "~", "(", ")", "{", "}", "[", "]", "*", ",")
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}
_MAX_HASHES = 255


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    value: str  # the decoded value of a string; the text itself otherwise
    pos: int  # offset of the first character
    end: int  # offset just after the last character


class Lexer:
    """Reads tokens from `text` as the parser asks; `peek` looks without consuming."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self._peeked: Token | None = None

    def peek(self) -> Token:
        if self._peeked is None:
            self._peeked = self._read(self._skip_space(self.pos))
        return self._peeked

    def next(self) -> Token:
        token = self.peek()
        self._peeked = None
        self.pos = token.end
        return token

    def next_regex(self) -> Token:
        """The regex literal that follows `matches`: a STRING token holding the pattern."""
        self._peeked = None
        start = self._skip_space(self.pos)
        if self.text.startswith('"', start):
            token = _regex_literal(self.text, start)
        elif self._raw_string_starts(start):
            token = _raw_string(self.text, start)
        else:
            raise MatchSyntaxError('expected a regex in double quotes after "matches"', start)
        self.pos = token.end
        return token

    def _skip_space(self, pos: int) -> int:
        while pos < len(self.text) and self.text[pos] in _SPACE:
            pos += 1
        return pos

    def _raw_string_starts(self, pos: int) -> bool:
        return self.text.startswith("r", pos) and self.text[pos + 1 : pos + 2] in ('"', "#")

    def _read(self, pos: int) -> Token:
        text = self.text
        if pos >= len(text):
            return Token(END, "", pos, pos)
        if text[pos] == '"':
            return _escaped_string(text, pos)
        if self._raw_string_starts(pos):
            return _raw_string(text, pos)

        for pattern, kind in ((_NAME, NAME), (_INTEGER, INTEGER)):
            found = pattern.match(text, pos)
            if found is not None:
                return Token(kind, found.group(), pos, found.end())
        for symbol in _SYMBOLS:
            if text.startswith(symbol, pos):
                return Token(SYMBOL, symbol, pos, pos + len(symbol))

        if text[pos] == "=":
            raise MatchSyntaxError('unexpected "=" (comparisons use "==")', pos)
        raise MatchSyntaxError(f"unexpected character {text[pos]!r}", pos)


def _escaped_string(text: str, start: int) -> Token:
    """`"..."` with wirefilter's escapes, decoded."""
    out: list[str] = []
    pos = start + 1
    while pos < len(text):
        char = text[pos]
        if char == '"':
            return Token(STRING, "".join(out), start, pos + 1)
        if char != "\\":
            out.append(char)
            pos += 1
            continue
        decoded, pos = _escape(text, pos)
        out.append(decoded)
    raise MatchSyntaxError("string has no closing quote", start)


def _escape(text: str, backslash: int) -> tuple[str, int]:
    """The character an escape stands for, and the offset after the escape."""
    code = text[backslash + 1 : backslash + 2]
    if code in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[code], backslash + 2
    if code == "x":
        digits = text[backslash + 2 : backslash + 4]
        if re.fullmatch(r"[0-7][0-9A-Fa-f]", digits) is None:
            raise MatchSyntaxError(r"\x must be followed by two hex digits of ASCII", backslash)
        return chr(int(digits, 16)), backslash + 4
    if code.isdigit():
        digits = text[backslash + 1 : backslash + 4]
        if re.fullmatch(r"[0-3][0-7]{2}", digits) is None:
            raise MatchSyntaxError(r"\ must be followed by three octal digits", backslash)
        return chr(int(digits, 8)), backslash + 4
    if code == "":
        raise MatchSyntaxError("string has no closing quote", backslash)
    raise MatchSyntaxError(f"invalid escape \\{code} in a string", backslash)


def _regex_literal(text: str, start: int) -> Token:
    """`"..."` read as a regex: escapes stay for the regex engine, except `\\"`.

    A `"` inside a character class (`[...]`) does not end the literal, as in wirefilter.
    """
    out: list[str] = []
    in_class = False
    pos = start + 1
    while pos < len(text):
        char = text[pos]
        if char == "\\":
            following = text[pos + 1 : pos + 2]
            if following == "":
                break
            out.append(following if following == '"' and not in_class else char + following)
            pos += 2
            continue
        if char == '"' and not in_class:
            return Token(STRING, "".join(out), start, pos + 1)
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class:
            in_class = False
        out.append(char)
        pos += 1
    if in_class:
        _refuse_unclosed_class(text, start)
    raise MatchSyntaxError("regex has no closing quote", start)


def _refuse_unclosed_class(text: str, start: int) -> None:
    """Explain a regex literal that ran off the end inside a `[`: its regex is invalid.

    `"["` never closes because its `"` counts as part of the class. Read without that
    rule, the literal is a regex with an unterminated `[`, and that is the real mistake,
    so report the regex engine's complaint (with its offset) rather than a missing quote.
    """
    out: list[str] = []
    pos = start + 1
    while pos < len(text) and text[pos] != '"':
        step = 2 if text[pos] == "\\" else 1
        out.append(text[pos : pos + step])
        pos += step
    if pos >= len(text):
        return  # no quote at all: it really has no closing quote
    try:
        compile_pattern("".join(out))
    except RegexRejected as exc:
        raise MatchSyntaxError(str(exc), start) from None


def _raw_string(text: str, start: int) -> Token:
    """`r"..."` or `r#"..."#` (up to 255 `#`): the text between, exactly as written."""
    pos = start + 1
    hashes = 0
    while text.startswith("#", pos):
        hashes += 1
        pos += 1
    if hashes > _MAX_HASHES:
        raise MatchSyntaxError(f"a raw string takes at most {_MAX_HASHES} '#'", start)
    if not text.startswith('"', pos):
        raise MatchSyntaxError("raw string needs a double quote after r and any '#'", pos)

    closing = '"' + "#" * hashes
    end = text.find(closing, pos + 1)
    if end < 0:
        raise MatchSyntaxError("raw string has no closing quote", start)
    return Token(STRING, text[pos + 1 : end], start, end + len(closing))
