"""What the reader and the plausibility checks share of DuckDB's Python client."""

from typing import Any

import duckdb


def one(
    cursor: duckdb.DuckDBPyConnection, sql: str, params: dict[str, object] | None = None
) -> tuple[Any, ...]:
    """The one row a query answers (an aggregate, a LIMIT 1 over a table known to have it)."""
    row = cursor.execute(sql, params).fetchone()
    assert row is not None
    return tuple(row)
