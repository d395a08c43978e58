"""The admin page over the local stack: choosing a folder, bad files, retries, resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devstack.data import ohlcv_csv
from tests.support.browsing import Browsed

from .support import ROWS, batch_id, cell, start, states, summary, write_files


def test_a_folder_of_50_files_completes_with_the_databases_rows(
    page: Any, browsed: Browsed, tmp_path: Path, prefix: str
) -> None:
    # GIVEN 50 price files in a folder
    tickers = write_files(tmp_path / "prices", prefix, 50)

    # WHEN the folder is chosen and uploaded
    start(page, tmp_path / "prices")
    text = summary(page)

    # THEN every file is COMPLETED on the page, with the rows PostgreSQL holds
    assert "Batch COMPLETED" in text
    assert "50 completed, 0 failed of 50 files" in text
    assert f"{50 * ROWS:,} rows loaded" in text
    assert set(states(page).values()) == {"COMPLETED"}
    assert browsed.rows_of(tickers) == 50 * ROWS
    status = browsed.client.status(batch_id(page))
    assert status["status"] == "COMPLETED" and status["rowsLoaded"] == 50 * ROWS
    assert cell(page, f"prices/{tickers[7]}.csv", 7) == str(ROWS)
    assert page.get_attribute("#bar", "value") == "100"


def test_a_bad_file_shows_its_error_and_its_rejects_download(
    page: Any, browsed: Browsed, tmp_path: Path, prefix: str
) -> None:
    # GIVEN a file with two bad rows, a file whose every row is bad, and one with no header
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = ohlcv_csv(f"{prefix}1", 10).decode().splitlines()
    good[3] = good[3].replace("100.25", "abc", 1)
    good[5] = good[5].replace("2020-01", "20x0-01", 1)
    (folder / "rejects.csv").write_text("\n".join(good) + "\n")
    header, *rows = ohlcv_csv(f"{prefix}2", 3).decode().splitlines()
    bad = [r.replace("100.25", "-5", 1) for r in rows]
    (folder / "allbad.csv").write_text("\n".join([header, *bad]) + "\n")
    (folder / "noheader.csv").write_text("1,2,3\n4,5,6\n")

    start(page, folder)
    text = summary(page)

    # THEN the page refused the headerless file before upload, and shows each outcome
    assert cell(page, "mixed/noheader.csv", 5) == "not uploaded"
    assert "no recognisable header" in cell(page, "mixed/noheader.csv", 9)
    assert "Batch PARTIAL" in text and "1 completed, 1 failed of 2 files" in text
    assert cell(page, "mixed/allbad.csv", 5) == "FAILED"
    assert cell(page, "mixed/allbad.csv", 9) != ""
    assert (cell(page, "mixed/rejects.csv", 7), cell(page, "mixed/rejects.csv", 8)) == ("8", "2")
    assert browsed.rows_of([f"{prefix}1", f"{prefix}2"]) == 8

    # AND the rejects CSV downloads with the two rejected rows and their reasons
    with page.expect_download() as download:
        page.click('button[aria-label="Download the rejected rows of mixed/rejects.csv"]')
    lines = Path(download.value.path()).read_text().splitlines()
    assert download.value.suggested_filename == "rejects.rejects.csv"
    assert len(lines) == 3 and "reason" in lines[0]
    assert "BAD_PRICE" in lines[1] + lines[2] and "BAD_DATE" in lines[1] + lines[2]


def test_a_failed_file_is_retried_from_the_page(
    page: Any, browsed: Browsed, tmp_path: Path, prefix: str
) -> None:
    # GIVEN two files, the upload event of the second one given up on by the broker
    tickers = write_files(tmp_path / "two", prefix, 2)
    browsed.relay.give_up.add(f"_{tickers[1]}.csv")
    start(page, tmp_path / "two")
    assert "Batch PARTIAL" in summary(page)
    assert "could not be delivered" in cell(page, f"two/{tickers[1]}.csv", 9)
    browsed.relay.give_up.clear()

    # WHEN the admin retries the failed file
    page.click("#retry")

    # THEN it loads from the stored object and the batch completes
    page.wait_for_selector('#summary[data-status="COMPLETED"]')
    assert set(states(page).values()) == {"COMPLETED"}
    assert browsed.rows_of(tickers) == 2 * ROWS
