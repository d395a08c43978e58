"""DuckDB reads each CSV straight from the object store, normalises, validates and de-duplicates.

One DuckDB database per process (httpfs loaded and the S3 secret created once); each call works
on its own cursor, so threads never share a connection.
"""

import csv
import importlib.util
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import duckdb_extension_httpfs

from .errors import FileRejectedError, TransientError
from .layout import Layout, decode_legacy
from .settings import Settings

# DuckDB's Python client looks for pandas on every parameterised execute; where it is not
# installed, each look is a failed import (24 per file, ~5 ms): answer "absent" once.
if importlib.util.find_spec("pandas") is None:
    sys.modules["pandas"] = None  # type: ignore[assignment]

HTTPFS = (
    Path(duckdb_extension_httpfs.__file__).parent
    / "extensions"
    / f"v{duckdb.__version__}"
    / "httpfs.duckdb_extension"
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
REASONS = {
    "BAD_TICKER": "ticker is missing or not a plausible symbol",
    "BAD_DATE": "date does not parse",
    "DATE_OUT_OF_RANGE": "date is before 1900 or after today",
    "BAD_PRICE": "open, high, low or close is missing or does not parse",
    "BAD_VOLUME": "volume or open interest does not parse",
    "NON_POSITIVE_PRICE": "a price is zero or negative",
    "HIGH_BELOW_LOW": "high is below low",
    "OUTSIDE_RANGE": "open or close lies outside [low, high]",
    "NEGATIVE_VOLUME": "volume or open interest is negative",
}
_SETUP = files("shared").joinpath("normalise.sql").read_text(encoding="utf-8")
# Per-file decisions, from every row: day/month order of numeric dates (rows that fit only
# one order), decimal comma or point (cells only one reading explains), and where the data
# ends (trailing lines with at most one filled cell are a footer, not rows).
_DECIDE = r"""
SELECT
    count(*) FILTER (WHERE dmy IS NOT NULL AND mdy IS NULL),
    arg_min(d, rn) FILTER (WHERE dmy IS NOT NULL AND mdy IS NULL),
    min(rn) FILTER (WHERE dmy IS NOT NULL AND mdy IS NULL),
    count(*) FILTER (WHERE mdy IS NOT NULL AND dmy IS NULL),
    arg_min(d, rn) FILTER (WHERE mdy IS NOT NULL AND dmy IS NULL),
    min(rn) FILTER (WHERE mdy IS NOT NULL AND dmy IS NULL),
    count(*) FILTER (WHERE contains(numbers, ',') AND regexp_matches(numbers,
        ',[0-9]{1,2}(?:[^0-9]|$)|,[0-9]{4,}(?:[^0-9]|$)|[.][0-9]{3},')),
    count(*) FILTER (WHERE regexp_matches(numbers,
        '[.][0-9]{1,2}(?:[^0-9]|$)|[.][0-9]{4,}(?:[^0-9]|$)|,[0-9]{3}[.]')),
    coalesce(max(rn) FILTER (WHERE filled >= 2), 0)
FROM (SELECT rn, d, filled, concat_ws('|', open, high, low, close, volume, open_interest)
          AS numbers,
          ingest_ymd(ingest_dm(d).y, ingest_dm(d).a, ingest_dm(d).b) AS mdy,
          ingest_ymd(ingest_dm(d).y, ingest_dm(d).b, ingest_dm(d).a) AS dmy
      FROM raw)
"""
_CLASSIFY = """
CASE
    WHEN symbol IS NULL OR NOT regexp_full_match(symbol, '[A-Z0-9.\\-_^=/&]{1,20}')
        OR left(symbol, 1) IN ('=', '+', '-', '@') THEN 'BAD_TICKER'
    WHEN date IS NULL THEN 'BAD_DATE'
    WHEN date < DATE '1900-01-01' OR date > $today THEN 'DATE_OUT_OF_RANGE'
    WHEN open_v IS NULL OR high_v IS NULL OR low_v IS NULL OR close_v IS NULL THEN 'BAD_PRICE'
    WHEN volume_v IS NULL OR open_interest_v IS NULL THEN 'BAD_VOLUME'
    WHEN least(open_v, high_v, low_v, close_v) <= 0 THEN 'NON_POSITIVE_PRICE'
    WHEN high_v < low_v THEN 'HIGH_BELOW_LOW'
    WHEN open_v NOT BETWEEN low_v AND high_v OR close_v NOT BETWEEN low_v AND high_v
        THEN 'OUTSIDE_RANGE'
    WHEN volume_v < 0 OR open_interest_v < 0 THEN 'NEGATIVE_VOLUME'
END
"""
PRICES = ("open", "high", "low", "close")
AMOUNTS = ("volume", "open_interest")
# DuckDB's default 32 MiB read buffer per scan adds up when files are read several at a time.
MAX_LINE_BYTES = 2 << 20
CSV_BUFFER_BYTES = 2 * MAX_LINE_BYTES
_VALUES = ", ".join(f"ingest_value({f}) AS {f}_v" for f in PRICES + AMOUNTS)
# The common file (ISO dates, plain decimal numbers) takes a lane of plain casts: one pattern
# per row decides it, and the per-cell cleaning of the general lane costs several times more.
_PLAIN_NUMBER = "([0-9]+([.][0-9]+)?)?"
_PLAIN_CHECK = (
    "SELECT count(*) FILTER (WHERE NOT (regexp_full_match(coalesce(d, ''),"
    " '[0-9]{4}-[0-9]{2}-[0-9]{2}') AND regexp_full_match(concat_ws('|', "
    + ", ".join(f"coalesce({f}, '')" for f in PRICES + AMOUNTS)
    + f"), '({_PLAIN_NUMBER}[|]){{5}}{_PLAIN_NUMBER}'))) FROM raw"
)
_PLAIN_ROWS = (
    "SELECT rn, symbol, TRY_CAST(d AS DATE) AS date, "
    + ", ".join(f"nullif({f}, '') AS {f}" for f in PRICES)
    + ", "
    + ", ".join(f"coalesce(nullif({f}, ''), '0') AS {f}" for f in AMOUNTS)
    + " FROM raw"
)
_PLAIN_VALUES = ", ".join(f"CAST({f} AS DOUBLE) AS {f}_v" for f in PRICES + AMOUNTS)


TickerIds = Callable[[list[str]], dict[str, int]]


@dataclass(frozen=True)
class ParsedFile:
    # ticker_id,date,open,high,low,close,volume,open_interest,uploaded_at: the valid rows,
    # de-duplicated, in primary-key order, ready for COPY into seasonality_data
    rows_csv: Path
    rejects_csv: Path | None
    rows_loaded: int
    rows_rejected: int
    tickers: list[str]
    ticker_ids: list[int]
    first_date: date | None
    last_date: date | None


class Reader:
    def __init__(self, settings: Settings) -> None:
        # One thread per query: files arrive several at a time, and a 5,000-row file is too
        # small to split; beyond the memory limit DuckDB spills to the temporary directory.
        self._db = duckdb.connect(
            config={
                "memory_limit": settings.duckdb_memory_limit,
                "threads": settings.duckdb_threads,
                "temp_directory": str(Path(tempfile.gettempdir()) / "ingest-duckdb"),
            }
        )
        self._db.execute(f"LOAD '{HTTPFS}'")
        endpoint = urlsplit(settings.s3_endpoint)
        self._db.execute(
            "CREATE SECRET ingest_s3 (TYPE s3, KEY_ID $key, SECRET $secret, ENDPOINT $endpoint,"
            " URL_STYLE 'path', USE_SSL $ssl, REGION $region)",
            {
                "key": settings.s3_access_key,
                "secret": settings.s3_secret_key,
                "endpoint": endpoint.netloc,
                "ssl": endpoint.scheme == "https",
                "region": settings.s3_region,
            },
        )
        self._db.execute(_SETUP)
        self._db.executemany("INSERT INTO ingest_reasons VALUES (?, ?)", list(REASONS.items()))
        self._lock = threading.Lock()

    def read(
        self,
        url: str,
        layout: Layout,
        ticker: str | None,
        uploaded_at: datetime,
        ticker_ids: TickerIds,
        workdir: Path,
    ) -> ParsedFile:
        """Parse one object into a CSV of valid rows ready for COPY, and one of rejected rows.

        `ticker_ids` maps the file's symbols to ids (creating them) before the rows are written.
        """
        with self._lock:
            cursor = self._db.cursor()
        try:
            return _read(cursor, url, layout, ticker, workdir, _Stamp(uploaded_at, ticker_ids))
        except duckdb.IOException as error:
            raise TransientError(f"object store unavailable: {error}") from error
        except duckdb.OutOfMemoryException as error:  # other files are in flight: try later
            raise TransientError(f"DuckDB out of memory: {_first_line(error)}") from error
        except (duckdb.InvalidInputException, duckdb.ConversionException) as error:
            cause = _first_line(error)
            raise FileRejectedError(f"The file cannot be read as CSV: {cause}") from error
        finally:
            cursor.close()


@dataclass(frozen=True)
class _Stamp:
    uploaded_at: datetime
    ticker_ids: TickerIds


def _read(
    cursor: duckdb.DuckDBPyConnection,
    url: str,
    layout: Layout,
    ticker: str | None,
    workdir: Path,
    stamp: _Stamp,
) -> ParsedFile:
    if layout.text_encoding is not None:
        url = _transcoded(cursor, url, layout.text_encoding, workdir)
    scan, params = _scan(url, layout)
    fields = ", ".join(PRICES + AMOUNTS)
    cursor.execute(
        f"CREATE TEMP TABLE raw AS SELECT rn, {_raw_cells(layout)} FROM ({scan})",
        {**params, **({"ticker": ticker} if "ticker" not in layout.columns else {})},
    )
    if _plain(cursor):
        rows, values, lane = _PLAIN_ROWS, _PLAIN_VALUES, {}
    else:
        dayfirst, comma, last = _decide(cursor, layout)
        rows = (
            f"SELECT rn, {_normalised()} FROM raw WHERE rn <= $last OR filled >= 2"
            " OR ingest_date(d, $dayfirst) IS NOT NULL"
        )
        values, lane = _VALUES, {"dayfirst": dayfirst, "comma": comma, "last": last}
    cursor.execute(
        f"CREATE TEMP TABLE parsed AS SELECT rn, reason, symbol, date, {fields},"
        " reason IS NULL AND row_number() OVER (PARTITION BY symbol, date, reason IS NULL"
        " ORDER BY rn DESC) = 1 AS keep"
        f" FROM (SELECT *, {_CLASSIFY} AS reason FROM (SELECT *, {values} FROM ({rows})))",
        {"today": datetime.now(UTC).date(), **lane},
    )
    loaded, rejected, tickers, first, last_date = _one(
        cursor,
        "SELECT count(*) FILTER (WHERE keep), count(*) FILTER (WHERE reason IS NOT NULL),"
        " list(DISTINCT symbol ORDER BY symbol) FILTER (WHERE keep),"
        " min(date) FILTER (WHERE keep), max(date) FILTER (WHERE keep) FROM parsed",
    )
    if rejected and not loaded:
        code, line = _one(cursor, "SELECT reason, rn FROM parsed ORDER BY rn LIMIT 1")
        raise FileRejectedError(
            f"No valid data rows: all {rejected} were rejected (first, line "
            f"{layout.header_line + 1 + line}: {REASONS[code]})."
        )
    tickers = list(tickers or [])
    ids = stamp.ticker_ids(tickers)
    rows_csv = workdir / "rows.csv"
    cursor.execute(
        f"COPY (SELECT m.id, p.date, {', '.join('p.' + f for f in PRICES + AMOUNTS)},"
        " $uploaded_at FROM parsed p JOIN (SELECT unnest($symbols) AS symbol,"
        " unnest($ids) AS id) m ON m.symbol = p.symbol WHERE p.keep ORDER BY m.id, p.date)"
        f" TO '{rows_csv}' (HEADER false)",
        {
            "uploaded_at": stamp.uploaded_at.isoformat(),
            "symbols": tickers,
            "ids": [ids[t] for t in tickers],
        },
    )
    rejects_csv = _write_rejects(cursor, scan, params, layout, workdir) if rejected else None
    return ParsedFile(
        rows_csv,
        rejects_csv,
        loaded,
        rejected,
        tickers,
        sorted(ids[t] for t in tickers),
        first,
        last_date,
    )


def _transcoded(cursor: duckdb.DuckDBPyConnection, url: str, encoding: str, workdir: Path) -> str:
    """A local UTF-8 copy of an object DuckDB cannot decode (only legacy and UTF-16 BE files)."""
    row = cursor.execute("SELECT content FROM read_blob($url)", {"url": url}).fetchone()
    assert row is not None
    content = row[0]
    path = workdir / "transcoded.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(decode_legacy(bytes(content), encoding))
    return str(path)


def _plain(cursor: duckdb.DuckDBPyConnection) -> bool:
    return not _one(cursor, _PLAIN_CHECK)[0]


def _decide(cursor: duckdb.DuckDBPyConnection, layout: Layout) -> tuple[bool, bool, int]:
    """Day-first dates?, decimal comma?, and the last data row (what follows is a footer)."""
    (dmy_rows, dmy_value, dmy_rn, mdy_rows, mdy_value, mdy_rn, comma_cells, point_cells, last) = (
        _one(cursor, _DECIDE)
    )
    if dmy_rows and mdy_rows:
        first = layout.header_line + 1
        raise FileRejectedError(
            "The day/month order of the dates cannot be decided: "
            f"{dmy_value!r} (line {first + dmy_rn}) only fits day-first, "
            f"{mdy_value!r} (line {first + mdy_rn}) only fits month-first."
        )
    # Decimal comma when only a decimal comma explains the numbers, or in a `;` file unless only
    # a decimal point does; otherwise the comma groups thousands.
    comma = bool(comma_cells and not point_cells) or (
        layout.delimiter == ";" and not (point_cells and not comma_cells)
    )
    return bool(dmy_rows), comma, int(last)


def _scan(url: str, layout: Layout) -> tuple[str, dict[str, object]]:
    columns = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(layout.names)))
    scan = (
        "SELECT row_number() OVER () AS rn, * FROM read_csv($url, columns = {" + columns + "},"
        " delim = $delim, skip = $skip, header = false, quote = '\"', escape = '\"',"
        " auto_detect = false, null_padding = true, strict_mode = false, encoding = $encoding,"
        " buffer_size = $buffer, max_line_size = $max_line)"
    )
    return scan, {
        "url": url,
        "delim": layout.delimiter,
        "skip": layout.header_line + 1,
        "encoding": layout.encoding,
        "buffer": CSV_BUFFER_BYTES,
        "max_line": MAX_LINE_BYTES,
    }


def _raw_cells(layout: Layout) -> str:
    """symbol, the trimmed date text, each number's raw text, and how many cells are filled."""

    def cell(field: str) -> str:
        return f"c{layout.columns[field]}" if field in layout.columns else "NULL::VARCHAR"

    symbol = f"upper(trim({cell('ticker')}))" if "ticker" in layout.columns else "$ticker"
    numbers = [f"{cell(f)} AS {f}" for f in PRICES + AMOUNTS]
    filled = " + ".join(f"(c{i} <> '')::INTEGER" for i in range(len(layout.names)))
    return (
        f"{symbol} AS symbol, ingest_trim({cell('date')}) AS d, "
        + ", ".join(numbers)
        + f", {filled} AS filled"
    )


def _normalised() -> str:
    """symbol, date, then each number as cleaned text (blank amounts are 0)."""
    prices = [f"ingest_text({f}, $comma) AS {f}" for f in PRICES]
    amounts = [f"coalesce(ingest_text({f}, $comma), '0') AS {f}" for f in AMOUNTS]
    return "symbol, ingest_date(d, $dayfirst) AS date, " + ", ".join(prices + amounts)


def _write_rejects(
    cursor: duckdb.DuckDBPyConnection,
    scan: str,
    params: dict[str, object],
    layout: Layout,
    workdir: Path,
) -> Path:
    """line, the original cells (formula-neutralised), reason, message: one row per rejected row."""
    body = workdir / "rejects-body.csv"
    cells = ", ".join(f"ingest_cell(src.c{i})" for i in range(len(layout.names)))
    cursor.execute(
        f"COPY (SELECT src.rn + {layout.header_line + 1}, {cells}, p.reason, r.message"
        " FROM parsed p JOIN ingest_reasons r ON r.code = p.reason"
        f" JOIN ({scan}) src ON src.rn = p.rn ORDER BY p.rn) TO '{body}' (HEADER false)",
        params,
    )
    path = workdir / "rejects.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerow(["line", *map(_neutralised, layout.names), "reason", "message"])
        with body.open(encoding="utf-8") as rows:
            shutil.copyfileobj(rows, out)
    return path


def _neutralised(cell: str) -> str:
    return f"'{cell}" if cell.startswith(FORMULA_STARTS) else cell


def _one(cursor: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    row = cursor.execute(sql).fetchone()
    assert row is not None
    return tuple(row)


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0][:300]
