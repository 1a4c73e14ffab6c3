"""The request and response objects handlers see: plain data, parsed lazily."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from warp_registry.http.envelope import success_body

JSON_HEADERS: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]


def parse_query(query_string: str) -> dict[str, list[str]]:
    """Split a query string into repeated-key lists, as `parse_qs` does.

    Most requests carry plain `name=value` pairs; those skip urllib's decoding machinery,
    which costs more than the rest of the GET handler's parsing. Anything percent-encoded,
    plus-encoded or `;`-separated goes through `parse_qs` itself.
    """
    if "%" in query_string or "+" in query_string or ";" in query_string:
        return parse_qs(query_string, keep_blank_values=True)

    query: dict[str, list[str]] = {}
    for pair in query_string.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            query.setdefault(name, []).append(value)
    return query


class Request:
    """One HTTP request, as far as the handlers need it."""

    __slots__ = ("_query", "body", "headers", "method", "path", "path_params", "query_string")

    def __init__(
        self,
        method: str,
        path: str,
        query_string: str,
        headers: dict[str, str],
        body: bytes = b"",
    ) -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.headers = headers
        self.body = body
        self.path_params: dict[str, str] = {}
        self._query: dict[str, list[str]] | None = None

    @property
    def query(self) -> dict[str, list[str]]:
        """Query parameters; a repeated key (`id=a&id=b`) keeps every value in order."""
        if self._query is None:
            self._query = parse_query(self.query_string)
        return self._query

    def query_one(self, name: str) -> str | None:
        """The last value of a scalar parameter, or None when absent."""
        values = self.query.get(name)
        return values[-1] if values else None


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=lambda: list(JSON_HEADERS))


def ok(result: Any, result_info: dict[str, Any] | None = None) -> Response:
    return Response(200, success_body(result, result_info))


def no_content() -> Response:
    return Response(204, b"", [])
