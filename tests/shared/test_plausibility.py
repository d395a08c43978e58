"""The plausibility checks on generated files: each code flags exactly the expected lines, in
warn mode (the rows load, the warnings CSV lists them) and in reject mode (they are rejects);
the real samples: the 100x vendor error is found where the unit changes, the clean ones get
no warning at all."""

import csv
import tempfile
from datetime import date, timedelta
from pathlib import Path

import pytest

from devstack.data import business_days
from shared import layout, storage
from shared.errors import FileRejectedError
from shared.plausibility import SERIES_POINTS, WARN, Checks, Previous
from shared.reader import ParsedFile, Reader
from tests.support.reading import UPLOADED_AT, numbered
from tests.support.samples import LOOKALIKE, REAL

HEADER = "Date,Open,High,Low,Close,Volume\n"
START = date(2024, 1, 1)  # a Monday


def body(rows: list[tuple[date, float]], stale_from: int = -1, stale_rows: int = 0) -> bytes:
    """A file of (date, close) rows: open = close, high = close + 1, low = close - 1... except
    rows stale_from .. stale_from + stale_rows - 1, which repeat the OHLC of the first of them."""
    lines = [HEADER]
    for i, (day, close) in enumerate(rows):
        if stale_from <= i < stale_from + stale_rows:
            close = rows[stale_from][1]
        lines.append(f"{day},{close:.2f},{close + 1:.2f},{close - 0.5:.2f},{close:.2f},100\n")
    return "".join(lines).encode()


def steady(count: int) -> list[tuple[date, float]]:
    return [(day, 100 + i * 0.01) for i, day in enumerate(business_days(count, START))]


def read(
    reader: Reader,
    tmp_path: Path,
    data: bytes,
    checks: Checks = WARN,
    previous: Previous | None = None,
) -> ParsedFile:
    workdir = Path(tempfile.mkdtemp(dir=tmp_path))
    path = workdir / "upload.csv"
    path.write_bytes(data)
    found = layout.detect(data[: storage.HEAD_BYTES])
    hint = None if "ticker" in found.columns else "TEST"
    return reader.read(
        str(path), found, hint, UPLOADED_AT, numbered, workdir, checks=checks, previous=previous
    )


def warnings(parsed: ParsedFile) -> list[tuple[int, str]]:
    """(line, code) of each row of the warnings CSV."""
    if parsed.warnings_csv is None:
        return []
    with parsed.warnings_csv.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    return [(int(row["line"]), row["code"]) for row in rows]


def rejects(parsed: ParsedFile) -> list[tuple[int, str]]:
    if parsed.rejects_csv is None:
        return []
    with parsed.rejects_csv.open(newline="", encoding="utf-8") as file:
        return [(int(row["line"]), row["reason"]) for row in csv.DictReader(file)]


def unit_switch_rows() -> list[tuple[date, float]]:
    # rows 0-19 in units, 20-29 in cents, 30-39 in units again: line = row + 2
    rows = steady(40)
    return [(d, c * 100 if 20 <= i < 30 else c) for i, (d, c) in enumerate(rows)]


def test_unit_switch_flags_each_row_where_the_unit_changes(reader: Reader, tmp_path: Path) -> None:
    parsed = read(reader, tmp_path, body(unit_switch_rows()))
    assert warnings(parsed) == [(22, "UNIT_SWITCH"), (32, "UNIT_SWITCH")]
    assert parsed.warnings == {"UNIT_SWITCH": 2}
    assert (parsed.rows_loaded, parsed.rows_rejected) == (40, 0)


def test_large_move_beyond_the_limit_only(reader: Reader, tmp_path: Path) -> None:
    rows = steady(30)
    rows[10] = (rows[10][0], 160.0)  # +60 % (flagged), then -37.5 % back (not)
    rows[20] = (rows[20][0], 149.0)  # +49 %: under the limit
    assert warnings(read(reader, tmp_path, body(rows))) == [(12, "LARGE_MOVE")]
    tighter = read(reader, tmp_path, body(rows), Checks(max_move=0.3))
    # at 30 %: both jumps and both falls back (-37.5 %, -32.7 %)
    assert warnings(tighter) == [(n, "LARGE_MOVE") for n in (12, 13, 22, 23)]


def test_stale_flags_the_repeats_of_a_run_of_ten_or_more(reader: Reader, tmp_path: Path) -> None:
    # a run of 12 identical rows (rows 5-16: the 11 repeats are flagged), then one of 9 (not)
    rows = steady(40)
    data = body(rows, stale_from=5, stale_rows=12).decode()
    lines = data.splitlines(keepends=True)
    repeat = lines[26].split(",", 1)[1]
    for n in range(27, 35):  # rows 25-33: 9 rows equal to row 25
        lines[n] = lines[n].split(",", 1)[0] + "," + repeat
    parsed = read(reader, tmp_path, "".join(lines).encode())
    assert warnings(parsed) == [(line, "STALE") for line in range(8, 19)]


def test_gap_of_more_business_days_than_allowed(reader: Reader, tmp_path: Path) -> None:
    days = business_days(60, START)
    # 10 business days missing before row 10 (allowed), 11 before row 20 (flagged)
    kept = days[:10] + days[20:30] + days[41:51]
    rows = [(day, 100 + i * 0.01) for i, day in enumerate(kept)]
    assert warnings(read(reader, tmp_path, body(rows))) == [(22, "GAP")]
    assert warnings(read(reader, tmp_path, body(rows), Checks(max_gap_days=9))) == [
        (12, "GAP"),
        (22, "GAP"),
    ]


def test_a_weekend_and_a_holiday_are_no_gap(reader: Reader, tmp_path: Path) -> None:
    rows = [(day, 100.0 + i) for i, day in enumerate(business_days(20, START)) if i != 7]
    assert warnings(read(reader, tmp_path, body(rows))) == []


def test_the_first_row_is_compared_with_the_stored_row_before_it(
    reader: Reader, tmp_path: Path
) -> None:
    asked: list[tuple[list[int], list[date]]] = []

    def previous(ids: list[int], firsts: list[date]) -> list[tuple[int, date, float]]:
        asked.append((ids, firsts))
        return [(ids[0], firsts[0] - timedelta(days=3), 1.0)]  # stored in another unit

    parsed = read(reader, tmp_path, body(steady(5)), previous=previous)
    assert asked == [([1], [START])]
    assert warnings(parsed) == [(2, "UNIT_SWITCH")]
    with parsed.warnings_csv.open(encoding="utf-8") as file:  # type: ignore[union-attr]
        row = list(csv.DictReader(file))[0]
    assert (row["ref_line"], row["ref_date"], row["ref_close"]) == ("", "2023-12-29", "1.0")


def test_reject_mode_rejects_exactly_the_flagged_rows(reader: Reader, tmp_path: Path) -> None:
    parsed = read(reader, tmp_path, body(unit_switch_rows()), Checks(mode="reject"))
    assert rejects(parsed) == [(22, "UNIT_SWITCH"), (32, "UNIT_SWITCH")]
    assert (parsed.rows_loaded, parsed.rows_rejected, parsed.warnings) == (38, 2, {})
    assert parsed.warnings_csv is None


def test_reject_mode_with_every_row_flagged_fails_the_file(reader: Reader, tmp_path: Path) -> None:
    rows = steady(2)
    data = body([rows[0], (rows[1][0], 10_000.0)])
    with pytest.raises(FileRejectedError, match="plausibility"):
        read(
            reader,
            tmp_path,
            data,
            Checks(mode="reject"),
            lambda ids, firsts: [(ids[0], firsts[0] - timedelta(days=1), 10_000.0)],
        )


def test_off_mode_checks_nothing_and_loads_the_same_rows(reader: Reader, tmp_path: Path) -> None:
    def previous(ids: list[int], firsts: list[date]) -> list[tuple[int, date, float]]:
        raise AssertionError("off mode looks up no stored row")

    data = body(unit_switch_rows())
    off = read(reader, tmp_path, data, Checks(mode="off"), previous)
    warned = read(reader, tmp_path, data)
    assert (off.warnings, off.warnings_csv, off.series) == ({}, None, None)
    assert (off.rows_loaded, off.rows_rejected) == (40, 0)
    assert off.rows_csv.read_bytes() == warned.rows_csv.read_bytes()


def test_series_is_weekly_and_bounded_with_flagged_points(reader: Reader, tmp_path: Path) -> None:
    short = read(reader, tmp_path, body(unit_switch_rows())).series
    assert short is not None
    assert (short["ticker"], short["from"], short["to"]) == ("TEST", "2024-01-05", "2024-02-23")
    assert len(short["close"]) == 8 and short["flagged"] == [4, 6]
    long = read(reader, tmp_path, body(steady(2600))).series
    assert long is not None and 0 < len(long["close"]) <= SERIES_POINTS and long["flagged"] == []


def test_the_100x_vendor_error_is_flagged_where_the_unit_changes(
    reader: Reader, tmp_path: Path
) -> None:
    data = (REAL / "SSW-JO-1d-100x-error.csv").read_bytes()
    parsed = read(reader, tmp_path, data)
    # line 9 (2023-05-31) is the last bar in cents, line 8 (2023-06-01) the first in rand
    assert warnings(parsed) == [(8, "UNIT_SWITCH")]


# The look-alikes' warnings are real features of the data they reproduce: a half-year hole in
# an index's history, penny-stock jumps, a small cap's +60 % day.
EXPECTED = {
    "MIDX30.mst": [(32, "GAP")],
    "SH#609999.txt": [(42, "LARGE_MOVE"), (82, "LARGE_MOVE"), (82, "GAP")],
}


@pytest.mark.parametrize(
    "path",
    [p for p in sorted(REAL.iterdir()) if p.suffix not in (".md",) and p.name[0] != "."]
    + [
        p
        for p in sorted(LOOKALIKE.iterdir())
        if p.suffix not in (".md", ".py") and p.name[0] != "."
    ],
    ids=lambda p: p.name,
)
def test_samples_get_exactly_their_warnings(reader: Reader, tmp_path: Path, path: Path) -> None:
    expected = EXPECTED.get(path.name, [])
    if path.name == "SSW-JO-1d-100x-error.csv":
        expected = [(8, "UNIT_SWITCH")]
    assert warnings(read(reader, tmp_path, path.read_bytes())) == expected
