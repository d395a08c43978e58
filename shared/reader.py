"""Each CSV is staged as a local UTF-8 file, then DuckDB normalises, validates and de-duplicates.

Staging streams the object (never the whole of it in memory) into a file of the reader's
naming in the work directory: an object key never reaches DuckDB (no glob can expand it), any
encoding becomes UTF-8 (cp1252, GBK, UTF-16; a stray non-UTF-8 byte in a UTF-8 file reads as
cp1252), CR, CRLF and LF all become LF, and a line over the limit or a NUL byte fails the file
there, naming the line.

One DuckDB database per process; each call works on its own cursor, so threads never share a
connection. Every failure leaving `Reader.read` is a FileRejectedError (the file's content) or
a TransientError (the object store, memory, the disk).
"""

import codecs
import csv
import importlib.util
import logging
import re
import shutil
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import duckdb

from . import plausibility, workspace
from .duck import one
from .errors import FileRejectedError, TransientError
from .layout import Layout, decode_legacy
from .plausibility import WARN, Checks, Previous
from .settings import Settings

log = logging.getLogger("ingest")

# DuckDB's Python client looks for pandas on every parameterised execute; where it is not
# installed, each look is a failed import (24 per file, ~5 ms): answer "absent" once.
if importlib.util.find_spec("pandas") is None:
    sys.modules["pandas"] = None  # type: ignore[assignment]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
REASONS = {
    "BAD_TICKER": "ticker is missing or not a plausible symbol",
    "BAD_DATE": "date does not parse",
    "DATE_OUT_OF_RANGE": "date is before 1900 or after today",
    "BAD_PRICE": "open, high, low or close is missing or does not parse",
    "BAD_VOLUME": "volume or open interest does not parse or is too large (10^28 or more)",
    "NON_POSITIVE_PRICE": "a price is zero or negative",
    "HIGH_BELOW_LOW": "high is below low",
    "OUTSIDE_RANGE": "open or close lies outside [low, high]",
    "NEGATIVE_VOLUME": "volume or open interest is negative",
}
_SETUP = files("shared").joinpath("normalise.sql").read_text(encoding="utf-8")
# A data row is a line (after the header) with a value in a mapped column; lines whose mapped
# cells are all empty hold no data and are no rows. Trailing lines with no price or amount and
# no date are a footer: `last` is the last line holding a price, an amount or a date.
_HAS_DATA = (
    "NOT regexp_full_match(concat_ws('', open, high, low, close, volume, open_interest), '\\s*')"
    " OR ingest_date(d, false) IS NOT NULL OR ingest_date(d, true) IS NOT NULL"
)
# Per-file decisions, from every row: day/month order of numeric dates (rows that fit only
# one order), decimal comma or point (cells only one reading explains), and where the data ends.
_DECIDE = f"""
SELECT
    count(*) FILTER (WHERE dmy IS NOT NULL AND mdy IS NULL),
    arg_min(d, rn) FILTER (WHERE dmy IS NOT NULL AND mdy IS NULL),
    min(rn) FILTER (WHERE dmy IS NOT NULL AND mdy IS NULL),
    count(*) FILTER (WHERE mdy IS NOT NULL AND dmy IS NULL),
    arg_min(d, rn) FILTER (WHERE mdy IS NOT NULL AND dmy IS NULL),
    min(rn) FILTER (WHERE mdy IS NOT NULL AND dmy IS NULL),
    count(*) FILTER (WHERE contains(numbers, ',') AND regexp_matches(numbers,
        ',[0-9]{{1,2}}(?:[^0-9]|$)|,[0-9]{{4,}}(?:[^0-9]|$)|[.][0-9]{{3}},')),
    count(*) FILTER (WHERE regexp_matches(numbers,
        '[.][0-9]{{1,2}}(?:[^0-9]|$)|[.][0-9]{{4,}}(?:[^0-9]|$)|,[0-9]{{3}}[.]')),
    coalesce(max(rn) FILTER (WHERE {_HAS_DATA}), 0)
FROM (SELECT *, concat_ws('|', open, high, low, close, volume, open_interest) AS numbers,
          ingest_ymd(ingest_dm(d).y, ingest_dm(d).a, ingest_dm(d).b) AS mdy,
          ingest_ymd(ingest_dm(d).y, ingest_dm(d).b, ingest_dm(d).a) AS dmy
      FROM raw)
"""
# Range rules compare exactly: DOUBLEs order the values wherever they differ (rounding is
# monotonic), and the texts decide where they tie (ingest_lt, ingest_signum).
_CLASSIFY = """
CASE
    WHEN symbol IS NULL OR NOT regexp_full_match(symbol, '[A-Z0-9.\\-_^=/&]{1,20}')
        OR left(symbol, 1) IN ('=', '+', '-', '@') THEN 'BAD_TICKER'
    WHEN date IS NULL THEN 'BAD_DATE'
    WHEN date < DATE '1900-01-01' OR date > $today THEN 'DATE_OUT_OF_RANGE'
    WHEN open_v IS NULL OR high_v IS NULL OR low_v IS NULL OR close_v IS NULL
        OR isinf(open_v) OR isinf(high_v) OR isinf(low_v) OR isinf(close_v) THEN 'BAD_PRICE'
    WHEN volume_v IS NULL OR open_interest_v IS NULL
        OR abs(volume_v) >= 1e28 OR abs(open_interest_v) >= 1e28 THEN 'BAD_VOLUME'
    WHEN ingest_signum(open, open_v) <= 0 OR ingest_signum(high, high_v) <= 0
        OR ingest_signum(low, low_v) <= 0 OR ingest_signum(close, close_v) <= 0
        THEN 'NON_POSITIVE_PRICE'
    WHEN ingest_lt(high_v, high_k, low_v, low_k) THEN 'HIGH_BELOW_LOW'
    WHEN ingest_lt(open_v, open_k, low_v, low_k) OR ingest_lt(high_v, high_k, open_v, open_k)
        OR ingest_lt(close_v, close_k, low_v, low_k) OR ingest_lt(high_v, high_k, close_v, close_k)
        THEN 'OUTSIDE_RANGE'
    WHEN ingest_signum(volume, volume_v) < 0 OR ingest_signum(open_interest, open_interest_v) < 0
        THEN 'NEGATIVE_VOLUME'
END
"""
PRICES = ("open", "high", "low", "close")
AMOUNTS = ("volume", "open_interest")
# The longest line a file may have (bytes of UTF-8). DuckDB's default 32 MiB read buffer per
# scan adds up when files are read several at a time.
MAX_LINE_BYTES = 2 << 20
CSV_BUFFER_BYTES = 2 * MAX_LINE_BYTES
# Staging reads this much of the object at a time (at most 4x as much UTF-8 comes out of it,
# still under MAX_LINE_BYTES: only a chunk's first line can be a long one).
STAGE_CHUNK_BYTES = 1 << 18
# The rejects file keeps every original cell of a rejected row up to this many columns; a wider
# file's rejects keep the mapped cells (DuckDB holds 2,048 rows of every column it carries).
MAX_REJECT_COLUMNS = 256
_VALUES = ", ".join(f"ingest_value({f}) AS {f}_v" for f in PRICES + AMOUNTS)
# A price's exact key, only where its DOUBLE ties another price's (and the texts differ).
_KEYS = ", ".join(
    f"CASE WHEN {f}_v IN ({', '.join(o + '_v' for o in PRICES if o != f)}) AND ("
    + " OR ".join(f"{f} <> {o}" for o in PRICES if o != f)
    + f") THEN ingest_key({f}) ELSE '' END AS {f}_k"
    for f in PRICES
)
# The common file (ISO dates, plain decimal numbers) takes a lane of plain casts: one pattern
# per row decides it, and the per-cell cleaning of the general lane costs several times more.
_PLAIN_NUMBER = "([0-9]+([.][0-9]+)?)?"
_PLAIN_CHECK = (
    "SELECT count(*) FILTER (WHERE NOT (regexp_full_match(coalesce(d, ''),"
    " '[0-9]{4}-[0-9]{2}-[0-9]{2}') AND regexp_full_match(concat_ws('|', "
    + ", ".join(f"coalesce({f}, '')" for f in PRICES + AMOUNTS)
    + f"), '({_PLAIN_NUMBER}[|]){{5}}{_PLAIN_NUMBER}'))),"
    " coalesce(max(rn) FILTER (WHERE TRY_CAST(d AS DATE) IS NOT NULL OR concat_ws('', "
    + ", ".join(PRICES + AMOUNTS)
    + ") <> ''), 0), count(*) FROM raw"
)
_PLAIN_ROWS = (
    "SELECT rn, symbol, TRY_CAST(d AS DATE) AS date, "
    + ", ".join(f"nullif({f}, '') AS {f}" for f in PRICES)
    + ", "
    + ", ".join(f"coalesce(nullif({f}, ''), '0') AS {f}" for f in AMOUNTS)
    + " FROM raw WHERE rn <= $last"
)
_PLAIN_VALUES = ", ".join(f"CAST({f} AS DOUBLE) AS {f}_v" for f in PRICES + AMOUNTS)
_COUNTS = (
    "SELECT count(*) FILTER (WHERE keep), count(*) FILTER (WHERE reason IS NOT NULL),"
    " count(*) FILTER (WHERE reason IS NULL AND NOT keep), count(*),"
    " list(DISTINCT symbol ORDER BY symbol) FILTER (WHERE keep),"
    " min(date) FILTER (WHERE keep), max(date) FILTER (WHERE keep) FROM parsed"
)
_DUCKDB_LINE = re.compile(r"CSV Error on Line: (\d+)")


TickerIds = Callable[[list[str]], dict[str, int]]
# The object's bytes, chunk by chunk.
Source = Callable[[], Iterable[bytes]]


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
    # Every data row is loaded, rejected or superseded (an earlier occurrence of a (ticker,
    # date) the file repeats later): rows_loaded + rows_rejected + superseded == data_rows.
    superseded: int = 0
    data_rows: int = 0
    footer_lines: int = 0  # trailing lines with no price, amount or date: not data
    # Plausibility warnings of the loaded rows (shared/plausibility.py): code -> rows, the
    # warnings CSV (None: none), and the main ticker's compact close series for a sparkline.
    warnings: dict[str, int] = field(default_factory=dict)
    warnings_csv: Path | None = None
    series: dict[str, Any] | None = None
    # the physical line of each row of rows_csv, in its order: the load names the lines of
    # the rows another file of the batch holds otherwise
    lines_csv: Path | None = None


class Reader:
    def __init__(self, settings: Settings) -> None:
        # One thread per query: files arrive several at a time, and a 5,000-row file is too
        # small to split; beyond the memory limit DuckDB spills to the temporary directory.
        self._settings = settings
        self._lock = threading.Lock()
        self._db = self._connect()

    def _connect(self) -> duckdb.DuckDBPyConnection:
        db = duckdb.connect(
            config={
                "memory_limit": self._settings.duckdb_memory_limit,
                "threads": self._settings.duckdb_threads,
                # its own folder: two processes spilling to one folder crash each other
                "temp_directory": str(workspace.spill_directory()),
            }
        )
        db.execute(_SETUP)
        db.executemany(
            "INSERT INTO ingest_reasons VALUES (?, ?)",
            list(REASONS.items()) + list(plausibility.CODES.items()),
        )
        return db

    def read(
        self,
        url: str,
        layout: Layout,
        ticker: str | None,
        uploaded_at: datetime,
        ticker_ids: TickerIds,
        workdir: Path,
        source: Source | None = None,
        checks: Checks = WARN,
        previous: Previous | None = None,
    ) -> ParsedFile:
        """Parse one object into a CSV of valid rows ready for COPY, and one of rejected rows.

        `ticker_ids` maps the file's symbols to ids (creating them) before the rows are written.
        `source` streams the object's bytes (process-file streams them from the object store);
        without it `url` is a local path. `url` only names the file otherwise: DuckDB reads a
        staged local copy, so no object key ever reaches it as a path. `checks` are the
        plausibility rules, `previous` finds the stored row before each ticker's first date.
        Raises FileRejectedError
        (the content) or TransientError (infrastructure), nothing else.
        """
        chunks = source or self._source(url)
        with self._lock:
            db = self._db
        try:
            cursor = db.cursor()
        except duckdb.Error as error:
            self._reconnect(db)
            raise TransientError(f"DuckDB unavailable: {_first_line(error)}") from error
        try:
            stamp = _Stamp(uploaded_at, ticker_ids, checks, previous)
            return _read(cursor, chunks, layout, ticker, workdir, stamp)
        except (FileRejectedError, TransientError):
            raise
        except duckdb.Error as error:
            raise _classified(error, layout) from error
        except MemoryError as error:
            raise TransientError("out of memory while reading the file") from error
        except OSError as error:  # the work directory (disk full, ...)
            raise TransientError(f"work directory unavailable: {error}") from error
        except Exception as error:
            log.exception("unexpected error while reading %s", url)
            raise FileRejectedError(
                f"The file could not be read ({type(error).__name__}: {_first_line(error)})."
            ) from error
        finally:
            try:
                cursor.close()
            except duckdb.Error:
                self._reconnect(db)

    def _source(self, url: str) -> Source:
        return lambda: _local_chunks(Path(url))

    def _reconnect(self, db: duckdb.DuckDBPyConnection) -> None:
        """A fatal DuckDB error invalidates its database: the next file gets a new one."""
        with self._lock:
            if self._db is db:
                try:
                    self._db = self._connect()
                except duckdb.Error:
                    log.exception("DuckDB could not be reopened")


def _local_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(STAGE_CHUNK_BYTES):
            yield chunk


def _classified(error: duckdb.Error, layout: Layout) -> Exception:
    """What a DuckDB error means: the file's content, or trouble of the moment."""
    cause = _first_line(error)
    if isinstance(error, duckdb.OutOfMemoryException):  # other files are in flight: try later
        return TransientError(f"DuckDB out of memory: {cause}")
    if isinstance(error, (duckdb.IOException, duckdb.HTTPException, duckdb.InterruptException)):
        return TransientError(f"DuckDB input/output failed: {cause}")
    if isinstance(error, (duckdb.FatalException, duckdb.InternalException)):
        return TransientError(f"DuckDB failed: {cause}")
    text = str(error)
    line = _DUCKDB_LINE.search(text)
    where = f" (line {line.group(1)})" if line else ""
    if "line size" in text.lower() or "maximum line" in text.lower():
        return FileRejectedError(
            f"A row{where} is longer than the limit of {MAX_LINE_BYTES // (1 << 20)} MiB"
            f" ({MAX_LINE_BYTES} bytes); a quoted field may be missing its closing quote."
        )
    if "quote" in text.lower():
        return FileRejectedError(f"The file's quoting cannot be read{where}: {cause}")
    return FileRejectedError(f"The file cannot be read as CSV{where}: {cause}")


@dataclass(frozen=True)
class _Stamp:
    uploaded_at: datetime
    ticker_ids: TickerIds
    checks: Checks = WARN
    previous: Previous | None = None


def _read(
    cursor: duckdb.DuckDBPyConnection,
    source: Source,
    layout: Layout,
    ticker: str | None,
    workdir: Path,
    stamp: _Stamp,
) -> ParsedFile:
    staged = workdir / "staged.csv"  # a name of our own: DuckDB globs, an object key may not
    _stage(source(), layout, staged)
    read_csv, params = _scan(str(staged), layout)
    fields = ", ".join(PRICES + AMOUNTS)
    mapped = sorted(
        {layout.columns[f] for f in ("ticker", "date", *PRICES, *AMOUNTS) if f in layout.columns}
    )
    cursor.execute(
        f"CREATE TEMP TABLE raw AS SELECT rn, {_raw_cells(layout)} FROM"
        f" (SELECT row_number() OVER () AS rn, {', '.join(f'c{i}' for i in mapped)}"
        f" FROM {read_csv}) WHERE NOT regexp_full_match(concat_ws(''"
        + "".join(f", c{i}" for i in mapped)
        + "), '\\s*')",
        {**params, **({"ticker": ticker} if "ticker" not in layout.columns else {})},
    )
    not_plain, last, raw_rows = one(cursor, _PLAIN_CHECK)
    if not not_plain:
        rows, values, lane = _PLAIN_ROWS, _PLAIN_VALUES, {"last": last}
    else:
        dayfirst, comma, last = _decide(cursor, layout)
        rows = _normalised()
        values, lane = _VALUES, {"dayfirst": dayfirst, "comma": comma, "last": last}
    # The last occurrence of a (ticker, date) decides it: when that one is invalid, the key is
    # rejected and the earlier valid ones are superseded, not loaded. (The next row in (date,
    # line) order has another date: one sort per ticker, where a partition per key costs more.)
    cursor.execute(
        f"CREATE TEMP TABLE parsed AS SELECT rn, reason, symbol, date, {fields},"
        " open_v, high_v, low_v, close_v,"
        " reason IS NULL AND lead(date) OVER (PARTITION BY symbol ORDER BY date, rn)"
        " IS DISTINCT FROM date AS keep"
        f" FROM (SELECT *, {_CLASSIFY} AS reason FROM (SELECT *, {_KEYS} FROM"
        f" (SELECT *, {values} FROM ({rows}))))",
        {"today": datetime.now(UTC).date(), **lane},
    )
    loaded, rejected, superseded, data_rows, tickers, first, last_date = one(cursor, _COUNTS)
    footer_lines = raw_rows - data_rows  # the rows of raw after the last data row
    if rejected and not loaded:
        code, line = one(
            cursor, "SELECT reason, rn FROM parsed WHERE reason IS NOT NULL ORDER BY rn LIMIT 1"
        )
        also = (
            f"; {superseded} valid row(s) were superseded by a later invalid duplicate"
            if superseded
            else ""
        )
        raise FileRejectedError(
            f"No valid data rows: all {rejected} were rejected (first, line "
            f"{layout.header_line + 1 + line}: {REASONS[code]}){also}."
        )
    tickers = list(tickers or [])
    ids = stamp.ticker_ids(tickers)
    found = plausibility.check(
        cursor, stamp.checks, ids, stamp.previous, layout.header_line + 1, workdir, tickers, first
    )
    if found.rejected:  # reject mode: the flagged rows are rejects now
        loaded, rejected, superseded, data_rows, tickers, first, last_date = one(cursor, _COUNTS)
        tickers = list(tickers or [])
        if not loaded:
            raise FileRejectedError(
                f"No valid data rows: all {rejected} were rejected, {found.rejected} of them by"
                " the plausibility checks (PLAUSIBILITY_MODE=reject)."
            )
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
    lines_csv = workdir / "lines.csv"
    cursor.execute(
        f"COPY (SELECT p.rn + {layout.header_line + 1} FROM parsed p"
        " JOIN (SELECT unnest($symbols) AS symbol, unnest($ids) AS id) m"
        f" ON m.symbol = p.symbol WHERE p.keep ORDER BY m.id, p.date) TO '{lines_csv}'"
        " (HEADER false)",
        {"symbols": tickers, "ids": [ids[t] for t in tickers]},
    )
    rejects_csv = _write_rejects(cursor, read_csv, params, layout, workdir) if rejected else None
    return ParsedFile(
        rows_csv,
        rejects_csv,
        loaded,
        rejected,
        tickers,
        sorted(ids[t] for t in tickers),
        first,
        last_date,
        superseded=superseded,
        data_rows=data_rows,
        footer_lines=footer_lines,
        warnings=found.counts,
        warnings_csv=found.warnings_csv,
        series=found.series,
        lines_csv=lines_csv,
    )


def _codec(layout: Layout) -> str:
    if layout.encoding == "utf-16" or layout.text_encoding == "utf-16":
        return "utf-16"  # the incremental decoder reads the BOM and drops it
    return layout.text_encoding or "utf-8"


def _stage(chunks: Iterable[bytes], layout: Layout, path: Path) -> None:
    """Write the object as UTF-8 with LF line ends, chunk by chunk; fail a line over
    MAX_LINE_BYTES or a NUL byte, naming its line."""
    encode = _encoder(_codec(layout))
    line = 1  # the line number at the start of the chunk being written
    run = 0  # bytes of the current line so far
    held = b""  # a CR at the end of a chunk: a CRLF may continue in the next
    first = True
    with path.open("wb") as out:
        for chunk in _rechunked(chunks):
            if first:
                first = False
                if chunk.startswith(codecs.BOM_UTF8) and _codec(layout) == "utf-8":
                    chunk = chunk[3:]
            data = held + encode(chunk, False)
            held = b""
            if data.endswith(b"\r"):
                data, held = data[:-1], b"\r"
            line, run = _write(out, data, line, run)
        line, run = _write(out, (held + encode(b"", True)).replace(b"\r", b"\n"), line, run)


def _write(out: Any, data: bytes, line: int, run: int) -> tuple[int, int]:
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if b"\x00" in data:
        at = line + data.count(b"\n", 0, data.index(b"\x00"))
        raise FileRejectedError(f"The file is not text: line {at} contains a NUL byte.")
    newline = data.find(b"\n")
    if newline < 0:
        run += len(data)
        longest, at = run, line
    else:
        longest, at = run + newline, line
        if len(data) > MAX_LINE_BYTES:  # only a chunk that grew in transcoding can hide one
            for number, text in enumerate(data.split(b"\n")[1:-1], start=line + 1):
                if len(text) > longest:
                    longest, at = len(text), number
        run = len(data) - data.rfind(b"\n") - 1
    if longest > MAX_LINE_BYTES:
        raise FileRejectedError(
            f"Line {at} is longer than the limit of {MAX_LINE_BYTES // (1 << 20)} MiB"
            f" ({MAX_LINE_BYTES} bytes); a file's lines must be shorter."
        )
    out.write(data)
    return line + data.count(b"\n"), run


def _rechunked(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Chunks of STAGE_CHUNK_BYTES (the last may be shorter), whatever the source yields."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= STAGE_CHUNK_BYTES:
            yield bytes(buffer[:STAGE_CHUNK_BYTES])
            del buffer[:STAGE_CHUNK_BYTES]
    if buffer:
        yield bytes(buffer)


def _encoder(codec: str) -> Callable[[bytes, bool], bytes]:
    """bytes of the source encoding -> UTF-8, incrementally (a character may span chunks)."""
    if codec == "cp1252":
        return lambda data, final: _cp1252(data).encode("utf-8")
    if codec == "utf-8":
        decoder = codecs.getincrementaldecoder("utf-8")(_FALLBACK)

        def utf8(data: bytes, final: bool) -> bytes:
            if data.isascii() and not decoder.getstate()[0]:
                return data  # the common case: nothing to decode
            text: str = decoder.decode(data, final)
            return text.encode("utf-8")

        return utf8
    other = codecs.getincrementaldecoder("gb18030" if codec == "gbk" else codec)("replace")
    return lambda data, final: other.decode(data, final).encode("utf-8")


def _cp1252(data: bytes) -> str:
    return decode_legacy(data, "cp1252")


def _cp1252_fallback(error: UnicodeError) -> tuple[str, int]:
    """A byte that is no UTF-8 in a UTF-8 file: read as cp1252 (the legacy files the contract
    allows), so the rows past it are read, not lost."""
    assert isinstance(error, UnicodeDecodeError)
    return _cp1252(error.object[error.start : error.end]), error.end


_FALLBACK = "ingest-cp1252"
codecs.register_error(_FALLBACK, _cp1252_fallback)


def _decide(cursor: duckdb.DuckDBPyConnection, layout: Layout) -> tuple[bool, bool, int]:
    """Day-first dates?, decimal comma?, and the last data row (what follows is a footer)."""
    (dmy_rows, dmy_value, dmy_rn, mdy_rows, mdy_value, mdy_rn, comma_cells, point_cells, last) = (
        one(cursor, _DECIDE)
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


def _scan(path: str, layout: Layout) -> tuple[str, dict[str, object]]:
    """read_csv of the staged file (UTF-8, LF): every cell VARCHAR, missing cells NULL, extra
    cells ignored; not parallel, which quoted newlines with null_padding require."""
    columns = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(layout.names)))
    scan = (
        "read_csv($url, columns = {" + columns + "},"
        " delim = $delim, skip = $skip, header = false, quote = '\"', escape = '\"',"
        " auto_detect = false, null_padding = true, strict_mode = false, encoding = 'utf-8',"
        " parallel = false, buffer_size = $buffer, max_line_size = $max_line)"
    )
    return scan, {
        "url": path,
        "delim": layout.delimiter,
        "skip": layout.header_line + 1,
        "buffer": CSV_BUFFER_BYTES,
        "max_line": MAX_LINE_BYTES,
    }


def _raw_cells(layout: Layout) -> str:
    """symbol, the trimmed date text, each number's raw text."""

    def cell(field: str) -> str:
        return f"c{layout.columns[field]}" if field in layout.columns else "NULL::VARCHAR"

    symbol = f"upper(trim({cell('ticker')}))" if "ticker" in layout.columns else "$ticker"
    numbers = [f"{cell(f)} AS {f}" for f in PRICES + AMOUNTS]
    return f"{symbol} AS symbol, ingest_trim({cell('date')}) AS d, " + ", ".join(numbers)


def _normalised() -> str:
    """symbol, date, then each number as cleaned text (blank amounts are 0), over raw.

    In two layers, so that each macro's argument is a column: nested macros would repeat
    their argument's whole expression (and binding the query would take far longer)."""
    cleaned = ", ".join(
        f"CASE WHEN NOT $comma AND regexp_full_match({f}, '[0-9]+([.][0-9]+)?') THEN {f}"
        f" WHEN NOT ingest_blank({f}) THEN ingest_plain(regexp_replace(trim({f}),"
        f" '[$€£¥\\s\\x{{00A0}}]', '', 'g'), $comma) END AS {f}"
        for f in PRICES + AMOUNTS
    )
    prices = [f"ingest_unsuffixed({f}) AS {f}" for f in PRICES]
    amounts = [f"coalesce(ingest_unsuffixed({f}), '0') AS {f}" for f in AMOUNTS]
    return (
        "SELECT rn, symbol, ingest_date(d, $dayfirst) AS date, "
        + ", ".join(prices + amounts)
        + f" FROM (SELECT rn, symbol, d, {cleaned} FROM raw WHERE rn <= $last)"
    )


def _write_rejects(
    cursor: duckdb.DuckDBPyConnection,
    read_csv: str,
    params: dict[str, object],
    layout: Layout,
    workdir: Path,
) -> Path:
    """line, the original cells (formula-neutralised), reason, message: one row per rejected row.

    The file is scanned again, numbered by a sequence (a stream, where a window would hold the
    whole file); a file wider than MAX_REJECT_COLUMNS keeps its mapped cells only."""
    if len(layout.names) <= MAX_REJECT_COLUMNS:
        kept = list(range(len(layout.names)))
    else:
        kept = sorted(set(layout.columns.values()))
    body = workdir / "rejects-body.csv"
    cells = ", ".join(f"ingest_cell(src.c{i})" for i in kept)
    cursor.execute("CREATE TEMP SEQUENCE rejects_rn")
    cursor.execute(
        f"COPY (SELECT src.rn + {layout.header_line + 1}, {cells}, p.reason, r.message"
        " FROM parsed p JOIN ingest_reasons r ON r.code = p.reason"
        f" JOIN (SELECT nextval('rejects_rn') AS rn, {', '.join(f'c{i}' for i in kept)}"
        f" FROM {read_csv}) src ON src.rn = p.rn ORDER BY p.rn) TO '{body}' (HEADER false)",
        params,
    )
    path = workdir / "rejects.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        names = [layout.names[i] for i in kept]
        csv.writer(out).writerow(["line", *map(_neutralised, names), "reason", "message"])
        with body.open(encoding="utf-8") as rows:
            shutil.copyfileobj(rows, out)
    return path


def _neutralised(cell: str) -> str:
    return f"'{cell}" if cell.startswith(FORMULA_STARTS) else cell


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else type(error).__name__
