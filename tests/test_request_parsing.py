"""The query-string fast path must agree with urllib's `parse_qs` on every input."""

from __future__ import annotations

from urllib.parse import parse_qs

from hypothesis import given
from hypothesis import strategies as st

from warp_registry.http.request import parse_query

QUERY_TEXT = st.text(alphabet="ab=&%+;.-_:2F0", max_size=40)


@given(QUERY_TEXT)
def test_parse_query_matches_parse_qs(query_string: str) -> None:
    try:
        expected = parse_qs(query_string, keep_blank_values=True)
    except ValueError:  # parse_qs refuses nothing here, but keep the property honest
        return
    assert parse_query(query_string) == expected


def test_repeated_keys_keep_their_order() -> None:
    assert parse_query("id=b&id=a&include=policy") == {"id": ["b", "a"], "include": ["policy"]}
