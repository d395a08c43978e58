"""What PostgreSQL holds for a ticker after a load."""

from typing import Any

import psycopg


def stored_rows(database_url: str, ticker: str) -> list[tuple[Any, ...]]:
    """(date text, open, high, low, close, volume, open_interest) by date."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT d.date::text, d.open, d.high, d.low, d.close, d.volume, d.open_interest"
            " FROM seasonality_data d JOIN tickers t ON t.id = d.ticker_id"
            " WHERE t.symbol = %s ORDER BY d.date",
            (ticker,),
        ).fetchall()


def row_versions(database_url: str, ticker: str) -> dict[str, tuple[str, str]]:
    """date -> (the row version's xmin, close): which rows a load rewrote."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT d.date::text, d.xmin::text, d.close::text FROM seasonality_data d"
            " JOIN tickers t ON t.id = d.ticker_id WHERE t.symbol = %s",
            (ticker,),
        ).fetchall()
    return {day: (xmin, close) for day, xmin, close in rows}
