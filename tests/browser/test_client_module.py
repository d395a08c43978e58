"""upload-client.js alone, imported by a plain page (web/example.html), against the stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.browsing import Browsed

from .support import ROWS, write_files


def test_the_client_module_uploads_and_reports_every_step(
    page: Any, browsed: Browsed, tmp_path: Path, prefix: str
) -> None:
    # GIVEN a plain page that imports the module and logs its events
    tickers = write_files(tmp_path / "plain", prefix, 5)
    page.goto(browsed.served.page + "example.html")
    page.fill("#token", browsed.client.token)

    # WHEN it is handed 5 files
    page.set_input_files("#files", [str(p) for p in sorted((tmp_path / "plain").iterdir())])
    page.wait_for_selector("#state[data-done]")

    # THEN it created a batch, uploaded each file, handed them over and reported them loaded
    events = [line.split(" ", 1) for line in page.inner_text("#log").splitlines()]
    names = [name for name, _ in events]
    assert names[0] == "batch-created" and names[-1] == "done"
    assert names.count("file-uploaded") == 5 and "uploads-finished" in names
    done = json.loads(events[-1][1])
    assert done["status"] == "COMPLETED" and done["completed"] == 5
    assert done["rowsLoaded"] == 5 * ROWS == browsed.rows_of(tickers)
