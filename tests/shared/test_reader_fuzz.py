"""Property-based fuzzing of the reader on local files: random delimiters, quoting, encodings,
line endings, column orders and counts, cell sizes, junk cells, header variants, blank and
footer lines. Each file either fails with FileRejectedError or completes with every data row
accounted for (loaded + rejected + superseded == data rows, counted here by a model of our
own), and the loaded rows are exactly the last valid occurrence of each date.
"""

import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.errors import FileRejectedError
from shared.reader import Reader
from tests.support.reading import LocalReader

HEADERS = {
    "date": ["Date", "date", "<DATE>", "Trade Date", "Timestamp"],
    "open": ["Open", "OPEN", "<OPEN>"],
    "high": ["High", "high"],
    "low": ["Low", "LOW"],
    "close": ["Close", "Close/Last", "Settle"],
    "volume": ["Volume", "Vol."],
}
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "cp1252", "gbk"]
NOTES = {"utf-8": "é中€", "utf-8-sig": "é中€", "utf-16": "é中€", "cp1252": "é€ü", "gbk": "中文"}
ENDINGS = ["\n", "\r\n", "\r"]
JUNK_DATES = ["2024-13-45", "not a date", "0000-00-00", "31/31/2024", "2024-02-30"]
JUNK_NUMBERS = ["abc", "1..2", "12abc", "--1", "1e", "$"]


@dataclass
class Row:
    cells: dict[str, str]  # field -> cell text
    valid: bool
    date: str | None  # the ISO date when the date cell parses
    values: tuple[Decimal, ...] = ()


@st.composite
def price_row(draw: st.DrawFn, day: int) -> Row:
    date = f"2023-{1 + day // 28:02d}-{1 + day % 28:02d}"
    decimals = draw(st.sampled_from([0, 2, 4]))
    scale = Decimal(10) ** -decimals
    low = Decimal(draw(st.integers(1, 10**6))) * scale
    high = low + Decimal(draw(st.integers(0, 10**6))) * scale
    opened = draw(st.sampled_from([low, high]))
    close = draw(st.sampled_from([low, high]))
    volume = draw(st.integers(0, 10**9))
    written = {
        "date": date,
        "open": str(opened),
        "high": str(high),
        "low": str(low),
        "close": str(close),
        "volume": str(volume),
    }
    kind = draw(st.sampled_from(["valid"] * 4 + ["bad_date", "bad_price", "high_below_low"]))
    if kind == "bad_date":
        written["date"] = draw(st.sampled_from(JUNK_DATES))
        return Row(written, False, None)
    if kind == "bad_price":
        written[draw(st.sampled_from(["open", "high", "low", "close"]))] = draw(
            st.sampled_from(JUNK_NUMBERS + [""])
        )
        return Row(written, False, date)
    if kind == "high_below_low":
        written["high"], written["low"] = str(low), str(high + 1)
        return Row(written, False, date)
    return Row(written, True, date, (opened, high, low, close, Decimal(volume)))


@st.composite
def csv_file(draw: st.DrawFn) -> tuple[bytes, list[Row]]:
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    encoding = draw(st.sampled_from(ENCODINGS))
    fields = draw(st.permutations(list(HEADERS)))
    extras = draw(st.integers(0, 12))
    columns = list(fields) + [f"note{i}" for i in range(extras)]
    columns = draw(st.permutations(columns))
    quote_all = draw(st.booleans())
    endings = draw(st.lists(st.sampled_from(ENDINGS), min_size=1, max_size=3))
    days = draw(st.lists(st.integers(0, 40), min_size=0, max_size=25))
    rows = [draw(price_row(day)) for day in days]
    note = NOTES[encoding]

    def cell(text: str) -> str:
        if quote_all or delimiter in text or '"' in text or draw(st.booleans()):
            return '"' + text.replace('"', '""') + '"'
        return text

    def line(values: list[str]) -> str:
        return delimiter.join(cell(v) for v in values) + draw(st.sampled_from(endings))

    names = [draw(st.sampled_from(HEADERS[c])) if c in HEADERS else c for c in columns]
    text = ""
    if draw(st.booleans()):
        text += "Daily prices" + draw(st.sampled_from(endings)) + draw(st.sampled_from(endings))
    text += line(names)
    for row in rows:
        if draw(st.integers(0, 9)) == 0:
            text += draw(st.sampled_from(["", "   ", delimiter * len(columns)])) + "\n"
        size = draw(st.sampled_from([0, 3, 200, 5000]))
        junk = (note + 'x"y, z') * (size // 8 + 1) if size else ""
        text += line([row.cells.get(c, junk[:size]) for c in columns])
    for _ in range(draw(st.integers(0, 2))):  # footer: no price, amount or date
        footer = ["" for _ in columns]
        footer[columns.index("date")] = draw(st.sampled_from(["Source: Exchange", "Total"]))
        text += line(footer)
    return text.encode(encoding), rows


def _expected(rows: list[Row]) -> tuple[dict[str, tuple[Decimal, ...]], int, int]:
    """The model: the last occurrence of each date decides it; every row is one data row."""
    last: dict[str, Row] = {}
    for row in rows:
        if row.date is not None:
            last[row.date] = row
    loaded = {d: r.values for d, r in last.items() if r.valid}
    rejected = sum(not r.valid for r in rows)
    return loaded, rejected, len(rows) - len(loaded) - rejected


@settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(csv_file())
def test_every_row_is_accounted_for(reader: Reader, generated: tuple[bytes, list[Row]]) -> None:
    body, rows = generated
    local = LocalReader(reader, Path(tempfile.mkdtemp()))
    try:
        read = local.read(body)
    except FileRejectedError as error:
        loaded, _, _ = _expected(rows)
        assert not loaded, f"{error} for a file with valid rows"
        return
    parsed = read.parsed
    loaded, rejected, superseded = _expected(rows)
    assert parsed.data_rows == len(rows)
    assert (parsed.rows_loaded, parsed.rows_rejected, parsed.superseded) == (
        len(loaded),
        rejected,
        superseded,
    )
    got = {row[0]: row[1:6] for row in read.rows}
    assert got == loaded
