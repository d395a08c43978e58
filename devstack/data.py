"""Deterministic OHLCV files: the same arguments give the same bytes.

Two price patterns, both valid bars (low <= open, close <= high):
  * `ohlcv_csv`: consecutive calendar days from 2020-01-01, prices stepping by 0.01 a day so
    every row is distinct (the tests' small files);
  * `Generator`: business days, 500 distinct bars cycling with (ticker index, day) (the demo
    batch and the benchmark's daily batches).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

HEADER = "Date,Ticker,Open,High,Low,Close,Volume,OpenInterest\n"
NO_TICKER_HEADER = "Date,Open,High,Low,Close,Volume\n"
FIRST_DAY = date(2000, 1, 3)
CALENDAR_START = date(2020, 1, 1)
BARS = [
    f"{b:.2f},{b + 1.5:.2f},{b - 1.25:.2f},{b + 0.5:.2f}" for b in (50 + k / 4 for k in range(500))
]
Files = list[tuple[str, bytes]]


def _csv(header: str, lines: Iterable[str]) -> bytes:
    return (header + "".join(f"{line}\n" for line in lines)).encode()


def ohlcv_csv(ticker: str | None, days: int, start: int = 0, price: str = "100.25") -> bytes:
    """`days` consecutive-date rows from 2020-01-01 + `start` days; prices step by 0.01 so every
    row is distinct. Without a ticker the file has no Ticker and OpenInterest columns."""
    base = float(price)

    def line(day: int) -> str:
        when = (CALENDAR_START + timedelta(days=day)).isoformat()
        named = f"{when},{ticker}" if ticker else when
        tail = f"{1000 + day},7" if ticker else f"{1000 + day}"
        return f"{named},{price},{base + 50:.2f},1.5,{base + day / 100:.2f},{tail}"

    return _csv(HEADER if ticker else NO_TICKER_HEADER, map(line, range(start, start + days)))


def multi_ticker_csv(prefix: str, tickers: int, days: int) -> bytes:
    """One file of `tickers` tickers named <prefix>00, <prefix>01, … with `days` rows each."""
    parts = [ohlcv_csv(f"{prefix}{n:02d}", days).split(b"\n", 1) for n in range(tickers)]
    return parts[0][0] + b"\n" + b"".join(body for _, body in parts)


def business_days(count: int, first: date = FIRST_DAY) -> list[date]:
    """`count` weekdays from `first` on."""
    days: list[date] = []
    day = first
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def business_days_until(count: int, last: date) -> list[date]:
    """The `count` weekdays that end at `last` (or the weekday before it)."""
    days: list[date] = []
    day = last
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day -= timedelta(days=1)
    return days[::-1]


class Generator:
    """Rows of ticker `index` on business day n: bar (index * 7 + n) % 500 of BARS, volume
    1000 + 3n, open interest n % 50. Days from 2000-01-03 unless given."""

    def __init__(self, days: int, dates: list[date] | None = None) -> None:
        self.days = [d.isoformat() for d in (dates or business_days(days))]
        self.tails = [f"{1000 + n * 3},{n % 50}" for n in range(len(self.days))]

    def lines(self, index: int, label: str | int, days: int) -> str:
        """`date,label,open,high,low,close,volume,oi` lines; label is a symbol or a ticker id."""
        d, t = self.days, self.tails
        return "".join(
            f"{d[n]},{label},{BARS[(index * 7 + n) % 500]},{t[n]}\n" for n in range(days)
        )

    def file(self, index: int, symbol: str, days: int) -> bytes:
        return (HEADER + self.lines(index, symbol, days)).encode()


def symbol(index: int, prefix: str = "BN") -> str:
    return f"{prefix}{index:04d}"


def batch_files(gen: Generator, files: int, days: int, prefix: str = "BN") -> Files:
    """`files` files <prefix>0000.csv, …, one ticker of `days` rows each."""
    return [
        (f"{symbol(i, prefix)}.csv", gen.file(i, symbol(i, prefix), days)) for i in range(files)
    ]


def rss_file(gen: Generator, rows: int) -> tuple[bytes, int]:
    """One file of `rows` rows: as many tickers of up to 5,000 days as it takes."""
    days = min(5000, rows)
    tickers = max(1, rows // days)
    body = HEADER + "".join(gen.lines(10_000 + t, f"RS{t:04d}", days) for t in range(tickers))
    return body.encode(), tickers * days


def demo_files(count: int, rows: int, last: date | None = None) -> Files:
    """The demo batch: DEMO0000.csv, … with `rows` business days each up to `last` (default
    yesterday, so the data looks current)."""
    end = last or datetime.now(UTC).date() - timedelta(days=1)
    return batch_files(Generator(rows, business_days_until(rows, end)), count, rows, "DEMO")


def folder_files(folder: Path) -> Files:
    """The visible files of a folder, by name."""
    return [
        (p.name, p.read_bytes())
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.startswith(".")
    ]
