"""The process-file use case against the real services: one stored object in, its rows in
PostgreSQL once, whatever the key, the order, the workers or the redeliveries."""

import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg

from devstack.data import ohlcv_csv
from shared import database
from shared.clients import Clients
from shared.events import ObjectCreated
from shared.keys import new_batch_id
from shared.process import handle_uploads, process_object
from shared.settings import Settings
from tests.support.apps import put_object
from tests.support.ledger import stored_rows
from tests.support.reading import HEADER


def _file(clients: Clients, key: str) -> database.FileRecord:
    found = database.get_file(clients.pool, key)
    assert found is not None
    return found


def test_object_larger_than_the_limit_fails_without_being_read(
    environment: dict[str, str], settings: Settings
) -> None:
    # a presigned PUT cannot bound the size: the upload may be larger than declared
    key = f"uploads/{new_batch_id()}/0000_BIG.csv"
    put_object(environment, key, ohlcv_csv(None, 50))
    limited = Clients(settings.model_copy(update={"max_file_bytes": 100}))
    try:
        assert process_object(limited, key) == "failed"
        file = _file(limited, key)
    finally:
        limited.close()
    assert file.status == "FAILED" and "over the limit of 100" in (file.error or "")


def test_key_with_quotes_semicolons_and_dashes_is_just_a_key(
    clients: Clients, environment: dict[str, str]
) -> None:
    batch_id = "b_" + "7" * 26
    key = f"uploads/{batch_id}/it's; DROP TABLE tickers; --.csv"
    put_object(environment, key, ohlcv_csv("QUOTE", 3))
    assert process_object(clients, key) == "completed"
    batch = database.get_batch(clients.pool, batch_id)
    assert batch is not None and [(f.object_key, f.status) for f in batch.files] == [
        (key, "COMPLETED")
    ]
    assert len(stored_rows(environment["DATABASE_URL"], "QUOTE")) == 3


def test_overwritten_object_loads_the_new_version_and_old_events_change_nothing(
    clients: Clients, environment: dict[str, str]
) -> None:
    key = f"uploads/{new_batch_id()}/OVER.csv"
    first = put_object(environment, key, ohlcv_csv(None, 3, price="10.00"))
    first_time = datetime.now(UTC)
    assert process_object(clients, key, first.etag, first_time) == "completed"
    time.sleep(1.1)  # S3 modification times have one-second resolution
    second = put_object(environment, key, ohlcv_csv(None, 3, price="20.00"))
    assert process_object(clients, key, second.etag, datetime.now(UTC)) == "completed"
    # the stale event, redelivered, finds the current version already loaded
    assert process_object(clients, key, first.etag, first_time) == "duplicate"
    closes = [str(row[4]) for row in stored_rows(environment["DATABASE_URL"], "OVER")]
    assert closes == ["20.00", "20.01", "20.02"]
    assert _file(clients, key).rows_loaded == 3


def test_concurrent_workers_on_shared_tickers_neither_deadlock_nor_lose_updates(
    clients: Clients, environment: dict[str, str]
) -> None:
    # GIVEN six multi-ticker files sharing tickers, listed in opposite orders
    tickers = ["SHA", "SHB", "SHC", "SHD"]
    keys = []
    for n in range(6):
        order = tickers if n % 2 else tickers[::-1]
        lines = ["Date,Ticker,Open,High,Low,Close"] + [
            f"2021-03-{day:02d},{t},5,9,1,{n + 2}" for t in order for day in range(1, 29)
        ]
        key = f"uploads/b_{'8' * 26}/{n:04d}_shared.csv"
        put_object(environment, key, ("\n".join(lines) + "\n").encode())
        keys.append(key)
    errors: list[BaseException] = []

    def work(key: str) -> None:
        try:
            process_object(clients, key)
        except BaseException as error:  # noqa: BLE001 - collected for the assertion
            errors.append(error)

    # WHEN they are processed by concurrent workers
    threads = [threading.Thread(target=work, args=(k,)) for k in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # THEN all loaded, and every row holds the values of one whole file
    assert errors == []
    with psycopg.connect(environment["DATABASE_URL"]) as conn:
        closes = conn.execute(
            "SELECT t.symbol, count(*), count(DISTINCT close) FROM seasonality_data d JOIN tickers"
            " t ON t.id = d.ticker_id WHERE t.symbol LIKE 'SH_' GROUP BY 1 ORDER BY 1"
        ).fetchall()
        completed = conn.execute(
            "SELECT count(*) FROM ingest_files WHERE object_key = ANY(%s) AND status = 'COMPLETED'",
            (keys,),
        ).fetchone()
    assert closes == [(t, 28, 1) for t in tickers] and completed == (6,)


def test_file_without_any_ticker_fails(clients: Clients, environment: dict[str, str]) -> None:
    key = f"uploads/{new_batch_id()}/#prices.csv"
    put_object(environment, key, HEADER.encode() + b"2024-01-02,1,2,1,2,3\n")
    assert process_object(clients, key) == "failed"
    file = _file(clients, key)
    assert file.status == "FAILED" and (file.error or "").startswith("No ticker")


def test_the_ticker_comes_from_the_file_name_without_a_column_or_hint(
    clients: Clients, environment: dict[str, str]
) -> None:
    key = f"uploads/{new_batch_id()}/nvda-2014.txt"
    put_object(environment, key, ohlcv_csv(None, 2))
    # the ledger row is registered on the way: the object arrived without presign
    assert process_object(clients, key) == "completed"
    file = _file(clients, key)
    assert (file.file_name, file.tickers) == ("nvda-2014.txt", ["NVDA"])


def test_rejected_rows_are_stored_beside_the_upload(
    clients: Clients, environment: dict[str, str]
) -> None:
    batch_id = new_batch_id()
    key = f"uploads/{batch_id}/0000_REJ.csv"
    put_object(environment, key, (HEADER + "2024-01-02,1,2,1,2,3\n2024-01-03,5,2,1,2,3\n").encode())
    assert process_object(clients, key) == "completed"
    file = _file(clients, key)
    assert (file.rows_loaded, file.rows_rejected) == (1, 1)
    assert file.rejects_key == f"rejects/{batch_id}/0000_REJ.csv"
    stored = clients.store.get_object(environment["S3_BUCKET"], file.rejects_key)
    assert (
        stored.read().decode().splitlines()[1].startswith("3,2024-01-03,5,2,1,2,3,OUTSIDE_RANGE,")
    )


def test_an_object_gone_before_processing_fails_the_file(clients: Clients) -> None:
    key = f"uploads/{new_batch_id()}/0000_GONE.csv"
    assert process_object(clients, key) == "failed"
    assert _file(clients, key).error == "The uploaded object no longer exists."


def test_events_of_other_buckets_and_keys_are_ignored(clients: Clients) -> None:
    when = datetime.now(UTC) - timedelta(seconds=1)
    uploads = [
        ObjectCreated("another-bucket", f"uploads/{new_batch_id()}/0000_A.csv", "e", 1, when),
        ObjectCreated(clients.settings.s3_bucket, "image.jpg", "e", 1, when),
    ]
    assert handle_uploads(clients, uploads) == ["ignored", "ignored"]
