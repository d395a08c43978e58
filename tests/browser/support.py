"""What the browser tests share: files on disk, and waiting for what the page shows."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from devstack.data import ohlcv_csv

ROWS = 120
FINAL = "#summary:not([hidden])"


def write_files(folder: Path, prefix: str, count: int, rows: int = ROWS) -> list[str]:
    """`count` price files of `rows` rows, one ticker each (<prefix><n>); their tickers."""
    folder.mkdir(parents=True, exist_ok=True)
    tickers = [f"{prefix}{n:03d}" for n in range(count)]
    for ticker in tickers:
        (folder / f"{ticker}.csv").write_bytes(ohlcv_csv(ticker, rows))
    return tickers


def start(page: Any, folder: Path) -> None:
    page.set_input_files("#pick-folder", str(folder))
    page.locator("#start:not([disabled])").wait_for()
    page.click("#start")


def summary(page: Any, timeout: float = 120_000) -> str:
    try:
        page.wait_for_selector(FINAL, timeout=timeout)
    except Exception as error:  # say what the page showed instead
        shown = Counter(states(page).values())
        said = {at: page.inner_text(at) for at in ("#batch-id", "#checks")}
        raise AssertionError(
            f"no summary after {timeout / 1000:.0f} s; files: {shown}; the page says {said}"
        ) from error
    return str(page.inner_text("#summary"))


def states(page: Any) -> dict[str, str]:
    """Each table row's file name and the state the page shows for it."""
    rows = page.eval_on_selector_all(
        "#files tbody tr", "rows => rows.map(r => [r.dataset.name, r.cells[5].textContent])"
    )
    return {name: state for name, state in rows}


def cell(page: Any, name: str, column: int) -> str:
    return str(page.locator(f'#files tbody tr[data-name="{name}"] td').nth(column).inner_text())


def batch_id(page: Any) -> str:
    return str(page.inner_text("#batch-id")).removeprefix("Batch ").strip()


def wait_until(page: Any, script: str, timeout: float = 60.0) -> None:
    """Poll a JavaScript expression (evaluated over the DevTools protocol, which the page's
    Content-Security-Policy does not govern) until it is true."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(script):
        if time.monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout} s: {script}")
        page.wait_for_timeout(50)
