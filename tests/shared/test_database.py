"""The ledger and the set-based load, against a real PostgreSQL; the files loaded are read
by the reader from local paths."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from devstack.data import ohlcv_csv
from devstack.processes import free_port
from shared import database
from shared.clients import Clients
from shared.errors import NotFoundError, RequestError, TransientError
from shared.keys import batch_of, new_batch_id
from shared.models import FileRecord, NewFile
from shared.settings import Settings
from tests.support.ledger import row_versions, stored_rows
from tests.support.reading import HEADER, LocalReader, Read

NOW = datetime.now(UTC)
LATER = NOW + timedelta(hours=1)


def _record(clients: Clients, name: str, batch_id: str | None = None) -> FileRecord:
    batch = batch_id or new_batch_id()
    found = database.ensure_file(
        clients.pool, f"uploads/{batch}/{name}", batch, name, LATER, 100, 10**6
    )
    assert found is not None
    return found


def _load(
    clients: Clients,
    local: LocalReader,
    record: FileRecord,
    body: bytes,
    etag: str,
    uploaded_at: datetime,
    ticker: str | None = None,
) -> tuple[bool, Read]:
    read = local.read(
        body, ticker, uploaded_at, lambda symbols: database.ticker_ids(clients.pool, symbols)
    )
    return database.load_file(clients.pool, record, etag, uploaded_at, read.parsed, None), read


def test_prices_are_stored_exactly_as_written(
    clients: Clients, local: LocalReader, settings: Settings
) -> None:
    body = (
        HEADER
        + "2024-01-02,0.00001234,0.00001300,0.00001200,0.00001250,1.5\n"
        + '2024-01-03,"1,234.5",$1300.25,1.2e3,1250,350K\n'
    ).encode()
    loaded, read = _load(clients, local, _record(clients, "EXACT.csv"), body, "e1", NOW, "EXACT")
    stored = stored_rows(settings.database_url, "EXACT")
    assert loaded and len(stored) == 2 and stored == read.rows
    # numeric, not floating point: every written digit, trailing zeros included
    assert " ".join(str(v) for v in stored[0][1:5]) == "0.00001234 0.00001300 0.00001200 0.00001250"


@pytest.mark.parametrize("order", ["older first", "newer first"])
def test_across_files_the_later_upload_wins_in_either_processing_order(
    clients: Clients, local: LocalReader, settings: Settings, order: str
) -> None:
    ticker = "LATE" + ("A" if order == "older first" else "B")
    batch = new_batch_id()
    now = datetime.now(UTC)
    older = (_record(clients, f"{ticker}.csv", batch), "2", now)
    newer = (_record(clients, f"{ticker} (1).csv", batch), "5", now + timedelta(seconds=1))
    loads = [older, newer] if order == "older first" else [newer, older]
    for again in (False, True):  # and again: the same versions change nothing
        for record, close, uploaded_at in loads:
            body = (HEADER + f"2024-02-01,1,9,1,{close},3\n").encode()
            loaded, _ = _load(clients, local, record, body, f"etag-{close}", uploaded_at, ticker)
            assert loaded is not again
    assert [r[4] for r in stored_rows(settings.database_url, ticker)] == [Decimal("5")]
    found = database.get_batch(clients.pool, batch)
    assert found is not None and [(f.status, f.rows_loaded) for f in found.files] == [
        ("COMPLETED", 1),
        ("COMPLETED", 1),
    ]


def test_reuploads_write_only_what_changed(
    clients: Clients, local: LocalReader, settings: Settings
) -> None:
    def upload(body: bytes) -> None:
        record = _record(clients, "DELTA.csv")
        assert _load(clients, local, record, body, "e", datetime.now(UTC), "DELTA")[0]

    # GIVEN a loaded history
    upload(ohlcv_csv(None, 20))
    before = row_versions(settings.database_url, "DELTA")
    # WHEN the identical file comes again in a new batch: nothing is rewritten
    upload(ohlcv_csv(None, 20))
    assert row_versions(settings.database_url, "DELTA") == before
    # WHEN tomorrow's file has one more day: only that row is written
    upload(ohlcv_csv(None, 21))
    after = row_versions(settings.database_url, "DELTA")
    assert len(after) == 21 and {k: after[k] for k in before} == before
    # WHEN a newer upload corrects a value: that row changes, the rest stays
    upload(ohlcv_csv(None, 21).replace(b",100.27,1002", b",100.99,1002"))
    final = row_versions(settings.database_url, "DELTA")
    changed = {day for day in final if final[day] != after[day]}
    assert changed == {"2020-01-03"} and final["2020-01-03"][1] == "100.99"


def test_a_failed_file_is_recorded_once_per_version(clients: Clients) -> None:
    record = _record(clients, "BAD.csv")
    assert database.fail_file(clients.pool, record, "e1", "The file is empty.")
    assert not database.fail_file(clients.pool, record, "e1", "again")
    stored = database.get_file(clients.pool, record.object_key)
    assert stored is not None and (stored.status, stored.error) == ("FAILED", "The file is empty.")
    # a new version of the object may fail (or load) again
    assert database.fail_file(clients.pool, record, "e2", "other cause")


def test_migrations_can_run_again(settings: Settings) -> None:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        database.migrate(conn, "public")
        database.migrate(conn, "other_schema")
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'other_schema'"
        ).fetchone()
    assert tables is not None and tables[0] >= 4


def _add(clients: Clients, batch_id: str, new: bool, *names: str) -> list[FileRecord]:
    """Add files to a batch of at most three."""

    def make(position: int, name: str) -> NewFile:
        return NewFile(f"uploads/{batch_id}/{position:04d}_{name}", name, "text/csv", None, None)

    added = database.add_files(
        clients.pool,
        batch_id=batch_id,
        new_batch=new,
        owner=None,
        expires_at=LATER,
        max_files=3,
        new_file=make,
        specs=names,
    )
    return added.files


def test_files_are_added_in_positions_and_a_full_batch_creates_nothing(clients: Clients) -> None:
    batch_id = new_batch_id()
    added = _add(clients, batch_id, True, "A.csv") + _add(
        clients, batch_id, False, "B.csv", "C.csv"
    )
    assert [f.position for f in added] == [0, 1, 2]
    with pytest.raises(RequestError, match="at most 3"):
        _add(clients, batch_id, False, "D.csv")
    with pytest.raises(NotFoundError):
        _add(clients, new_batch_id(), False, "E.csv")
    batch = database.get_batch(clients.pool, batch_id)
    assert batch is not None and [f.file_name for f in batch.files] == ["A.csv", "B.csv", "C.csv"]


def test_ticker_ids_are_created_once(clients: Clients) -> None:
    first = database.ticker_ids(clients.pool, ["IDB", "IDA"])
    again = database.ticker_ids(clients.pool, ["IDA", "IDC"])
    assert again["IDA"] == first["IDA"] and len({*first.values(), *again.values()}) == 3


def test_unfinished_files_are_listed_and_failed_ones_reset(clients: Clients) -> None:
    batch_id = new_batch_id()
    waiting = _record(clients, "WAIT.csv", batch_id)
    failed = _record(clients, "FAIL.csv", batch_id)
    database.fail_file(clients.pool, failed, "e", "cause")
    unfinished = [
        (record.object_key, expires)
        for record, expires in database.unfinished_files(clients.pool)
        if batch_of(record.object_key) == batch_id
    ]
    assert unfinished == [(waiting.object_key, LATER)]
    assert database.count_waiting(clients.pool) >= 1
    [reset] = database.reset_failed(clients.pool, batch_id)
    assert (reset.object_key, reset.status, reset.error) == (failed.object_key, "PENDING", None)


def test_an_unreachable_database_is_transient(settings: Settings) -> None:
    unreachable = settings.model_copy(
        update={
            "database_url": f"postgresql://postgres@127.0.0.1:{free_port()}/x",
            "database_timeout_seconds": 1,
        }
    )
    pool = database.connect_pool(unreachable, "work")
    try:
        with pytest.raises(TransientError, match="PostgreSQL unavailable"):
            database.get_file(pool, "uploads/x/y.csv")
    finally:
        pool.close()
