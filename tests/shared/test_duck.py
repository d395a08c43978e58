"""duck.one: the single row of a query, as a tuple; a query with no row is a bug, not a value."""

import duckdb
import pytest

from shared.duck import one


def test_one_is_the_row_of_an_aggregate_as_a_tuple() -> None:
    cursor = duckdb.connect().cursor()
    assert one(cursor, "SELECT count(*), max(x) FROM range($n) t(x)", {"n": 5}) == (5, 4)


def test_a_query_without_a_row_fails_loudly() -> None:
    cursor = duckdb.connect().cursor()
    with pytest.raises(AssertionError):
        one(cursor, "SELECT 1 WHERE false")
