"""The nasty-case corpus: one test per contract rule for whole files, rows and duplicates."""

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from shared.events import minio_notification
from tests.functions.test_entry_points import _raw, _status, _store, _uploaded
from tests.functions.test_formats import HEADER, _load, _loaded, _rows
from tests.helpers import app, multi_ticker_csv

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256)) * 4
ZIP = b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(range(256)) * 4


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
def test_unusable_files_fail_with_their_cause(
    function_env: dict[str, str], body: bytes, cause: str
) -> None:
    _, file = _load(function_env, body)
    assert file["status"] == "FAILED" and cause in file["error"], file
    assert file["tickers"] == [] and file["rowsLoaded"] == 0


def test_header_only_file_completes_with_no_rows(function_env: dict[str, str]) -> None:
    _, file = _load(function_env, HEADER.encode())
    assert (file["status"], file["rowsLoaded"], file["rowsRejected"]) == ("COMPLETED", 0, 0)


def test_file_without_any_ticker_fails(function_env: dict[str, str]) -> None:
    batch_id, notification = _uploaded(
        function_env, "#prices.csv", HEADER.encode() + b"2024-01-02,1,2,1,2,3\n"
    )
    app("process-file").post("/", **_raw(notification))
    file = _status(batch_id)["files"][0]
    assert file["status"] == "FAILED" and file["error"].startswith("No ticker")


def test_a_one_megabyte_field_is_a_rejected_row_not_a_crash(function_env: dict[str, str]) -> None:
    body = (
        HEADER + "2024-01-02,1,2,1,2,3\n" + '2024-01-03,"' + "9" * 1_000_000 + '",2,1,2,3\n'
    ).encode()
    _, file = _load(function_env, body)
    assert (file["status"], file["rowsLoaded"], file["rowsRejected"]) == ("COMPLETED", 1, 1), file


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
def test_each_row_rule_rejects_with_its_reason(
    function_env: dict[str, str], row: str, reason: str
) -> None:
    import requests

    body = (HEADER + "2023-06-01,1,2,1,2,3\n" + row + "\n").encode()
    _, file = _load(function_env, body)
    assert (file["status"], file["rowsLoaded"], file["rowsRejected"]) == ("COMPLETED", 1, 1), file
    rejects = list(csv.reader(io.StringIO(requests.get(file["rejectsUrl"], timeout=10).text)))
    assert rejects[1][-2] == reason, rejects


def test_prices_are_stored_exactly_as_written(function_env: dict[str, str]) -> None:
    body = (
        HEADER
        + "2024-01-02,0.00001234,0.00001300,0.00001200,0.00001250,1.5\n"
        + '2024-01-03,"1,234.5",$1300.25,1.2e3,1250,350K\n'
    ).encode()
    rows = _loaded(function_env, body, 2)
    assert rows[0][1:6] == (
        Decimal("0.00001234"),
        Decimal("0.00001300"),
        Decimal("0.00001200"),
        Decimal("0.00001250"),
        Decimal("1.5"),
    )
    assert rows[1][1:6] == (
        Decimal("1234.5"),
        Decimal("1300.25"),
        Decimal("1200"),
        Decimal("1250"),
        Decimal("350000"),
    )


def test_a_200000_row_multi_ticker_file(function_env: dict[str, str]) -> None:
    body = (
        multi_ticker_csv("BIGM", 40, 2000) + multi_ticker_csv("BIGN", 60, 2000).split(b"\n", 1)[1]
    )
    batch_id, notification = _uploaded(function_env, "many.csv", body)
    assert app("process-file").post("/", **_raw(notification)).status_code == 204
    file = _status(batch_id)["files"][0]
    assert (file["status"], file["rowsLoaded"], len(file["tickers"])) == ("COMPLETED", 200_000, 100)
    with psycopg.connect(function_env["DATABASE_URL"]) as conn:
        count = conn.execute(
            "SELECT count(*) FROM seasonality_data d JOIN tickers t"
            " ON t.id = d.ticker_id WHERE t.symbol ~ '^BIG[MN][0-9]{2}$'"
        ).fetchone()
    assert count == (200_000,)


def _put_version(env: dict[str, str], key: str, close: str, uploaded: datetime) -> Any:
    body = (HEADER + f"2024-02-01,1,9,1,{close},3\n").encode()
    _store(env).put_object(
        env["S3_BUCKET"], key, io.BytesIO(body), len(body), content_type="text/csv"
    )
    stat = _store(env).stat_object(env["S3_BUCKET"], key)
    return minio_notification(env["S3_BUCKET"], key, stat.etag, stat.size, uploaded)


@pytest.mark.parametrize("order", ["older first", "newer first"])
def test_across_files_the_later_upload_wins_in_either_processing_order(
    function_env: dict[str, str], order: str
) -> None:
    ticker = "LATE" + ("A" if order == "older first" else "B")
    batch = "b_" + ("A" if order == "older first" else "B") * 26
    now = datetime.now(UTC)
    older = _put_version(function_env, f"uploads/{batch}/{ticker}.csv", "2", now)
    newer = _put_version(
        function_env, f"uploads/{batch}/{ticker} (1).csv", "5", now + timedelta(seconds=1)
    )
    events = [older, newer] if order == "older first" else [newer, older]
    process = app("process-file")
    for event in events + events:  # and again: redelivery changes nothing
        assert process.post("/", **_raw(event)).status_code == 204
    assert [r[4] for r in _rows(function_env, ticker)] == [Decimal("5")]
    state = _status(batch)
    assert (state["processed"], state["rowsLoaded"]) == (2, 2)
