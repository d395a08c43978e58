"""DuckDB reads each CSV straight from the object store, normalises, validates and de-duplicates.

One DuckDB database per process (httpfs loaded and the S3 secret created once); each call works
on its own cursor, so threads never share a connection.
"""

import csv
import shutil
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import duckdb_extension_httpfs

from .errors import FileRejectedError, TransientError
from .layout import Layout
from .settings import Settings

HTTPFS = (
    Path(duckdb_extension_httpfs.__file__).parent
    / "extensions" / f"v{duckdb.__version__}" / "httpfs.duckdb_extension"
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
# Prices travel as cleaned text, so PostgreSQL stores exactly the digits written; DOUBLE
# copies serve only to validate (DECIMAL(38, 18) casts cost 30 times more here).
_SETUP = """
CREATE MACRO ingest_blank(x) AS x IS NULL OR lower(trim(x)) IN ('', '-', 'null', 'nan', 'n/a');
CREATE MACRO ingest_text(x) AS CASE WHEN NOT ingest_blank(x)
    THEN regexp_replace(trim(x), '[$,\\s]', '', 'g') END;
CREATE MACRO ingest_value(t) AS CASE
    WHEN regexp_full_match(t, '[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]{1,3})?')
    THEN CAST(t AS DOUBLE) END;
CREATE MACRO ingest_date(x) AS COALESCE(
    TRY_CAST(left(trim(x), 10) AS DATE), TRY_STRPTIME(trim(x), '%Y%m%d')::DATE);
CREATE MACRO ingest_cell(x) AS CASE WHEN regexp_matches(x, '^[=+\\-@\\t\\r]') THEN \'\'\'\' || x
    ELSE x END;
CREATE TABLE ingest_reasons (code VARCHAR PRIMARY KEY, message VARCHAR);
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
_VALUES = ", ".join(f"ingest_value({f}) AS {f}_v" for f in PRICES + AMOUNTS)


@dataclass(frozen=True)
class ParsedFile:
    rows_csv: Path  # symbol,date,open,high,low,close,volume,open_interest: valid, de-duplicated
    rejects_csv: Path | None
    rows_loaded: int
    rows_rejected: int
    tickers: list[str]


class Reader:
    def __init__(self, settings: Settings) -> None:
        self._db = duckdb.connect(config={"memory_limit": settings.duckdb_memory_limit})
        self._db.execute(f"LOAD '{HTTPFS}'")
        endpoint = urlsplit(settings.s3_endpoint)
        self._db.execute(
            "CREATE SECRET ingest_s3 (TYPE s3, KEY_ID $key, SECRET $secret, ENDPOINT $endpoint,"
            " URL_STYLE 'path', USE_SSL $ssl, REGION $region)",
            {"key": settings.s3_access_key, "secret": settings.s3_secret_key,
             "endpoint": endpoint.netloc, "ssl": endpoint.scheme == "https",
             "region": settings.s3_region},
        )
        self._db.execute(_SETUP)
        self._db.executemany("INSERT INTO ingest_reasons VALUES (?, ?)", list(REASONS.items()))
        self._lock = threading.Lock()

    def read(self, url: str, layout: Layout, ticker: str | None, workdir: Path) -> ParsedFile:
        """Parse one object into a CSV of valid rows ready for COPY, and one of rejected rows."""
        with self._lock:
            cursor = self._db.cursor()
        try:
            return _read(cursor, url, layout, ticker, workdir)
        except duckdb.IOException as error:
            raise TransientError(f"object store unavailable: {error}") from error
        except (duckdb.InvalidInputException, duckdb.ConversionException) as error:
            cause = _first_line(error)
            raise FileRejectedError(f"The file cannot be read as CSV: {cause}") from error
        finally:
            cursor.close()


def _read(cursor: duckdb.DuckDBPyConnection, url: str, layout: Layout, ticker: str | None,
          workdir: Path) -> ParsedFile:
    scan, params = _scan(url, layout)
    fields = ", ".join(PRICES + AMOUNTS)
    cursor.execute(
        f"CREATE TEMP TABLE parsed AS SELECT rn, reason, symbol, date, {fields},"
        " reason IS NULL AND row_number() OVER (PARTITION BY symbol, date, reason IS NULL"
        " ORDER BY rn DESC) = 1 AS keep"
        f" FROM (SELECT *, {_CLASSIFY} AS reason FROM (SELECT *, {_VALUES} FROM ("
        f"SELECT rn, {_normalised(layout)} FROM ({scan}))))",
        {**params, **({"ticker": ticker} if "ticker" not in layout.columns else {}),
         "today": datetime.now(UTC).date()},
    )
    rows_csv = workdir / "rows.csv"
    cursor.execute(f"COPY (SELECT symbol, date, {fields} FROM parsed WHERE keep"
                   f" ORDER BY symbol, date) TO '{rows_csv}' (HEADER false)")
    loaded, rejected, tickers = _one(
        cursor, "SELECT count(*) FILTER (WHERE keep), count(*) FILTER (WHERE reason IS NOT NULL),"
        " list(DISTINCT symbol ORDER BY symbol) FILTER (WHERE keep) FROM parsed")
    if rejected and not loaded:
        code, line = _one(cursor, "SELECT reason, rn FROM parsed ORDER BY rn LIMIT 1")
        raise FileRejectedError(
            f"No valid data rows: all {rejected} were rejected (first, line "
            f"{layout.header_line + 1 + line}: {REASONS[code]})."
        )
    rejects_csv = _write_rejects(cursor, scan, params, layout, workdir) if rejected else None
    return ParsedFile(rows_csv, rejects_csv, loaded, rejected, list(tickers or []))


def _scan(url: str, layout: Layout) -> tuple[str, dict[str, object]]:
    columns = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(layout.names)))
    scan = (
        "SELECT row_number() OVER () AS rn, * FROM read_csv($url, columns = {" + columns + "},"
        " delim = $delim, skip = $skip, header = false, quote = '\"', escape = '\"',"
        " auto_detect = false, null_padding = true, strict_mode = false, encoding = $encoding)"
    )
    return scan, {"url": url, "delim": layout.delimiter, "skip": layout.header_line + 1,
                  "encoding": layout.encoding}


def _normalised(layout: Layout) -> str:
    """symbol, date, then each number as cleaned text (blank amounts are 0)."""
    def cell(field: str) -> str:
        return f"c{layout.columns[field]}" if field in layout.columns else "NULL"

    symbol = f"upper(trim({cell('ticker')}))" if "ticker" in layout.columns else "$ticker"
    prices = [f"ingest_text({cell(f)}) AS {f}" for f in PRICES]
    amounts = [f"coalesce(ingest_text({cell(f)}), '0') AS {f}" for f in AMOUNTS]
    return f"{symbol} AS symbol, ingest_date({cell('date')}) AS date, " + ", ".join(
        prices + amounts)


def _write_rejects(cursor: duckdb.DuckDBPyConnection, scan: str, params: dict[str, object],
                   layout: Layout, workdir: Path) -> Path:
    """line, the original cells (formula-neutralised), reason, message: one row per rejected row."""
    body = workdir / "rejects-body.csv"
    cells = ", ".join(f"ingest_cell(raw.c{i})" for i in range(len(layout.names)))
    cursor.execute(
        f"COPY (SELECT raw.rn + {layout.header_line + 1}, {cells}, p.reason, r.message"
        " FROM parsed p JOIN ingest_reasons r ON r.code = p.reason"
        f" JOIN ({scan}) raw ON raw.rn = p.rn ORDER BY p.rn) TO '{body}' (HEADER false)",
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
