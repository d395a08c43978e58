"""Plausibility checks of a file's valid rows, in the reader's DuckDB pass.

Per ticker, in date order, each row is compared with the row before it: the file's previous
row, or for a ticker's first row the stored row before it (one bounded lookup per file, the
`Previous` callback). What is found is a warning by default (the row loads, and is listed with
its line in the warnings CSV); in `reject` mode the flagged rows are rejected with the code as
their reason instead. CONFLICT (one batch holding a ticker and date twice with different
values) needs the other file, so the load finds it (shared/database.py) and adds its rows
here (`with_conflicts`).

Warnings CSV: line, ticker, date, code, close, ref_line, ref_date, ref_close, message; one row
per (row, code), in line order. `ref_*` is the row the check compared with (ref_line empty:
the stored row before the file, or for CONFLICT the other file's row, which the message names
with the file whose value won).
"""

import csv
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import duckdb

from .duck import one

# off: no checks and no series (the file's rows load as read)
Mode = Literal["warn", "reject", "off"]
# Most serious first: in reject mode a row flagged twice is rejected with the first.
CODES = {
    "UNIT_SWITCH": "close is 50 times (or a 50th of) the previous close: a unit change",
    "LARGE_MOVE": "close moved more than the allowed share from the previous close",
    "STALE": "one of 10 or more consecutive rows with identical open, high, low and close",
    "GAP": "more business days are missing before this row than allowed",
    "CONFLICT": "another file of the batch holds this ticker and date with other values",
}
UNIT_FACTOR = 50
STALE_ROWS = 10
SERIES_POINTS = 60  # at most this many points in a file's sparkline series
WARNINGS_HEADER = (
    "line",
    "ticker",
    "date",
    "code",
    "close",
    "ref_line",
    "ref_date",
    "ref_close",
    "message",
)
# (ticker id, first date of the ticker in the file) -> (ticker id, date, close) of the stored
# row before it, for the tickers that have one.
Previous = Callable[[list[int], list[date]], list[tuple[int, date, float]]]


@dataclass(frozen=True)
class Checks:
    mode: Mode = "warn"
    max_move: float = 0.5
    max_gap_days: int = 10


WARN = Checks()


@dataclass(frozen=True)
class Found:
    counts: dict[str, int]  # code -> rows flagged (warn mode; empty in reject mode)
    warnings_csv: Path | None
    rejected: int  # rows turned into rejects (reject mode)
    series: dict[str, Any] | None


@dataclass(frozen=True)
class Conflict:
    """A row of the file that another file of its batch holds with other values."""

    ticker_id: int
    ticker: str
    date: date
    close: Decimal
    other_close: Decimal
    other_file: str  # the other file's name
    other_key: str  # and object key
    won: bool  # this file's value won (it is the later upload)

    def message(self) -> str:
        winner = "this file" if self.won else f"{self.other_file} ({self.other_key})"
        return (
            f"{CODES['CONFLICT']}: {self.other_file} ({self.other_key});"
            f" the later upload won: {winner}"
        )


# One sort per ticker (window w) gives each row the row before it and whether it starts a run
# of identical OHLC; runs of STALE_ROWS or more come from a small aggregate, not a window;
# `prior` holds the stored row before each ticker's first date.
_FLAGGED = f"""
WITH prior AS (
    SELECT unnest($prior_symbols::VARCHAR[]) AS symbol, unnest($prior_dates::DATE[]) AS date,
        unnest($prior_closes::DOUBLE[]) AS close
), k AS (
    SELECT rn, symbol, date, close_v,
        lag(rn) OVER w AS prev_rn, lag(date) OVER w AS prev_date, lag(close_v) OVER w AS prev_close,
        coalesce(open_v IS DISTINCT FROM lag(open_v) OVER w OR high_v IS DISTINCT FROM
            lag(high_v) OVER w OR low_v IS DISTINCT FROM lag(low_v) OVER w
            OR close_v IS DISTINCT FROM lag(close_v) OVER w, true) AS starts
    FROM parsed WHERE keep WINDOW w AS (PARTITION BY symbol ORDER BY date)
), r AS MATERIALIZED (
    SELECT *, sum(starts::INTEGER) OVER (PARTITION BY symbol ORDER BY date
        ROWS UNBOUNDED PRECEDING) AS run FROM k
), runs AS (
    SELECT symbol, run, arg_min(rn, date) AS run_rn, min(date) AS run_date FROM r
    GROUP BY ALL HAVING count(*) >= {STALE_ROWS}
)
SELECT rn, symbol, date, code, close_v, ref_rn, ref_date, ref_close FROM (
    SELECT rn, symbol, date, close_v, prev_rn AS ref_rn, ref_date, ref_close, CASE
        WHEN close_v >= {UNIT_FACTOR} * ref_close OR ref_close >= {UNIT_FACTOR} * close_v
            THEN 'UNIT_SWITCH'
        WHEN abs(close_v / ref_close - 1) > $max_move THEN 'LARGE_MOVE' END AS code
    FROM (SELECT r.rn, r.symbol, r.date, r.close_v, r.prev_rn,
            CASE WHEN r.prev_rn IS NULL THEN s.close ELSE r.prev_close END AS ref_close,
            CASE WHEN r.prev_rn IS NULL THEN s.date ELSE r.prev_date END AS ref_date
          FROM r LEFT JOIN prior s ON s.symbol = r.symbol AND r.prev_rn IS NULL)
    WHERE ref_close > 0
    UNION ALL
    SELECT r.rn, r.symbol, r.date, r.close_v, u.run_rn, u.run_date, r.close_v, 'STALE'
    FROM r JOIN runs u ON u.symbol = r.symbol AND u.run = r.run WHERE r.rn <> u.run_rn
    UNION ALL
    SELECT rn, symbol, date, close_v, prev_rn, prev_date, prev_close, 'GAP'
    FROM r WHERE prev_rn IS NOT NULL
        AND ingest_bdays(date) - ingest_bdays(prev_date + 1) > $max_gap
) WHERE code IS NOT NULL
"""
_PRIORITY = " ".join(f"WHEN '{code}' THEN {n}" for n, code in enumerate(CODES))
# warn mode: the flags in the warnings CSV's order, fetched as they stream
_FLAGS = f"{_FLAGGED} ORDER BY rn, CASE code {_PRIORITY} END"
# reject mode: each flagged row rejected with its most serious code; the rows rejected
_REJECT = f"""
UPDATE parsed SET reason = f.code, keep = false
FROM (SELECT rn, arg_min(code, CASE code {_PRIORITY} END) AS code FROM ({_FLAGGED}) GROUP BY rn) f
WHERE parsed.rn = f.rn
"""
# The file's main ticker's weekly closes (the week's last) with the week's Monday;
# _series thins them to SERIES_POINTS buckets of whole weeks.
_WEEKS = """
SELECT arg_max(close_v, date), max(date), date_trunc('week', date)::DATE AS week FROM parsed
WHERE keep AND symbol = $symbol GROUP BY week ORDER BY week
"""
_MAIN_TICKER = (
    "SELECT symbol FROM parsed WHERE keep GROUP BY symbol ORDER BY count(*) DESC, symbol LIMIT 1"
)
_FETCH_ROWS = 2048


def check(
    cursor: duckdb.DuckDBPyConnection,
    checks: Checks,
    ids: dict[str, int],
    previous: Previous | None,
    line_offset: int,
    workdir: Path,
    tickers: list[str],
    first: date | None,
) -> Found:
    """Flag the parsed rows: list them in a warnings CSV, or in reject mode turn them into
    rejects. `tickers` are the symbols of the rows kept, `first` their first date."""
    if checks.mode == "off":
        return Found({}, None, 0, None)
    symbols: list[str] = list(tickers) if first is not None else []
    dates: list[date] = [first] if first is not None else []
    if len(symbols) > 1:
        symbols, dates = one(
            cursor,
            "SELECT list(symbol ORDER BY symbol), list(min_date ORDER BY symbol) FROM"
            " (SELECT symbol, min(date) AS min_date FROM parsed WHERE keep GROUP BY symbol)",
        )
    stored = previous([ids[s] for s in symbols], dates) if previous and symbols else []
    by_id = {ids[s]: s for s in symbols}
    params = {
        "max_move": checks.max_move,
        "max_gap": checks.max_gap_days,
        "prior_symbols": [by_id[t] for t, _, _ in stored],
        "prior_dates": [d for _, d, _ in stored],
        "prior_closes": [float(c) for _, _, c in stored],
    }
    if checks.mode == "reject":
        rejected = int(one(cursor, _REJECT, params)[0])
        return Found({}, None, rejected, _series(cursor, symbols, set()))
    counts, path, weeks = _write(cursor.execute(_FLAGS, params), line_offset, workdir)
    ordered = {code: counts[code] for code in CODES if code in counts}
    return Found(ordered, path, 0, _series(cursor, symbols, weeks))


def _write(
    flags: duckdb.DuckDBPyConnection, line_offset: int, workdir: Path
) -> tuple[dict[str, int], Path | None, set[tuple[str, date]]]:
    """The warnings CSV of the flags (None: no flag), the rows per code, and the (ticker,
    Monday) of each week holding a flagged row."""
    counts: dict[str, int] = {}
    weeks: set[tuple[str, date]] = set()
    batch = flags.fetchmany(_FETCH_ROWS)
    if not batch:
        return counts, None, weeks
    path = workdir / "warnings.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(WARNINGS_HEADER)
        while batch:
            for rn, symbol, day, code, close, ref_rn, ref_date, ref_close in batch:
                counts[code] = counts.get(code, 0) + 1
                weeks.add((symbol, day - timedelta(days=day.weekday())))
                writer.writerow(
                    (
                        rn + line_offset,
                        symbol,
                        day,
                        code,
                        close,
                        "" if ref_rn is None else ref_rn + line_offset,
                        ref_date,
                        ref_close,
                        CODES[code],
                    )
                )
            batch = flags.fetchmany(_FETCH_ROWS)
    return counts, path, weeks


def _series(
    cursor: duckdb.DuckDBPyConnection, symbols: list[str], flagged: set[tuple[str, date]]
) -> dict[str, Any] | None:
    """The main ticker (most rows) as at most SERIES_POINTS points: buckets of whole weeks,
    each the close of its last week and flagged when one of its rows is (`flagged`: the
    (ticker, Monday) of the weeks holding a flagged row)."""
    if not symbols:
        return None
    main = symbols[0] if len(symbols) == 1 else one(cursor, _MAIN_TICKER)[0]
    weeks = cursor.execute(_WEEKS, {"symbol": main}).fetchall()
    if not weeks:  # reject mode took all its rows
        return None
    size = -(-len(weeks) // SERIES_POINTS)
    buckets = [weeks[i : i + size] for i in range(0, len(weeks), size)]
    return {
        "ticker": main,
        "from": buckets[0][-1][1].isoformat(),
        "to": buckets[-1][-1][1].isoformat(),
        "close": [float(f"{bucket[-1][0]:.6g}") for bucket in buckets],
        "flagged": [
            n for n, bucket in enumerate(buckets) if any((main, w[2]) in flagged for w in bucket)
        ],
    }


def with_conflicts(
    warnings_csv: Path | None,
    conflicts: list[Conflict],
    rows_csv: Path,
    lines_csv: Path | None,
    workdir: Path,
) -> Path:
    """The file's warnings CSV with a CONFLICT row for each conflict, at the line of the row
    (the reader's lines_csv holds the line of each row of rows_csv; empty without it), in
    line order."""
    lines: dict[tuple[int, str], str] = {}
    wanted = {(c.ticker_id, c.date.isoformat()) for c in conflicts}
    if lines_csv is not None:
        with (
            rows_csv.open(newline="", encoding="utf-8") as rows_file,
            lines_csv.open(encoding="utf-8") as lines_file,
        ):
            for row, line in zip(csv.reader(rows_file), lines_file, strict=True):
                if (int(row[0]), row[1]) in wanted:
                    lines[(int(row[0]), row[1])] = line.strip()
    rows: list[list[str]] = []
    if warnings_csv is not None:
        with warnings_csv.open(newline="", encoding="utf-8") as file:
            rows = list(csv.reader(file))[1:]
    for c in conflicts:
        day = c.date.isoformat()
        line = lines.get((c.ticker_id, day), "")
        rows.append(
            [line, c.ticker, day, "CONFLICT", str(c.close), "", day, str(c.other_close)]
            + [c.message()]
        )
    order = {code: n for n, code in enumerate(CODES)}
    rows.sort(key=lambda r: (not r[0], int(r[0] or 0), order.get(r[3], len(order))))
    path = workdir / "warnings-conflicts.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(WARNINGS_HEADER)
        writer.writerows(rows)
    return path
