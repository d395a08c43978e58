"""The admin page's plausibility warnings, sparklines and "Undo this batch" over the local stack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devstack.data import ohlcv_csv
from tests.support.browsing import Browsed

from .support import ROWS, batch_id, cell, start, states, summary, write_files

WARNINGS, SERIES = 10, 11  # the table's columns
JUMP = 60  # the first row (0-based) the vendor wrote in cents


def unit_switch_csv(ticker: str) -> bytes:
    """ROWS daily rows whose prices are written ×100 from row JUMP on (rand to cents)."""
    header, *rows = ohlcv_csv(ticker, ROWS).decode().splitlines()
    switched = []
    for n, row in enumerate(rows):
        cells = row.split(",")
        if n >= JUMP:
            cells[2:6] = [f"{float(v) * 100:.2f}" for v in cells[2:6]]
        switched.append(",".join(cells))
    return ("\n".join([header, *switched]) + "\n").encode()


def test_a_unit_switch_is_shown_and_the_batch_undone_through_the_dialog(
    page: Any, browsed: Browsed, tmp_path: Path, prefix: str
) -> None:
    # GIVEN two clean files and one whose closes jump ×100 mid-file
    folder = tmp_path / "units"
    tickers = write_files(folder, prefix, 2)
    jumped = f"{prefix}X"
    (folder / f"{jumped}.csv").write_bytes(unit_switch_csv(jumped))
    tickers.append(jumped)

    # WHEN the folder is uploaded
    start(page, folder)
    text = summary(page)

    # THEN the batch loads every row, and the summary gives the batch's warning total
    status = browsed.client.status(batch_id(page))
    assert "Batch COMPLETED" in text and status["status"] == "COMPLETED"
    assert browsed.rows_of(tickers) == 3 * ROWS
    total = status["warnings"]
    assert total >= 1
    assert f"{total} warning" in text

    # AND the switched file's row names UNIT_SWITCH, the clean files' rows name nothing
    name = f"units/{jumped}.csv"
    assert "UNIT_SWITCH" in cell(page, name, WARNINGS)
    assert cell(page, f"units/{tickers[0]}.csv", WARNINGS) == ""

    # AND its sparkline marks the week of the jump, with a text alternative naming the warning
    entry = next(f for f in status["files"] if f["fileName"].endswith(f"{jumped}.csv"))
    series = entry["series"]
    first_cents = next(i for i, close in enumerate(series["close"]) if close > 1000)
    assert first_cents in series["flagged"]
    spark = page.locator(f'#files tbody tr[data-name="{name}"] td').nth(SERIES).locator("svg")
    assert spark.locator("circle.flag").count() == len(series["flagged"]) >= 1
    assert spark.locator("polyline").count() == 1
    label = str(spark.get_attribute("aria-label"))
    assert "UNIT_SWITCH" in label and jumped in label
    clean = page.locator(f'#files tbody tr[data-name="units/{tickers[0]}.csv"] svg.spark')
    assert clean.locator("circle.flag").count() == 0
    assert "no warnings" in str(clean.get_attribute("aria-label"))

    # AND the warnings CSV link downloads the flagged row with its line
    with page.expect_download() as download:
        page.click(f'a[aria-label="Download the warnings of {name}"]')
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0].startswith("line,ticker,date,code")
    assert any(line.startswith(f"{JUMP + 2},{jumped},") and "UNIT_SWITCH" in line for line in lines)

    # WHEN the admin opens the undo dialog and leaves it with Escape
    page.click("#undo")
    dialog = page.locator("#undo-dialog")
    dialog.wait_for(state="visible")
    said = str(dialog.inner_text())
    assert "3 files loaded" in said and f"{3 * ROWS:,} rows of 3 tickers" in said
    assert "left as they are" in said
    assert page.evaluate("document.activeElement.id") == "undo-keep"
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")

    # THEN nothing changed
    assert browsed.rows_of(tickers) == 3 * ROWS

    # WHEN it is opened again and confirmed with the keyboard
    page.click("#undo")
    dialog.wait_for(state="visible")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.id") == "undo-confirm"
    page.keyboard.press("Enter")

    # THEN the page shows the batch REVERTED with what the revert did
    page.wait_for_selector('#summary[data-status="REVERTED"]')
    page.wait_for_selector("#undone:has-text('removed')")
    undone = str(page.inner_text("#undone"))
    assert f"0 rows restored to their earlier values, {3 * ROWS:,} removed, 0 left" in undone
    assert "Batch REVERTED" in str(page.inner_text("#summary"))
    assert set(states(page).values()) == {"REVERTED"}
    assert page.locator("#undo").is_hidden()

    # AND PostgreSQL no longer holds the batch's rows, and status says REVERTED
    assert browsed.rows_of(tickers) == 0
    after = browsed.client.status(batch_id(page))
    assert after["status"] == "REVERTED"
    assert after["revert"]["removed"] == 3 * ROWS
