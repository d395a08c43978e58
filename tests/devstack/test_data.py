"""The data generator: deterministic bytes, valid bars, the layouts the tests rely on."""

import csv
import io
from datetime import date
from decimal import Decimal

from devstack.data import (
    HEADER,
    Generator,
    batch_files,
    business_days,
    demo_files,
    multi_ticker_csv,
    ohlcv_csv,
    rss_file,
)


def _rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode())))


def test_ohlcv_csv_has_distinct_consecutive_days_and_optional_ticker() -> None:
    rows = _rows(ohlcv_csv("ABC", 3, start=2))
    assert [r["Date"] for r in rows] == ["2020-01-03", "2020-01-04", "2020-01-05"]
    assert [r["Close"] for r in rows] == ["100.27", "100.28", "100.29"]
    assert {r["Ticker"] for r in rows} == {"ABC"} and rows[0]["OpenInterest"] == "7"
    assert ohlcv_csv(None, 1).splitlines()[0] == b"Date,Open,High,Low,Close,Volume"


def test_multi_ticker_csv_keeps_one_header() -> None:
    rows = _rows(multi_ticker_csv("K", 3, 4))
    assert len(rows) == 12 and [r["Ticker"] for r in rows[::4]] == ["K00", "K01", "K02"]


def test_generator_bars_are_valid_and_output_is_deterministic() -> None:
    gen = Generator(600)
    assert gen.file(3, "X", 600) == Generator(600).file(3, "X", 600)
    for row in _rows(gen.file(3, "X", 600)):
        o, h, lo, c = (Decimal(row[k]) for k in ("Open", "High", "Low", "Close"))
        assert lo <= min(o, c) and max(o, c) <= h
        assert date.fromisoformat(row["Date"]).weekday() < 5


def test_batch_and_rss_files_have_the_rows_asked_for() -> None:
    gen = Generator(5000)
    files = batch_files(gen, 3, 10)
    assert [name for name, _ in files] == ["BN0000.csv", "BN0001.csv", "BN0002.csv"]
    assert all(body.startswith(HEADER.encode()) and body.count(b"\n") == 11 for _, body in files)
    body, rows = rss_file(gen, 12_000)  # whole tickers of 5,000 days
    assert rows == 10_000 == len(_rows(body))
    assert rss_file(gen, 20_000)[1] == 20_000


def test_demo_files_end_at_the_given_business_day() -> None:
    [(name, body)] = demo_files(1, 5, last=date(2024, 3, 10))  # a Sunday
    rows = _rows(body)
    assert name == "DEMO0000.csv" and rows[-1]["Date"] == "2024-03-08"
    assert [r["Date"] for r in rows] == [d.isoformat() for d in business_days(5, date(2024, 3, 4))]
