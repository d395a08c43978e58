"""Real and look-alike sample files through the real flow.

Three sets, one expectation each (status, rows loaded and rejected, tickers, two spot rows):
- `tests/data/real`: the third-party originals whose licence allows redistribution, byte for
  byte; they are checked against the originals' own expectations below;
- `tests/data/lookalike`: files of this project's own, one per original that cannot be
  redistributed, in that original's exact format (see their README);
- the 16 originals themselves (marker `samples`), read from `SAMPLES_DIR`: skipped without
  it, a failure when it names no directory and `CI` is set (tests/support/samples.py).

Spot rows were checked by hand against the raw files: (date, open, high, low, close, volume).
"""

import hashlib
import re
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

import pytest

from tests.support.apps import app, batch_status, uploaded
from tests.support.ledger import stored_rows
from tests.support.notifications import as_post
from tests.support.samples import LOOKALIKE, REAL, original, originals_dir, sample_files

Row = tuple[str, str, str, str, str, str]
Case = tuple[str, str | None, str, int, int, list[str], list[tuple[str, Row]]]
# file, ticker given at presign (None: the file's column or the name rule), status,
# rows loaded, rows rejected, tickers, two spot rows (ticker, row)
CASES: list[Case] = [
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


# The look-alikes: which original each imitates (the format, never the data), and what they
# hold by construction (tests/data/lookalike/make.py).
IMITATES = {
    "ZYXW Historical Data.csv": "INFY Historical Data.csv",
    "hist-prices-Voorbeeld-Transport.csv": "hist-prices-Daimler-Truck.csv",
    "HistoricalQuotes.csv": "HistoricalQuotes.csv",
    "abcx.us.txt": "aapg.us.txt",
    "wierzba.csv": "apator.csv",
    "MIDX30.mst": "WIG20.mst",
    "CHRIS-CME_ZZ1.csv": "CHRIS-CME_CL1.csv",
    "SH#609999.txt": "SH#600000.txt",
}
LOOKALIKE_CASES: list[Case] = [
    # the name rule on a name with spaces; DD-MM-YYYY (29-03-2024 decides), "1,481.46", "4.74M"
    (
        "ZYXW Historical Data.csv",
        None,
        "COMPLETED",
        20,
        0,
        ["ZYXW"],
        [
            ("ZYXW", ("2024-03-04", "1481.46", "1498.83", "1453.84", "1470.47", "4740000")),
            ("ZYXW", ("2024-03-05", "1473.41", "1477.4", "1457.94", "1463.13", "6540000")),
        ],
    ),
    # Dutch header, decimal commas in prices and in "652,79K" / "3,21M" volumes
    (
        "hist-prices-Voorbeeld-Transport.csv",
        "VBT",
        "COMPLETED",
        60,
        0,
        ["VBT"],
        [
            ("VBT", ("2023-01-02", "24.16", "24.58", "24.04", "24.33", "3210000")),
            ("VBT", ("2023-01-03", "24.61", "25.12", "24.5", "24.52", "652790")),
        ],
    ),
    # ", " delimiter, $ prices, close before open, MM/DD/YYYY
    (
        "HistoricalQuotes.csv",
        "ZZQ.NQ",
        "COMPLETED",
        120,
        0,
        ["ZZQ.NQ"],
        [
            ("ZZQ.NQ", ("2019-01-02", "158.83", "161.66", "156.34", "161.17", "128609220")),
            ("ZZQ.NQ", ("2019-01-03", "160.57", "161.65", "159.55", "160.65", "109762350")),
        ],
    ),
    # the ticker column (ABCW.US) wins over the file name
    (
        "abcx.us.txt",
        None,
        "COMPLETED",
        90,
        0,
        ["ABCW.US"],
        [
            ("ABCW.US", ("2022-06-01", "11.835", "11.836", "11.723", "11.76", "577400")),
            ("ABCW.US", ("2022-06-02", "11.693", "11.733", "11.257", "11.61", "634210")),
        ],
    ),
    # Polish header; fractional volumes kept exactly
    (
        "wierzba.csv",
        "WRZ",
        "COMPLETED",
        80,
        0,
        ["WRZ"],
        [
            ("WRZ", ("2020-03-02", "30.8248", "31.3094", "30.474", "31.1691", "5585.910722065")),
            ("WRZ", ("2020-04-28", "34.49", "34.79", "34.18", "34.45", "26119")),
        ],
    ),
    # <DTYYYYMMDD>, 3-decimal volumes, single-fixing bars
    (
        "MIDX30.mst",
        None,
        "COMPLETED",
        100,
        0,
        ["MIDX30"],
        [
            ("MIDX30", ("1995-05-08", "508.6", "508.6", "508.6", "508.6", "12538")),
            ("MIDX30", ("1996-01-02", "523.88", "532.42", "521.37", "531.53", "205090.233")),
        ],
    ),
    # close is Settle even where Last is filled (2010-03-17: Last 63.18, Settle 63.25);
    # 3 bars (settlement only, no open, high and low 0.0) are rejected
    (
        "CHRIS-CME_ZZ1.csv",
        "ZZ1",
        "COMPLETED",
        147,
        3,
        ["ZZ1"],
        [
            ("ZZ1", ("2009-09-01", "69.57", "70.11", "68.9", "69.81", "294339.1")),
            ("ZZ1", ("2010-03-17", "63.69", "64.22", "62.49", "63.25", "501124.4")),
        ],
    ),
    # GBK title and tab header over comma rows, footer ignored; the 39 bars with a zero or
    # negative forward-adjusted price are rejected
    (
        "SH#609999.txt",
        "609999.SS",
        "COMPLETED",
        101,
        39,
        ["609999.SS"],
        [
            ("609999.SS", ("2003-01-06", "0.83", "0.85", "0.8", "0.84", "2931525")),
            ("609999.SS", ("2003-01-07", "0.85", "0.87", "0.82", "0.84", "903949")),
        ],
    ),
]
BY_NAME = {case[0]: case for case in CASES}
COPIES = [BY_NAME[path.name] for path in sample_files(REAL) if path.name in BY_NAME]


def _check(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, path: Path, case: Case) -> None:
    """Upload the file under the case's name, deliver its event, compare the outcome."""
    name, ticker, status, loaded, rejected, tickers, spots = case
    # MetaStock's .mst is not a default extension: an admin would add it to the deployment.
    monkeypatch.setenv("ALLOWED_EXTENSIONS", ".csv,.txt,.tsv,.mst")
    batch_id, notification = uploaded(env, name, path.read_bytes(), ticker=ticker)
    assert app("process-file").post("/", **as_post(notification)).status_code == 204
    file = batch_status(batch_id)["files"][0]
    assert (file["status"], file["rowsLoaded"], file["rowsRejected"]) == (
        status,
        loaded,
        rejected,
    ), file.get("error")
    assert file["tickers"] == tickers
    for symbol, (date, *values) in spots:
        stored = {row[0]: row[:6] for row in stored_rows(env["DATABASE_URL"], symbol)}
        assert stored.get(date) == (date, *map(D, values))


# In the repository: always run.


def test_every_original_is_copied_or_imitated() -> None:
    copied = {path.name for path in sample_files(REAL)}
    imitated = set(IMITATES.values())
    assert not copied & imitated
    assert copied | imitated == set(BY_NAME)
    assert {path.name for path in sample_files(LOOKALIKE)} == set(IMITATES)
    assert [case[0] for case in LOOKALIKE_CASES] == list(IMITATES)


def test_copies_match_their_attribution() -> None:
    """Each copy is listed in the README with its size and checksum, so it is the original."""
    readme = (REAL / "README.md").read_text(encoding="utf-8")
    row = r"^\| `([^`]+)` \| (\d+) \| `([0-9a-f]{16})` \|$"
    listed = {name: (int(size), digest) for name, size, digest in re.findall(row, readme, re.M)}
    actual = {
        path.name: (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest()[:16])
        for path in sample_files(REAL)
    }
    assert listed == actual
    for name in actual:
        assert f"| `{name}` | `" in readme, f"{name} has no source row in the README"


def test_lookalikes_are_what_make_py_writes(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(LOOKALIKE / "make.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    made = {path.name: path.read_bytes() for path in sample_files(tmp_path)}
    assert made == {path.name: path.read_bytes() for path in sample_files(LOOKALIKE)}


@pytest.mark.parametrize("case", COPIES, ids=[case[0] for case in COPIES])
def test_copied_sample(
    function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, case: Case
) -> None:
    _check(function_env, monkeypatch, REAL / case[0], case)


@pytest.mark.parametrize("case", LOOKALIKE_CASES, ids=[case[0] for case in LOOKALIKE_CASES])
def test_lookalike_sample(
    function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, case: Case
) -> None:
    _check(function_env, monkeypatch, LOOKALIKE / case[0], case)


# The originals, from SAMPLES_DIR.


@pytest.mark.samples
def test_every_sample_has_a_case() -> None:
    files = {path.name for path in sample_files(originals_dir())}
    assert files == set(BY_NAME)


@pytest.mark.samples
@pytest.mark.parametrize("name", [path.name for path in sample_files(REAL)])
def test_copy_is_the_original(name: str) -> None:
    assert (REAL / name).read_bytes() == original(name).read_bytes()


@pytest.mark.samples
@pytest.mark.parametrize("name", list(IMITATES))
def test_lookalike_copies_no_row_of_its_original(name: str) -> None:
    """The format is imitated, the data is not: no data row (a line of 5 or more cells below
    the header) of the look-alike occurs in its original. Title and footer lines may."""

    def rows(data: bytes) -> set[bytes]:
        return {line for line in data.splitlines()[1:] if line.count(b",") >= 4}

    ours = rows((LOOKALIKE / name).read_bytes())
    assert ours and not ours & rows(original(IMITATES[name]).read_bytes())


@pytest.mark.samples
@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_real_sample(
    function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, case: Case
) -> None:
    _check(function_env, monkeypatch, original(case[0]), case)
