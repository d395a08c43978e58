"""Faults and hostile input, in-process against the real services."""

import io
import threading
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from shared.clients import Clients
from shared.events import minio_notification
from shared.process import process_object
from shared.settings import Settings
from tests.conftest import free_port
from tests.functions.test_entry_points import AUTH, _raw, _status, _store, _uploaded
from tests.helpers import app, ohlcv_csv, raw_webhook


def _put(env: dict[str, str], key: str, body: bytes) -> Any:
    store = _store(env)
    store.put_object(env["S3_BUCKET"], key, io.BytesIO(body), len(body), content_type="text/csv")
    return store.stat_object(env["S3_BUCKET"], key)


def _rows(env: dict[str, str], ticker: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        return conn.execute(
            "SELECT d.date, d.close FROM seasonality_data d JOIN tickers t ON t.id = d.ticker_id"
            " WHERE t.symbol = %s ORDER BY 1",
            (ticker,),
        ).fetchall()


def test_object_larger_than_the_limit_fails_without_being_read(
    function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.clients import get_clients

    # a presigned PUT cannot bound the size: the upload may be larger than declared
    batch_id, notification = _uploaded(function_env, "BIG.csv", ohlcv_csv(None, 50))
    monkeypatch.setenv("MAX_FILE_BYTES", "100")
    get_clients.cache_clear()
    assert app("process-file").post("/", **_raw(notification)).status_code == 204
    file = _status(batch_id)["files"][0]
    assert file["status"] == "FAILED" and "over the limit of 100" in file["error"]


def test_key_with_quotes_semicolons_and_dashes_is_just_a_key(function_env: dict[str, str]) -> None:
    batch_id = "b_" + "7" * 26
    key = f"uploads/{batch_id}/it's; DROP TABLE tickers; --.csv"
    stat = _put(function_env, key, ohlcv_csv("QUOTE", 3))
    notification = minio_notification(
        function_env["S3_BUCKET"], key, stat.etag, stat.size, datetime.now(UTC)
    )
    assert app("process-file").post("/", **_raw(notification)).status_code == 204
    state = _status(batch_id)
    assert state["status"] == "COMPLETED" and state["files"][0]["objectKey"] == key
    assert len(_rows(function_env, "QUOTE")) == 3


def test_overwritten_object_loads_the_new_version_and_old_events_change_nothing(
    function_env: dict[str, str],
) -> None:
    batch_id, first = _uploaded(function_env, "OVER.csv", ohlcv_csv(None, 3, price="10.00"))
    key = first["Records"][0]["s3"]["object"]["key"]
    from urllib.parse import unquote_plus

    key = unquote_plus(key)
    process = app("process-file")
    assert process.post("/", **_raw(first)).status_code == 204
    time.sleep(1.1)  # S3 modification times have one-second resolution
    stat = _put(function_env, key, ohlcv_csv(None, 3, price="20.00"))
    second = minio_notification(
        function_env["S3_BUCKET"], key, stat.etag, stat.size, datetime.now(UTC)
    )
    assert process.post("/", **_raw(second)).status_code == 204
    assert process.post("/", **_raw(first)).status_code == 204  # stale event, redelivered
    assert [str(close) for _, close in _rows(function_env, "OVER")] == ["20.00", "20.01", "20.02"]
    assert _status(batch_id)["rowsLoaded"] == 3


def test_concurrent_workers_on_shared_tickers_neither_deadlock_nor_lose_updates(
    clients: Clients, settings: Settings
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
        _put(
            {"S3_BUCKET": settings.s3_bucket, "S3_ENDPOINT": settings.s3_endpoint},
            key,
            ("\n".join(lines) + "\n").encode(),
        )
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
    with psycopg.connect(settings.database_url) as conn:
        closes = conn.execute(
            "SELECT t.symbol, count(*), count(DISTINCT close) FROM seasonality_data d JOIN tickers"
            " t ON t.id = d.ticker_id WHERE t.symbol LIKE 'SH_' GROUP BY 1 ORDER BY 1"
        ).fetchall()
        completed = conn.execute(
            "SELECT count(*) FROM ingest_files WHERE object_key = ANY(%s) AND status = 'COMPLETED'",
            (keys,),
        ).fetchone()
    assert closes == [(t, 28, 1) for t in tickers] and completed == (6,)


def test_dead_letter_records_the_failure_on_the_file(function_env: dict[str, str]) -> None:
    batch_id, notification = _uploaded(function_env, "DLQ.csv", ohlcv_csv(None, 2))
    headers, body = raw_webhook(notification)
    answer = app("process-file").post(
        "/dead-letter", data=body, headers={**headers, "ce-knativeerrorcode": "503"}
    )
    assert answer.status_code == 204
    file = _status(batch_id)["files"][0]
    assert file["status"] == "FAILED" and "503" in file["error"]
    retried = app("status").post(f"/batch/{batch_id}/retry", headers=AUTH)
    assert retried.json["data"]["retried"] == 1


def test_minio_credentials_never_reach_error_messages(
    function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/x")
    monkeypatch.setenv("DATABASE_TIMEOUT_SECONDS", "1")
    answer = app("status").get(f"/batch/b_{'0' * 26}/status", headers=AUTH)
    assert answer.status_code == 503 and "hunter2" not in answer.get_data(as_text=True)


def test_presigned_post_option_bounds_the_size_in_its_policy(
    function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64
    import json

    import requests

    monkeypatch.setenv("UPLOAD_METHOD", "POST")
    monkeypatch.setenv("MAX_FILE_BYTES", "5000")
    response = app("presign").post("/bulk", json={"files": [{"name": "POSTED.csv"}]}, headers=AUTH)
    target = response.json["data"]["uploadUrls"][0]
    assert target["method"] == "POST" and target["headers"] == {}
    policy = json.loads(base64.b64decode(target["fields"]["policy"]))
    assert ["content-length-range", 1, 5000] in policy["conditions"]
    assert ["eq", "$key", target["objectKey"]] in policy["conditions"]
    # a browser-style form upload to the S3 endpoint
    body = ohlcv_csv(None, 3)
    answer = requests.post(
        target["uploadUrl"],
        data=target["fields"],
        files={"file": ("POSTED.csv", body, "text/csv")},
        timeout=30,
    )
    assert answer.status_code in (200, 201, 204), answer.text
    stored = _store(function_env).get_object(function_env["S3_BUCKET"], target["objectKey"])
    assert stored.read() == body


def _versions(env: dict[str, str], ticker: str) -> dict[str, tuple[str, str]]:
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        rows = conn.execute(
            "SELECT d.date::text, d.xmin::text, d.close::text FROM seasonality_data d"
            " JOIN tickers t ON t.id = d.ticker_id WHERE t.symbol = %s",
            (ticker,),
        ).fetchall()
    return {day: (xmin, close) for day, xmin, close in rows}


def test_reuploads_write_only_what_changed(function_env: dict[str, str]) -> None:
    process = app("process-file")
    # GIVEN a loaded history
    _, first = _uploaded(function_env, "DELTA.csv", ohlcv_csv(None, 20))
    process.post("/", **_raw(first))
    before = _versions(function_env, "DELTA")
    # WHEN the identical file comes again in a new batch: nothing is rewritten
    again_batch, again = _uploaded(function_env, "DELTA.csv", ohlcv_csv(None, 20))
    process.post("/", **_raw(again))
    assert _versions(function_env, "DELTA") == before
    assert _status(again_batch)["rowsLoaded"] == 20
    # WHEN tomorrow's file has one more day: only that row is written
    _, delta = _uploaded(function_env, "DELTA.csv", ohlcv_csv(None, 21))
    process.post("/", **_raw(delta))
    after = _versions(function_env, "DELTA")
    assert len(after) == 21 and {k: after[k] for k in before} == before
    # WHEN a newer upload corrects a value: that row changes, the rest stays
    corrected = ohlcv_csv(None, 21).replace(b",100.27,1002", b",100.99,1002")
    _, fix = _uploaded(function_env, "DELTA.csv", corrected)
    process.post("/", **_raw(fix))
    final = _versions(function_env, "DELTA")
    changed = {day for day in final if final[day] != after[day]}
    assert changed == {"2020-01-03"} and final["2020-01-03"][1] == "100.99"
