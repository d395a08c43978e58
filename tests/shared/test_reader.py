"""The reader's own rules, on local files: numbers, dates, encodings, footers, duplicates and
the rejected rows, one small file per rule."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from shared.errors import FileRejectedError
from tests.support.reading import HEADER, LocalReader

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256)) * 4
ZIP = b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(range(256)) * 4


def test_semicolon_file_with_decimal_comma(local: LocalReader) -> None:
    body = (
        "Datum;Eröffnung;Hoch;Tief;Schluss;Volumen\n02.01.2024;1.234,50;1.240;1.230,25;1.235;12\n"
    )
    assert local.read(body.encode()).rows == [
        (
            "2024-01-02",
            Decimal("1234.50"),
            Decimal("1240"),
            Decimal("1230.25"),
            Decimal("1235"),
            Decimal("12"),
            Decimal("0"),
        )
    ]


def test_utf16_with_bom(local: LocalReader) -> None:
    read = local.read((HEADER + "2024-01-02,1.5,2,1,1.75,10\n").encode("utf-16"))
    assert read.rows[0][:5] == (
        "2024-01-02",
        Decimal("1.5"),
        Decimal("2"),
        Decimal("1"),
        Decimal("1.75"),
    )


def test_utf16_big_endian_with_bom(local: LocalReader) -> None:
    body = b"\xfe\xff" + (HEADER + "2024-01-02,1.5,2,1,1.75,10\n").encode("utf-16-be")
    assert local.read(body).rows[0][4] == Decimal("1.75")


def test_latin1_file_rejects_keep_their_characters(local: LocalReader) -> None:
    body = ("Datum;Eröffnung;Hoch;Tief;Schluss\n02.01.2024;1;2;1;2\n03.01.2024;€;2;1;2\n").encode(
        "cp1252"
    )
    read = local.read(body)
    assert (read.parsed.rows_loaded, read.parsed.rows_rejected) == (1, 1)
    assert read.rejects[0][2] == "Eröffnung" and read.rejects[1][2] == "€"
    assert "\ufffd" not in str(read.rejects)


def test_title_line_above_the_header_and_footer_below(local: LocalReader) -> None:
    body = "Daily prices, exported 2024\r\n\r\n" + HEADER + "2024-01-02,1,2,1,2,3\r\nSource: X\r\n"
    read = local.read(body.encode())
    assert (read.parsed.rows_loaded, read.parsed.rows_rejected) == (1, 0)
    assert [row[0] for row in read.rows] == ["2024-01-02"]


def test_volume_suffixes_expand_exactly(local: LocalReader) -> None:
    body = (
        '"Date","Price","Open","High","Low","Vol."\n'
        '"2024-01-02","1,444.60","1,400","1,450","1,399.5","1.2M"\n'
        '"2024-01-03","$12.50","12","13","12","350K"\n'
        '"2024-01-04","2","2","2","2","1.5B"\n'
        '"2024-01-05","1.5e1","15","15","15","0.000123K"\n'
    )
    assert [(r[4], r[5]) for r in local.read(body.encode()).rows] == [
        (Decimal("1444.60"), Decimal("1200000")),
        (Decimal("12.50"), Decimal("350000")),
        (Decimal("2"), Decimal("1500000000")),
        (Decimal("15"), Decimal("0.123")),
    ]


def test_prices_keep_every_written_digit(local: LocalReader) -> None:
    body = (
        HEADER
        + "2024-01-02,0.00001234,0.00001300,0.00001200,0.00001250,1.5\n"
        + '2024-01-03,"1,234.5",$1300.25,1.2e3,1250,350K\n'
    ).encode()
    rows = local.read(body).rows
    assert [str(v) for v in rows[0][1:6]] == [
        "0.00001234",
        "0.00001300",
        "0.00001200",
        "0.00001250",
        "1.5",
    ]
    assert rows[1][1:6] == (
        Decimal("1234.5"),
        Decimal("1300.25"),
        Decimal("1200"),
        Decimal("1250"),
        Decimal("350000"),
    )


@pytest.mark.parametrize(
    ("written", "date"),
    [
        ("2023-11-27", "2023-11-27"),
        ("2023/11/27", "2023-11-27"),
        ("2023-11-27 23:00:00-05:00", "2023-11-27"),
        ("2023-11-27T00:00:00+09:00", "2023-11-27"),
        ("20231127", "2023-11-27"),
        ('"Nov 27, 2023"', "2023-11-27"),
        ("27-Nov-2023", "2023-11-27"),
        ("3-Jan-22", "2022-01-03"),
        ("3-Jan-69", "1969-01-03"),
        ("27.11.2023", "2023-11-27"),
        ("05.01.2023", "2023-01-05"),
        ("11/27/2023", "2023-11-27"),
        ("27/11/2023", "2023-11-27"),
        ("05/01/2023", "2023-05-01"),
    ],
)
def test_each_date_format(local: LocalReader, written: str, date: str) -> None:
    read = local.read(f"{HEADER}{written},1,2,1,2,3\n".encode())
    assert [row[0] for row in read.rows] == [date]


def test_day_first_file(local: LocalReader) -> None:
    read = local.read(f"{HEADER}05-01-2024,1,2,1,2,3\n29-01-2024,1,2,1,2,3\n".encode())
    assert [r[0] for r in read.rows] == ["2024-01-05", "2024-01-29"]


def test_month_first_file(local: LocalReader) -> None:
    read = local.read(f"{HEADER}1/5/2024,1,2,1,2,3\n1/29/2024,1,2,1,2,3\n".encode())
    assert [r[0] for r in read.rows] == ["2024-01-05", "2024-01-29"]


def test_all_ambiguous_file_is_month_first(local: LocalReader) -> None:
    assert local.read(f"{HEADER}01/02/2024,1,2,1,2,3\n".encode()).rows[0][0] == "2024-01-02"


def test_conflicting_day_month_orders_fail_the_file(local: LocalReader) -> None:
    body = f"{HEADER}13/01/2024,1,2,1,2,3\n01/13/2024,1,2,1,2,3\n".encode()
    with pytest.raises(FileRejectedError, match="day/month order") as rejected:
        local.read(body)
    assert "'13/01/2024' (line 2)" in str(rejected.value)


def test_empty_cells(local: LocalReader) -> None:
    body = (
        f"{HEADER}2024-01-02,1,2,1,2,-\n2024-01-03,1,2,1,2,null\n2024-01-04,1,2,1,2,NaN\n"
        "2024-01-05,-,2,1,2,1\n2024-01-08,NaN,2,1,2,1\n2024-01-09,1,2,1,null,1\n"
    )
    read = local.read(body.encode())
    assert (read.parsed.rows_loaded, read.parsed.rows_rejected) == (3, 3)
    assert [r[5] for r in read.rows] == [Decimal(0)] * 3


def test_duplicates_within_a_file_last_wins(local: LocalReader) -> None:
    read = local.read(f"{HEADER}2024-01-02,1,2,1,2,3\n2024-01-02,1,2,1,1.5,4\n".encode())
    assert [(r[4], r[5]) for r in read.rows] == [(Decimal("1.5"), Decimal("4"))]
    assert (read.parsed.rows_loaded, read.parsed.rows_rejected) == (1, 0)


def test_bad_numbers_are_rejected_not_zeroed(local: LocalReader) -> None:
    body = f"{HEADER}2024-01-02,1,2,1,2,12abc\n2024-01-03,1,2,1,2,1,5\n2024-01-04,1,2,1,2,5\n"
    read = local.read(body.encode())
    assert (read.parsed.rows_loaded, read.parsed.rows_rejected) == (2, 1)


@pytest.mark.parametrize(
    ("body", "cause"),
    [
        (b"", "empty"),
        (PNG, "not text"),
        (ZIP, "not text"),
        (b"Date,Open,High\x00,Low,Close\n2024-01-02,1,2,1,2\n", "not text"),
        (b"\n\n\n", "no header"),
        (b"Date,Open,High,Low\n2024-01-02,1,2,1\n", "close"),
        (b"Open,High,Low,Close\n1,2,1,2\n", "date"),
        (HEADER.encode() + b"2024-01-02,5,2,1,1,0\n2024-01-03,0,1,1,1,0\n", "No valid data rows"),
    ],
)
def test_unusable_files_fail_with_their_cause(local: LocalReader, body: bytes, cause: str) -> None:
    with pytest.raises(FileRejectedError, match=cause):
        local.read(body)


def test_all_rows_rejected_names_the_first_cause(local: LocalReader) -> None:
    body = HEADER.encode() + b"2024-01-02,5,2,1,1,0\n2024-01-03,0,1,1,1,0\n"
    with pytest.raises(FileRejectedError) as rejected:
        local.read(body)
    assert str(rejected.value) == (
        "No valid data rows: all 2 were rejected (first, line 2: open or close lies outside"
        " [low, high])."
    )


def test_header_only_file_completes_with_no_rows(local: LocalReader) -> None:
    read = local.read(HEADER.encode())
    assert (read.parsed.rows_loaded, read.parsed.rows_rejected, read.rows) == (0, 0, [])
    assert read.parsed.rejects_csv is None and read.parsed.tickers == []


def test_a_one_megabyte_field_is_a_rejected_row_not_a_crash(local: LocalReader) -> None:
    body = (
        HEADER + "2024-01-02,1,2,1,2,3\n" + '2024-01-03,"' + "9" * 1_000_000 + '",2,1,2,3\n'
    ).encode()
    read = local.read(body)
    assert (read.parsed.rows_loaded, read.parsed.rows_rejected) == (1, 1)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("2024-13-45,1,2,1,2,3", "BAD_DATE"),
        ("1899-12-31,1,2,1,2,3", "DATE_OUT_OF_RANGE"),
        (f"{(datetime.now(UTC) + timedelta(days=2)).date()},1,2,1,2,3", "DATE_OUT_OF_RANGE"),
        ("2024-01-02,abc,2,1,2,3", "BAD_PRICE"),
        ("2024-01-02,,2,1,2,3", "BAD_PRICE"),
        ("2024-01-02,0,2,0,1,3", "NON_POSITIVE_PRICE"),
        ("2024-01-02,-1,2,1,2,3", "NON_POSITIVE_PRICE"),
        ("2024-01-02,1.5,1,2,1.5,3", "HIGH_BELOW_LOW"),
        ("2024-01-02,3,2,1,2,3", "OUTSIDE_RANGE"),
        ("2024-01-02,1,2,1,2.5,3", "OUTSIDE_RANGE"),
        ("2024-01-02,1,2,1,2,-3", "NEGATIVE_VOLUME"),
        ("2024-01-02,1,2,1,2,12abc", "BAD_VOLUME"),
    ],
)
def test_each_row_rule_rejects_with_its_reason(local: LocalReader, row: str, reason: str) -> None:
    read = local.read((HEADER + "2023-06-01,1,2,1,2,3\n" + row + "\n").encode())
    assert (read.parsed.rows_loaded, read.parsed.rows_rejected) == (1, 1)
    assert read.rejects[1][-2] == reason, read.rejects


def test_rejects_name_the_line_and_neutralise_formulas(local: LocalReader) -> None:
    body = (
        b"Date,Open,High,Low,Close\n2024-01-02,1,2,1,2\n2024-01-03,5,2,1,2\n"
        b"=cmd|' /C calc'!A0,1,2,1,2\n"
    )
    read = local.read(body)
    assert read.rejects[0] == ["line", "Date", "Open", "High", "Low", "Close", "reason", "message"]
    assert read.rejects[1][:7] == ["3", "2024-01-03", "5", "2", "1", "2", "OUTSIDE_RANGE"]
    assert read.rejects[2][:7] == ["4", "'=cmd|' /C calc'!A0", "1", "2", "1", "2", "BAD_DATE"]


def test_ticker_column_and_ticker_hint(local: LocalReader) -> None:
    body = b"Date,Ticker,Open,High,Low,Close\n2024-01-02, msft ,1,2,1,2\n2024-01-02,IBM,1,2,1,2\n"
    read = local.read(body)
    assert read.symbols == ["IBM", "MSFT"] and read.parsed.tickers == ["IBM", "MSFT"]
    hinted = local.read(HEADER.encode() + b"2024-01-02,1,2,1,2,3\n", ticker="NVDA")
    assert hinted.symbols == ["NVDA"] and hinted.parsed.tickers == ["NVDA"]


def test_rows_come_in_key_order_with_the_upload_time(local: LocalReader) -> None:
    body = HEADER + "2024-01-03,1,2,1,2,3\n2024-01-01,1,2,1,2,3\n2024-01-02,1,2,1,2,3\n"
    when = datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC)
    read = local.read(body.encode(), uploaded_at=when)
    assert [r[0] for r in read.rows] == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert (str(read.parsed.first_date), str(read.parsed.last_date)) == (
        "2024-01-01",
        "2024-01-03",
    )
    last_cells = read.parsed.rows_csv.read_text().splitlines()[0].split(",")
    assert datetime.fromisoformat(last_cells[-1]) == when
