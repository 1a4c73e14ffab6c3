"""SQL pieces shared by the store's keyset-paged lists and batch writes.

The registrations list (sql_store.py) and the physical-devices list (devices.py) page the
same way: rows in the order of one sort column, then the id column as tie-breaker, each
page starting after the (value, id) of the previous page's last row. Every sort column has
an index (account_id, column, id), so a page is one index range on both engines, unless
the caller's filter is selective enough that reading the few matching rows and sorting
them is cheaper (then the order is written so that no index can provide it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from warp_registry.domain.listing import Position


def marks(values: Sequence[Any]) -> str:
    """`?, ?, ?`: one placeholder per value."""
    return ", ".join("?" * len(values))


def like_pattern(text: str) -> str:
    """`%text%` with LIKE's wildcards (and the escape character itself) escaped."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_clause(columns: Iterable[str]) -> str:
    """One `lower(column) LIKE ?` per column, OR-combined; each takes a `like_pattern`.

    The pattern must be folded by the caller the way `lower()` folds (ASCII letters
    only, on both engines), so the engines agree.
    """
    return "(" + " OR ".join(f"lower({c}) LIKE ? ESCAPE '\\'" for c in columns) + ")"


class PageQuery(Protocol):
    """What a validated list request says about the page it wants."""

    @property
    def after(self) -> Position | None: ...

    @property
    def descending(self) -> bool: ...

    @property
    def per_page(self) -> int: ...


def keyset_page(
    select_from: str,
    where: Sequence[str],
    params: Sequence[Any],
    query: PageQuery,
    *,
    sort_column: str,
    id_column: str,
    index_leads: bool,
    text_columns: frozenset[str],
) -> tuple[str, list[Any]]:
    """The one statement that reads a page, and its parameters.

    `select_from` is the `SELECT ... FROM ...` part, `where` the filter conditions
    (AND-combined) and `params` their parameters. The statement asks for one row more
    than the page holds, so the caller knows whether a next page exists.
    """
    conditions, values = list(where), list(params)
    if query.after is not None:
        condition, start = _after_position(sort_column, id_column, query.after, query.descending)
        conditions.append(condition)
        values.extend(start)

    order = _order_by(
        sort_column,
        id_column,
        query.descending,
        index_leads=index_leads,
        text_columns=text_columns,
    )
    sql = f"{select_from} WHERE {' AND '.join(conditions)} ORDER BY {order} LIMIT ?"
    values.append(query.per_page + 1)
    return sql, values


def _after_position(
    column: str, id_column: str, after: Position, descending: bool
) -> tuple[str, list[Any]]:
    """The condition (and its parameters) that starts a page after `after`."""
    comparison = "<" if descending else ">"
    if column == id_column:
        return f"{id_column} {comparison} ?", [after.id]
    # A row-value comparison on plain columns: one index range on both engines.
    return f"({column}, {id_column}) {comparison} (?, ?)", [after.value, after.id]


def _order_by(
    column: str,
    id_column: str,
    descending: bool,
    *,
    index_leads: bool,
    text_columns: frozenset[str],
) -> str:
    """The ORDER BY keys: the sort column, then the id column (unless they are one).

    With `index_leads` False each key is written so that no index can provide the order
    (`|| ''` on text, `+ 0` on numbers: no value and no collation changes), which takes
    the plan that walks a sort index away from the planner: the few matching rows are
    found through their own index, then sorted.
    """
    keys = [column] if column == id_column else [column, id_column]
    if not index_leads:
        keys = [f"{key} || ''" if key in text_columns else f"{key} + 0" for key in keys]
    direction = "DESC" if descending else "ASC"
    return ", ".join(f"{key} {direction}" for key in keys)
