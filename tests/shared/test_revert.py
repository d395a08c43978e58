"""Undo a batch (real PostgreSQL, Redis and S3): history only for changed values, lineage,
revert of inserted, changed and partly re-changed rows (the table afterwards is exactly the
one expected), exactly once, and alongside a load of the same tickers."""

import hashlib
import json
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from devstack.data import ohlcv_csv
from shared.clients import Clients
from shared.errors import ConflictError, NotFoundError, RequestError
from shared.keys import new_batch_id
from shared.process import process_object
from shared.reconcile import reconcile
from shared.status import batch_status, lineage, revert_batch
from tests.support.apps import put_object
from tests.support.ledger import stored_rows

pytestmark = pytest.mark.services
BASE = datetime.now(UTC) - timedelta(hours=2)


def _load(clients: Clients, env: dict[str, str], body: bytes, minutes: int, name: str) -> str:
    """A one-file batch of `body`, uploaded BASE + minutes; its batch id."""
    batch_id = new_batch_id()
    key = f"uploads/{batch_id}/0000_{name}.csv"
    put_object(env, key, body)
    etag = (clients.store.stat_object(env["S3_BUCKET"], key).etag or "").strip('"')
    assert process_object(clients, key, etag, BASE + timedelta(minutes=minutes)) == "completed"
    return batch_id


def _md5(env: dict[str, str], *tickers: str) -> str:
    """md5 over every stored row of the tickers."""
    rows = [(t, *row) for t in sorted(tickers) for row in stored_rows(env["DATABASE_URL"], t)]
    return hashlib.md5(repr(rows).encode()).hexdigest()


def _history(env: dict[str, str], batch_id: str) -> int:
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT count(*) FROM ingest_history h JOIN ingest_loads l ON l.id = h.load_id"
            " WHERE l.batch_id = %s",
            (batch_id,),
        ).fetchone()
    return int(row[0]) if row else 0


def _expected(*parts: tuple[bytes, int, int]) -> list[tuple[Any, ...]]:
    """The rows of each (file, first row, rows) part, as stored_rows reads them back."""
    rows: list[tuple[Any, ...]] = []
    for body, first, count in parts:
        lines = body.decode().splitlines()[1:][first : first + count]
        for line in lines:
            day, _, *cells = line.split(",")
            rows.append((day, *(Decimal(c) for c in cells)))
    return sorted(rows)


def test_revert_removes_the_rows_a_batch_inserted(
    tolerant: Clients, environment: dict[str, str]
) -> None:
    before = _md5(environment, "RVINS")
    batch = _load(tolerant, environment, ohlcv_csv("RVINS", 5), 1, "RVINS")
    answer = revert_batch(tolerant, batch)
    assert (answer["restored"], answer["removed"], answer["left"]) == (0, 5, 0)
    assert answer["conflicts"] == [] and not answer["alreadyReverted"]
    assert _md5(environment, "RVINS") == before
    status = batch_status(tolerant, batch)
    assert b'"status":"REVERTED"' in status and b'"removed":5' in status


def test_revert_restores_changed_rows_and_history_is_kept_only_for_changes(
    tolerant: Clients, environment: dict[str, str]
) -> None:
    first = ohlcv_csv("RVCHG", 5)
    a = _load(tolerant, environment, first, 1, "RVCHG")
    before = _md5(environment, "RVCHG")
    # an identical re-ingest (other bytes, the same values) keeps no history
    same = _load(tolerant, environment, first.replace(b"\n", b"\r\n"), 2, "RVCHG")
    assert _history(environment, same) == 0
    # a daily delta that changes one row and adds one keeps one history row
    delta = ohlcv_csv("RVCHG", 6).replace(b"2020-01-03,RVCHG,100.25", b"2020-01-03,RVCHG,100.30")
    d = _load(tolerant, environment, delta, 3, "RVCHG")
    assert _history(environment, d) == 1
    # a batch changing every row and adding two
    b = _load(tolerant, environment, ohlcv_csv("RVCHG", 8, price="300.25"), 4, "RVCHG")
    assert _history(environment, b) == 6
    found = lineage(tolerant, {"ticker": "rvchg", "date": "2020-01-03"})
    assert found["row"]["batchId"] == b and found["row"]["close"] == "300.27"
    assert [(r["batchId"], r["close"], r["replacedByBatchId"]) for r in found["replaced"]] == [
        (d, "100.27", b),
        (a, "100.27", d),
    ]
    answer = revert_batch(tolerant, b)
    assert (answer["restored"], answer["removed"], answer["left"]) == (6, 2, 0)
    assert revert_batch(tolerant, d)["restored"] == 1
    assert revert_batch(tolerant, d)["alreadyReverted"]  # twice: nothing more
    assert _md5(environment, "RVCHG") == before
    assert stored_rows(environment["DATABASE_URL"], "RVCHG") == _expected((first, 0, 5))


def test_rows_a_later_batch_changed_are_left_and_reported(
    tolerant: Clients, environment: dict[str, str]
) -> None:
    first = ohlcv_csv("RVLATE", 5)
    later = ohlcv_csv("RVLATE", 2, start=3, price="500.25")
    _load(tolerant, environment, first, 1, "RVLATE")
    b = _load(tolerant, environment, ohlcv_csv("RVLATE", 5, price="300.25"), 2, "RVLATE")
    _load(tolerant, environment, later, 3, "RVLATE")
    answer = revert_batch(tolerant, b)
    assert (answer["restored"], answer["removed"], answer["left"]) == (3, 0, 2)
    assert answer["conflicts"] == [
        {"ticker": "RVLATE", "ranges": [{"from": "2020-01-04", "to": "2020-01-05", "rows": 2}]}
    ]
    expected = _expected((first, 0, 3), (later, 0, 2))
    assert stored_rows(environment["DATABASE_URL"], "RVLATE") == expected


def test_two_reverts_at_once_revert_once(tolerant: Clients, environment: dict[str, str]) -> None:
    first = ohlcv_csv("RVTWO", 5)
    _load(tolerant, environment, first, 1, "RVTWO")
    b = _load(tolerant, environment, ohlcv_csv("RVTWO", 7, price="300.25"), 2, "RVTWO")
    answers: list[dict[str, Any]] = []
    barrier = threading.Barrier(2)

    def revert() -> None:
        barrier.wait()
        answers.append(revert_batch(tolerant, b))

    threads = [threading.Thread(target=revert) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a["alreadyReverted"] for a in answers) == [False, True]
    assert {(a["restored"], a["removed"]) for a in answers} == {(5, 2)}
    assert stored_rows(environment["DATABASE_URL"], "RVTWO") == _expected((first, 0, 5))


def test_revert_during_a_load_of_the_same_tickers(
    tolerant: Clients, environment: dict[str, str]
) -> None:
    # whichever goes first, the later upload's rows stand and every other row is restored
    first = ohlcv_csv("RVRACE", 6)
    later = ohlcv_csv("RVRACE", 3, start=3, price="700.25")
    _load(tolerant, environment, first, 1, "RVRACE")
    b = _load(tolerant, environment, ohlcv_csv("RVRACE", 6, price="300.25"), 2, "RVRACE")
    key = f"uploads/{new_batch_id()}/0000_RVRACE.csv"
    put_object(environment, key, later)
    etag = (tolerant.store.stat_object(environment["S3_BUCKET"], key).etag or "").strip('"')
    barrier = threading.Barrier(2)
    answers: list[dict[str, Any]] = []

    def load() -> None:
        barrier.wait()
        process_object(tolerant, key, etag, BASE + timedelta(minutes=3))

    def revert() -> None:
        barrier.wait()
        answers.append(revert_batch(tolerant, b))

    threads = [threading.Thread(target=load), threading.Thread(target=revert)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (answer,) = answers
    assert answer["restored"] + answer["left"] == 6 and answer["removed"] == 0
    expected = _expected((first, 0, 3), (later, 0, 3))
    assert stored_rows(environment["DATABASE_URL"], "RVRACE") == expected


def test_a_reverted_batch_takes_no_new_version(
    tolerant: Clients, environment: dict[str, str]
) -> None:
    batch = _load(tolerant, environment, ohlcv_csv("RVNEW", 3), 1, "RVNEW")
    revert_batch(tolerant, batch)
    key = f"uploads/{batch}/0000_RVNEW.csv"
    put_object(environment, key, ohlcv_csv("RVNEW", 4))
    etag = (tolerant.store.stat_object(environment["S3_BUCKET"], key).etag or "").strip('"')
    assert process_object(tolerant, key, etag, BASE + timedelta(minutes=2)) == "duplicate"
    assert stored_rows(environment["DATABASE_URL"], "RVNEW") == []


def test_history_past_the_retention_is_pruned_and_its_batch_refuses(
    tolerant: Clients, environment: dict[str, str]
) -> None:
    _load(tolerant, environment, ohlcv_csv("RVOLD", 3), 1, "RVOLD")
    b = _load(tolerant, environment, ohlcv_csv("RVOLD", 3, price="300.25"), 2, "RVOLD")
    with psycopg.connect(environment["DATABASE_URL"]) as conn:
        conn.execute(
            "UPDATE ingest_loads SET loaded_at = now() - interval '91 days' WHERE batch_id = %s",
            (b,),
        )
        conn.execute(
            "UPDATE ingest_history h SET recorded_at = now() - interval '91 days'"
            " FROM ingest_loads l WHERE l.id = h.load_id AND l.batch_id = %s",
            (b,),
        )
    with pytest.raises(ConflictError) as refused:
        revert_batch(tolerant, b)
    assert refused.value.code == "REVERT_EXPIRED" and "90 days" in str(refused.value)
    assert reconcile(tolerant).history_pruned >= 3
    assert _history(environment, b) == 0


def test_lineage_of_a_row_never_stored(tolerant: Clients) -> None:
    with pytest.raises(NotFoundError):
        lineage(tolerant, {"ticker": "RVNONE", "date": date(2020, 1, 1).isoformat()})
    with pytest.raises(RequestError):
        lineage(tolerant, {"ticker": "RVNONE", "date": "yesterday"})


def test_the_100x_file_shows_its_warning_in_status(
    tolerant: Clients, environment: dict[str, str]
) -> None:
    from tests.support.samples import REAL

    body = (REAL / "SSW-JO-1d-100x-error.csv").read_bytes()
    batch = _load(tolerant, environment, body, 1, "RVSSW")
    (entry,) = json.loads(batch_status(tolerant, batch))["files"]
    assert (entry["warnings"], entry["warningCounts"]) == (1, {"UNIT_SWITCH": 1})
    assert entry["warningsUrl"] and entry["series"]["flagged"]
    strict = Clients(tolerant.settings.model_copy(update={"plausibility_mode": "reject"}))
    try:
        again = _load(strict, environment, body + b"\n", 2, "RVSSWR")
        (entry,) = json.loads(batch_status(strict, again))["files"]
    finally:
        strict.close()
    assert (entry["rowsLoaded"], entry["rowsRejected"], entry["warnings"]) == (24, 5, 0)
