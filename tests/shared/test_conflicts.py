"""CONFLICT: two files of one batch holding a ticker and date with different values. The file
processed second finds it, in either order, names the other file and which one won (the later
upload); equal values, and files of different batches, raise nothing."""

import csv
import io
import json
import secrets
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from devstack.data import ohlcv_csv
from shared import keys
from shared.clients import Clients
from shared.keys import new_batch_id
from shared.process import process_object
from shared.status import batch_status
from tests.support.apps import put_object
from tests.support.ledger import stored_rows

pytestmark = pytest.mark.services
BASE = datetime.now(UTC) - timedelta(hours=2)


def _ticker() -> str:
    return "CF" + secrets.token_hex(3).upper()


def _put(env: dict[str, str], batch_id: str, position: int, name: str, body: bytes) -> str:
    key = f"uploads/{batch_id}/{position:04d}_{name}.csv"
    put_object(env, key, body)
    return key


def _process(clients: Clients, env: dict[str, str], key: str, minutes: int) -> None:
    """Process the object as uploaded BASE + minutes."""
    etag = (clients.store.stat_object(env["S3_BUCKET"], key).etag or "").strip('"')
    assert process_object(clients, key, etag, BASE + timedelta(minutes=minutes)) == "completed"


def _entries(clients: Clients, batch_id: str) -> dict[str, dict[str, Any]]:
    """The batch's file entries in status, by object key."""
    files = json.loads(batch_status(clients, batch_id))["files"]
    return {entry["objectKey"]: entry for entry in files}


def _warnings(clients: Clients, env: dict[str, str], key: str) -> list[dict[str, str]]:
    """The rows of the file's warnings CSV ([] when it has none)."""
    try:
        found = clients.store.get_object(env["S3_BUCKET"], keys.warnings_key(key))
    except Exception:  # no such object
        return []
    try:
        text = found.read().decode()
    finally:
        found.close()
        found.release_conn()
    return list(csv.DictReader(io.StringIO(text)))


def _conflicts(clients: Clients, env: dict[str, str], key: str) -> list[tuple[int, str, str]]:
    return [
        (int(row["line"]), row["date"], row["message"])
        for row in _warnings(clients, env, key)
        if row["code"] == "CONFLICT"
    ]


@pytest.mark.parametrize("earlier_first", [True, False])
def test_the_file_processed_second_reports_the_conflict_and_the_winner(
    tolerant: Clients, environment: dict[str, str], earlier_first: bool
) -> None:
    ticker = _ticker()
    batch_id = new_batch_id()
    # days 0-4 and days 3-7: days 3 and 4 (2020-01-04, 2020-01-05) with other values
    earlier = _put(environment, batch_id, 0, f"{ticker}_a", ohlcv_csv(ticker, 5))
    later = _put(environment, batch_id, 1, f"{ticker}_b", ohlcv_csv(ticker, 5, 3, "100.75"))
    order = [(earlier, 1), (later, 2)] if earlier_first else [(later, 2), (earlier, 1)]
    for key, minutes in order:
        _process(tolerant, environment, key, minutes)
    first, second = order[0][0], order[1][0]
    entries = _entries(tolerant, batch_id)
    assert entries[first]["warningCounts"] == {} and entries[first]["warnings"] == 0
    assert _conflicts(tolerant, environment, first) == []
    assert entries[second]["warningCounts"] == {"CONFLICT": 2}
    assert entries[second]["warnings"] == 2 and entries[second]["warningsUrl"]
    other = first.rsplit("/", 1)[-1]
    if earlier_first:  # the later upload was processed second: its own value won
        lines, winner = [2, 3], "the later upload won: this file"
    else:  # the earlier upload was processed second: the other file's value won
        lines, winner = [5, 6], f"the later upload won: {other} ({first})"
    found = _conflicts(tolerant, environment, second)
    assert [(line, day) for line, day, _ in found] == list(
        zip(lines, ["2020-01-04", "2020-01-05"], strict=True)
    )
    for _, _, message in found:
        assert f": {other} ({first});" in message and message.endswith(winner)
    (row, _) = [r for r in _warnings(tolerant, environment, second) if r["code"] == "CONFLICT"]
    mine, theirs = ("100.78", "100.28") if earlier_first else ("100.28", "100.78")
    assert (row["close"], row["ref_close"], row["ref_date"]) == (mine, theirs, "2020-01-04")
    # whatever the order, the later upload's values are stored
    stored = {
        day: close for day, _, _, _, close, *_ in stored_rows(environment["DATABASE_URL"], ticker)
    }
    assert (stored["2020-01-04"], stored["2020-01-05"]) == (Decimal("100.78"), Decimal("100.79"))
    assert stored["2020-01-03"] == Decimal("100.27")


@pytest.mark.parametrize("later_first", [True, False])
def test_equal_values_in_two_files_of_a_batch_are_no_conflict(
    tolerant: Clients, environment: dict[str, str], later_first: bool
) -> None:
    ticker = _ticker()
    batch_id = new_batch_id()
    body = ohlcv_csv(ticker, 5)
    one = _put(environment, batch_id, 0, f"{ticker}_a", body)
    # the same values in other bytes, and a day more
    two = _put(
        environment, batch_id, 1, f"{ticker}_b", ohlcv_csv(ticker, 6).replace(b"\n", b"\r\n")
    )
    order = [(two, 2), (one, 1)] if later_first else [(one, 1), (two, 2)]
    for key, minutes in order:
        _process(tolerant, environment, key, minutes)
    for key, entry in _entries(tolerant, batch_id).items():
        assert entry["warningCounts"] == {}, key
        assert _conflicts(tolerant, environment, key) == []


def test_files_of_different_batches_are_no_conflict(
    tolerant: Clients, environment: dict[str, str]
) -> None:
    ticker = _ticker()
    one, two = new_batch_id(), new_batch_id()
    first = _put(environment, one, 0, ticker, ohlcv_csv(ticker, 5))
    second = _put(environment, two, 0, ticker, ohlcv_csv(ticker, 5, 3, "100.75"))
    _process(tolerant, environment, first, 1)
    _process(tolerant, environment, second, 2)
    assert _entries(tolerant, one)[first]["warningCounts"] == {}
    assert _entries(tolerant, two)[second]["warningCounts"] == {}
    assert _conflicts(tolerant, environment, second) == []


@pytest.mark.parametrize("same_bytes", [True, False])
@pytest.mark.parametrize("stale_first", [True, False])
def test_a_file_equal_to_the_stored_rows_conflicts_with_a_revised_one(
    tolerant: Clients, environment: dict[str, str], same_bytes: bool, stale_first: bool
) -> None:
    """A batch holding a stale file (the values an earlier batch stored, so it rewrites
    nothing; with the same bytes it is completed without being read) and a revised one."""
    ticker = _ticker()
    body = ohlcv_csv(ticker, 5)
    _process(tolerant, environment, _put(environment, new_batch_id(), 0, ticker, body), 1)
    batch_id = new_batch_id()
    stale_body = body if same_bytes else body.replace(b"\n", b"\r\n")
    stale = _put(environment, batch_id, 0, f"{ticker}_old", stale_body)
    revised = _put(environment, batch_id, 1, f"{ticker}_new", ohlcv_csv(ticker, 2, 3, "100.75"))
    order = [(stale, 2), (revised, 3)] if stale_first else [(revised, 3), (stale, 2)]
    for key, minutes in order:
        _process(tolerant, environment, key, minutes)
    first, second = order[0][0], order[1][0]
    entries = _entries(tolerant, batch_id)
    assert entries[first]["warningCounts"] == {}
    assert entries[second]["warningCounts"] == {"CONFLICT": 2}
    found = _conflicts(tolerant, environment, second)
    assert [day for _, day, _ in found] == ["2020-01-04", "2020-01-05"]
    winner = "this file" if stale_first else f"{revised.rsplit('/', 1)[-1]} ({revised})"
    assert all(message.endswith(f"the later upload won: {winner}") for *_, message in found)
    stored = {
        day: close for day, _, _, _, close, *_ in stored_rows(environment["DATABASE_URL"], ticker)
    }
    assert stored["2020-01-04"] == Decimal("100.78")
