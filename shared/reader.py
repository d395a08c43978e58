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
_SETUP = """
CREATE MACRO ingest_blank(x) AS x IS NULL OR lower(trim(x)) IN ('', '-', 'null', 'nan', 'n/a');
CREATE MACRO ingest_num(x) AS CASE WHEN ingest_blank(x) THEN NULL
    ELSE TRY_CAST(regexp_replace(trim(x), '[$,\\s]', '', 'g') AS DECIMAL(38, 18)) END;
CREATE MACRO ingest_date(x) AS COALESCE(
    TRY_CAST(left(trim(x), 10) AS DATE), TRY_STRPTIME(trim(x), '%Y%m%d')::DATE);
CREATE MACRO ingest_cell(x) AS CASE WHEN regexp_matches(x, '^[=+\\-@\\t\\r]') THEN '''' || x
    ELSE x END;
CREATE TABLE ingest_reasons (code VARCHAR PRIMARY KEY, message VARCHAR);
"""
_CLASSIFY = """
CASE
    WHEN symbol IS NULL OR NOT regexp_full_match(symbol, '[A-Z0-9.\\-_^=/&]{1,20}')
        OR left(symbol, 1) IN ('=', '+', '-', '@') THEN 'BAD_TICKER'
    WHEN date IS NULL THEN 'BAD_DATE'
    WHEN date < DATE '1900-01-01' OR date > $today THEN 'DATE_OUT_OF_RANGE'
    WHEN open IS NULL OR high IS NULL OR low IS NULL OR close IS NULL THEN 'BAD_PRICE'
    WHEN volume IS NULL OR open_interest IS NULL THEN 'BAD_VOLUME'
    WHEN least(open, high, low, close) <= 0 THEN 'NON_POSITIVE_PRICE'
    WHEN high < low THEN 'HIGH_BELOW_LOW'
    WHEN open NOT BETWEEN low AND high OR close NOT BETWEEN low AND high THEN 'OUTSIDE_RANGE'
    WHEN volume < 0 OR open_interest < 0 THEN 'NEGATIVE_VOLUME'
END
"""


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
    cursor.execute(
        f"CREATE TEMP TABLE parsed AS SELECT rn, {_CLASSIFY} AS reason, * FROM ("
        f"SELECT rn, {_normalised(layout)} FROM ({scan}))",
        {**params, **({"ticker": ticker} if "ticker" not in layout.columns else {}),
         "today": datetime.now(UTC).date()},
    )
    rows_csv = workdir / "rows.csv"
    cursor.execute(
        "CREATE TEMP TABLE loaded AS SELECT symbol, date, open, high, low, close, volume,"
        " open_interest FROM parsed WHERE reason IS NULL"
        " QUALIFY row_number() OVER (PARTITION BY symbol, date ORDER BY rn DESC) = 1"
    )
    cursor.execute(
        f"COPY (SELECT * FROM loaded ORDER BY symbol, date) TO '{rows_csv}' (HEADER false)")
    loaded, rejected = _one(cursor, "SELECT (SELECT count(*) FROM loaded),"
                            " count(*) FILTER (WHERE reason IS NOT NULL) FROM parsed")
    tickers = [row[0] for row in cursor.execute(
        "SELECT DISTINCT symbol FROM loaded ORDER BY 1").fetchall()]
    if rejected and not loaded:
        code, line = _one(cursor, "SELECT reason, rn FROM parsed ORDER BY rn LIMIT 1")
        raise FileRejectedError(
            f"No valid data rows: all {rejected} were rejected (first, line "
            f"{layout.header_line + 1 + line}: {REASONS[code]})."
        )
    rejects_csv = _write_rejects(cursor, scan, params, layout, workdir) if rejected else None
    return ParsedFile(rows_csv, rejects_csv, loaded, rejected, tickers)


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
    def cell(field: str) -> str:
        return f"c{layout.columns[field]}" if field in layout.columns else "NULL"

    symbol = f"upper(trim({cell('ticker')}))" if "ticker" in layout.columns else "$ticker"
    prices = ", ".join(f"ingest_num({cell(f)}) AS {f}" for f in ("open", "high", "low", "close"))
    optional = ", ".join(
        f"CASE WHEN ingest_blank({cell(f)}) THEN 0 ELSE ingest_num({cell(f)}) END AS {f}"
        for f in ("volume", "open_interest")
    )
    return f"{symbol} AS symbol, ingest_date({cell('date')}) AS date, {prices}, {optional}"


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
