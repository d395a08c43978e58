"""One small synthetic file per reading rule, through the real flow (presign, PUT, process-file)."""

import secrets
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from tests.functions.test_entry_points import _raw, _status, _uploaded
from tests.helpers import app

HEADER = "Date,Open,High,Low,Close,Volume\n"


def _load(env: dict[str, str], body: bytes, name: str = "data.csv") -> tuple[str, dict[str, Any]]:
    """Upload under a fresh ticker; answer the ticker and the file's status."""
    ticker = "T" + secrets.token_hex(4).upper()
    batch_id, notification = _uploaded(env, name, body, ticker=ticker)
    assert app("process-file").post("/", **_raw(notification)).status_code == 204
    return ticker, _status(batch_id)["files"][0]


def _rows(env: dict[str, str], ticker: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        return conn.execute(
            "SELECT d.date::text, d.open, d.high, d.low, d.close, d.volume, d.open_interest"
            " FROM seasonality_data d JOIN tickers t ON t.id = d.ticker_id"
            " WHERE t.symbol = %s ORDER BY d.date",
            (ticker,),
        ).fetchall()


def _loaded(env: dict[str, str], body: bytes, count: int) -> list[tuple[Any, ...]]:
    ticker, file = _load(env, body)
    assert (file["status"], file["rowsLoaded"]) == ("COMPLETED", count), file
    return _rows(env, ticker)


def test_semicolon_file_with_decimal_comma(function_env: dict[str, str]) -> None:
    body = (
        "Datum;Eröffnung;Hoch;Tief;Schluss;Volumen\n02.01.2024;1.234,50;1.240;1.230,25;1.235;12\n"
    )
    rows = _loaded(function_env, body.encode(), 1)
    assert rows == [
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


def test_utf16_with_bom(function_env: dict[str, str]) -> None:
    rows = _loaded(function_env, (HEADER + "2024-01-02,1.5,2,1,1.75,10\n").encode("utf-16"), 1)
    assert rows[0][:5] == (
        "2024-01-02",
        Decimal("1.5"),
        Decimal("2"),
        Decimal("1"),
        Decimal("1.75"),
    )


def test_utf16_big_endian_with_bom(function_env: dict[str, str]) -> None:
    body = b"\xfe\xff" + (HEADER + "2024-01-02,1.5,2,1,1.75,10\n").encode("utf-16-be")
    assert _loaded(function_env, body, 1)[0][4] == Decimal("1.75")


def test_latin1_file_rejects_keep_their_characters(function_env: dict[str, str]) -> None:
    import requests

    body = ("Datum;Eröffnung;Hoch;Tief;Schluss\n02.01.2024;1;2;1;2\n03.01.2024;€;2;1;2\n").encode(
        "cp1252"
    )
    _, file = _load(function_env, body)
    assert (file["rowsLoaded"], file["rowsRejected"]) == (1, 1), file
    rejects = requests.get(file["rejectsUrl"], timeout=10).content.decode("utf-8")
    assert "Eröffnung" in rejects and "€" in rejects and "\ufffd" not in rejects


def test_title_line_above_the_header_and_footer_below(function_env: dict[str, str]) -> None:
    body = "Daily prices, exported 2024\r\n\r\n" + HEADER + "2024-01-02,1,2,1,2,3\r\nSource: X\r\n"
    ticker, file = _load(function_env, body.encode())
    assert (file["status"], file["rowsLoaded"], file["rowsRejected"]) == ("COMPLETED", 1, 0)
    assert len(_rows(function_env, ticker)) == 1


def test_volume_suffixes_expand_exactly(function_env: dict[str, str]) -> None:
    body = (
        '"Date","Price","Open","High","Low","Vol."\n'
        '"2024-01-02","1,444.60","1,400","1,450","1,399.5","1.2M"\n'
        '"2024-01-03","$12.50","12","13","12","350K"\n'
        '"2024-01-04","2","2","2","2","1.5B"\n'
        '"2024-01-05","1.5e1","15","15","15","0.000123K"\n'
    )
    rows = _loaded(function_env, body.encode(), 4)
    assert [(r[4], r[5]) for r in rows] == [
        (Decimal("1444.60"), Decimal("1200000")),
        (Decimal("12.50"), Decimal("350000")),
        (Decimal("2"), Decimal("1500000000")),
        (Decimal("15"), Decimal("0.123")),
    ]


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
def test_each_date_format(function_env: dict[str, str], written: str, date: str) -> None:
    rows = _loaded(function_env, f"{HEADER}{written},1,2,1,2,3\n".encode(), 1)
    assert rows[0][0] == date


def test_day_first_file(function_env: dict[str, str]) -> None:
    rows = _loaded(
        function_env, f"{HEADER}05-01-2024,1,2,1,2,3\n29-01-2024,1,2,1,2,3\n".encode(), 2
    )
    assert [r[0] for r in rows] == ["2024-01-05", "2024-01-29"]


def test_month_first_file(function_env: dict[str, str]) -> None:
    rows = _loaded(function_env, f"{HEADER}1/5/2024,1,2,1,2,3\n1/29/2024,1,2,1,2,3\n".encode(), 2)
    assert [r[0] for r in rows] == ["2024-01-05", "2024-01-29"]


def test_all_ambiguous_file_is_month_first(function_env: dict[str, str]) -> None:
    rows = _loaded(function_env, f"{HEADER}01/02/2024,1,2,1,2,3\n".encode(), 1)
    assert rows[0][0] == "2024-01-02"


def test_conflicting_day_month_orders_fail_the_file(function_env: dict[str, str]) -> None:
    _, file = _load(function_env, f"{HEADER}13/01/2024,1,2,1,2,3\n01/13/2024,1,2,1,2,3\n".encode())
    assert file["status"] == "FAILED" and "day/month order" in file["error"]
    assert "'13/01/2024' (line 2)" in file["error"]


def test_empty_cells(function_env: dict[str, str]) -> None:
    body = (
        f"{HEADER}2024-01-02,1,2,1,2,-\n2024-01-03,1,2,1,2,null\n2024-01-04,1,2,1,2,NaN\n"
        "2024-01-05,-,2,1,2,1\n2024-01-08,NaN,2,1,2,1\n2024-01-09,1,2,1,null,1\n"
    )
    ticker, file = _load(function_env, body.encode())
    assert (file["rowsLoaded"], file["rowsRejected"]) == (3, 3)
    assert [r[5] for r in _rows(function_env, ticker)] == [Decimal(0)] * 3


def test_duplicates_within_a_file_last_wins(function_env: dict[str, str]) -> None:
    rows = _loaded(
        function_env, f"{HEADER}2024-01-02,1,2,1,2,3\n2024-01-02,1,2,1,1.5,4\n".encode(), 1
    )
    assert (rows[0][4], rows[0][5]) == (Decimal("1.5"), Decimal("4"))


def test_bad_numbers_are_rejected_not_zeroed(function_env: dict[str, str]) -> None:
    body = f"{HEADER}2024-01-02,1,2,1,2,12abc\n2024-01-03,1,2,1,2,1,5\n2024-01-04,1,2,1,2,5\n"
    _, file = _load(function_env, body.encode())
    assert (file["rowsLoaded"], file["rowsRejected"]) == (2, 1)
