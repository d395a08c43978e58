"""The 16 real sample files (shared/samples/real, see its README) through the real flow.

Spot rows were checked by hand against the raw files: (date, open, high, low, close, volume).
"""

from decimal import Decimal as D
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.functions.test_entry_points import _raw, _status, _uploaded
from tests.helpers import app

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "real"
Row = tuple[str, str, str, str, str, str]
# file, ticker given at presign (None: the file's column or the name rule), status,
# rows loaded, rows rejected, tickers, two spot rows (ticker, row)
CASES: list[tuple[str, str | None, str, int, int, list[str], list[tuple[str, Row]]]] = [
    (
        "nvda-2014.txt",
        None,
        "COMPLETED",
        252,
        0,
        ["NVDA"],
        [  # the name rule
            ("NVDA", ("2014-01-02", "15.92", "15.98", "15.72", "15.86", "6502300")),
            ("NVDA", ("2014-03-03", "17.969999", "18.290001", "17.809999", "18.290001", "9398700")),
        ],
    ),
    (
        "Issue101_data.csv",
        "AV101",
        "COMPLETED",
        100,
        0,
        ["AV101"],
        [
            ("AV101", ("2019-11-22", "148.11", "148.75", "144.12", "147.92", "718830")),
            ("AV101", ("2020-03-02", "152.5", "155.865", "146.12", "155.64", "1361008")),
        ],
    ),
    (
        "issue568.csv",
        "NIFTY",
        "COMPLETED",
        205,
        0,
        ["NIFTY"],
        [
            ("NIFTY", ("2022-01-03", "17625.7", "17625.7", "17625.7", "17625.7", "16181")),
            ("NIFTY", ("2022-01-04", "17805.25", "17805.25", "17805.25", "17805.25", "18604")),
        ],
    ),
    (
        "sample.csv",
        "SPY",
        "COMPLETED",
        100,
        0,
        ["SPY"],
        [
            ("SPY", ("2018-07-05", "272.17", "273.18", "270.96", "273.11", "56925919")),
            ("SPY", ("2018-07-06", "273.14", "275.84", "272.715", "275.42", "66493696")),
        ],
    ),
    # 4 bars outside [low, high] are rejected; the 100x rand/cents switch is not detected.
    (
        "SSW-JO-1d-100x-error.csv",
        "SSW.JO",
        "COMPLETED",
        25,
        4,
        ["SSW.JO"],
        [
            ("SSW.JO", ("2023-05-03", "3975", "4098", "3968", "4095", "14657028")),
            ("SSW.JO", ("2023-05-04", "4149", "4330", "4123", "4283", "15506868")),
        ],
    ),
    # 2 empty bars and 1 bar with open > high rejected; offsets never shift the date.
    (
        "PSH-L-1d-bad-div.csv",
        "PSH.L",
        "COMPLETED",
        662,
        3,
        ["PSH.L"],
        [
            ("PSH.L", ("2022-01-04", "29.95", "30.650000000000002", "29.85", "29.85", "140309")),
            (
                "PSH.L",
                (
                    "2022-01-05",
                    "30.150000000000002",
                    "30.55",
                    "30.150000000000002",
                    "30.150000000000002",
                    "80355",
                ),
            ),
        ],
    ),
    (
        "INFY Historical Data.csv",
        None,
        "COMPLETED",
        20,
        0,
        ["INFY"],
        [  # the name rule
            ("INFY", ("2025-08-07", "1430", "1442", "1414.2", "1436.9", "9890000")),
            ("INFY", ("2025-08-08", "1425", "1433.2", "1417.1", "1423.1", "10050000")),
        ],
    ),
    (
        "hist-prices-Daimler-Truck.csv",
        "DTG",
        "COMPLETED",
        569,
        0,
        ["DTG"],
        [
            ("DTG", ("2021-12-13", "32", "33.48", "31.36", "32.96", "7340000")),
            ("DTG", ("2021-12-14", "34.01", "35.1", "32.54", "32.9", "4260000")),
        ],
    ),
    (
        "HistoricalQuotes.csv",
        "AAPL.NQ",
        "COMPLETED",
        1999,
        0,
        ["AAPL.NQ"],
        [
            ("AAPL.NQ", ("2012-03-20", "85.6443", "86.7", "83.1428", "86.5657", "203497481")),
            ("AAPL.NQ", ("2012-03-21", "86.1057", "87.0928", "85.9157", "86.0714", "160447118")),
        ],
    ),
    # the live-session row (date "11:34") is rejected
    (
        "tesla-stock-price.csv",
        "TSLA.O",
        "COMPLETED",
        756,
        1,
        ["TSLA.O"],
        [
            ("TSLA.O", ("2015-10-15", "216.43", "221.73", "213.7", "221.31", "2835920")),
            ("TSLA.O", ("2015-10-16", "223.04", "230.4805", "222.87", "227.01", "4327574")),
        ],
    ),
    # the ticker column (ABAT.US) wins over the file name
    (
        "aapg.us.txt",
        None,
        "COMPLETED",
        623,
        0,
        ["ABAT.US"],
        [
            ("ABAT.US", ("2023-09-22", "10.79", "11.2", "10.57", "10.85", "334424")),
            ("ABAT.US", ("2023-09-25", "10.85", "10.88", "9.8", "9.95", "245751")),
        ],
    ),
    (
        "apator.csv",
        "APT",
        "COMPLETED",
        1250,
        0,
        ["APT"],
        [
            ("APT", ("2019-03-01", "21.6113", "22.0242", "21.4459", "22.0242", "64217.842171942")),
            ("APT", ("2019-03-04", "22.354", "22.6016", "21.7757", "21.8589", "2865.4481576461")),
        ],
    ),
    (
        "WIG20.mst",
        None,
        "COMPLETED",
        1999,
        0,
        ["WIG20"],
        [
            ("WIG20", ("1994-04-14", "1000", "1000", "1000", "1000", "35800")),
            ("WIG20", ("1994-04-18", "1050.5", "1050.5", "1050.5", "1050.5", "49975")),
        ],
    ),
    # close is Settle; 3 bars (missing open/high/low, high and low 0.0) are rejected
    (
        "CHRIS-CME_CL1.csv",
        "CL1",
        "COMPLETED",
        1996,
        3,
        ["CL1"],
        [
            ("CL1", ("2007-01-23", "53.4", "55.15", "53.05", "55.04", "243676")),
            ("CL1", ("2007-01-24", "54.75", "55.5", "53.7", "55.37", "250596")),
        ],
    ),
    (
        "prices-split-adjusted.csv",
        None,
        "COMPLETED",
        1999,
        0,
        ["AAL", "DOW", "EQIX", "ZION"],
        [
            ("ZION", ("2010-01-04", "12.94", "13.37", "12.88", "13.33", "3974600")),
            ("AAL", ("2010-01-05", "4.79", "5.37", "4.71", "5.31", "25212000")),
        ],
    ),
    # GBK title/header, tab header over comma rows, footer ignored; per the contract the
    # 1,233 forward-adjusted bars with a zero or negative price are rejected.
    (
        "SH#600000.txt",
        "600000.SS",
        "COMPLETED",
        764,
        1233,
        ["600000.SS"],
        [
            ("600000.SS", ("2000-01-04", "0.72", "0.84", "0.68", "0.81", "4496000")),
            ("600000.SS", ("2000-01-05", "0.81", "0.87", "0.74", "0.76", "5252800")),
        ],
    ),
]


def _row(env: dict[str, str], ticker: str, date: str) -> tuple[Any, ...] | None:
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        return conn.execute(
            "SELECT d.date::text, d.open, d.high, d.low, d.close, d.volume"
            " FROM seasonality_data d JOIN tickers t ON t.id = d.ticker_id"
            " WHERE t.symbol = %s AND d.date = %s::date",
            (ticker, date),
        ).fetchone()


def test_every_sample_has_a_case() -> None:
    files = {p.name for p in SAMPLES.iterdir() if p.name != "README.md"}
    assert files == {case[0] for case in CASES}


@pytest.mark.parametrize(
    ("name", "ticker", "status", "loaded", "rejected", "tickers", "spots"),
    CASES,
    ids=[case[0] for case in CASES],
)
def test_real_sample(
    function_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    ticker: str | None,
    status: str,
    loaded: int,
    rejected: int,
    tickers: list[str],
    spots: list[tuple[str, Row]],
) -> None:
    # MetaStock's .mst is not a default extension: an admin would add it to the deployment.
    monkeypatch.setenv("ALLOWED_EXTENSIONS", ".csv,.txt,.tsv,.mst")
    batch_id, notification = _uploaded(
        function_env, name, (SAMPLES / name).read_bytes(), ticker=ticker
    )
    assert app("process-file").post("/", **_raw(notification)).status_code == 204
    file = _status(batch_id)["files"][0]
    assert (file["status"], file["rowsLoaded"], file["rowsRejected"]) == (
        status,
        loaded,
        rejected,
    ), file.get("error")
    assert file["tickers"] == tickers
    for symbol, (date, *values) in spots:
        assert _row(function_env, symbol, date) == (date, *map(D, values))
