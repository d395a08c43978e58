"""The process-file function in-process (create_app test client), wired to the real services;
with the whole flow (presign, PUT, notification, process-file, status, SQL) kept for a few
files."""

import json
from decimal import Decimal

import psycopg
import pytest
import requests
from prometheus_client import REGISTRY

from devstack.client import FORMS, minio_webhook, notification, upload
from devstack.data import multi_ticker_csv, ohlcv_csv
from devstack.processes import free_port
from devstack.services import object_store
from shared.clients import get_clients
from tests.support.apps import app, batch_status, load, presign, uploaded
from tests.support.env import AUTH, EVENTS
from tests.support.ledger import stored_rows
from tests.support.notifications import as_post
from tests.support.observing import assert_serves_health_and_metrics


def test_presign_upload_notify_status(function_env: dict[str, str]) -> None:
    presign_app, process, status = app("presign"), app("process-file"), app("status")
    data = presign(presign_app, [{"name": "AAPL.csv", "size": 10}])
    target = data["uploadUrls"][0]
    upload(target, ohlcv_csv("AAPL", 10))
    stat = object_store(function_env).stat_object(function_env["S3_BUCKET"], target["objectKey"])
    headers, body = minio_webhook(
        notification(
            function_env["S3_BUCKET"], target["objectKey"], stat.etag or "", stat.size or 0
        )
    )
    answer = process.post("/", data=body, headers=headers)
    assert answer.status_code == 204, answer.data
    state = status.get(f"/batch/{data['batchId']}/status", headers=AUTH).json["data"]
    assert state["status"] == "COMPLETED", state["files"]
    assert state["rowsLoaded"] == 10
    with psycopg.connect(function_env["DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT open, close FROM seasonality_data d JOIN tickers t ON t.id = d.ticker_id"
            " WHERE t.symbol = 'AAPL' AND date = '2020-01-02'"
        ).fetchone()
    assert row == (Decimal("100.25"), Decimal("100.26"))


@pytest.mark.parametrize("form", FORMS)
def test_each_notification_form_loads_the_file_once(
    function_env: dict[str, str], form: str
) -> None:
    batch_id, event = uploaded(function_env, "IBM.csv", ohlcv_csv(None, 7))
    headers, body = FORMS[form](event)
    process = app("process-file")
    for _ in range(3):
        answer = process.post("/", headers=headers, data=body)
        assert answer.status_code == 204 and answer.data == b""
    state = batch_status(batch_id)
    assert (state["status"], state["processed"], state["rowsLoaded"]) == ("COMPLETED", 1, 7)


def test_file_ticker_given_at_presign_wins_over_the_name(function_env: dict[str, str]) -> None:
    batch_id, event = uploaded(
        function_env, "HistoricalQuotes.csv", ohlcv_csv(None, 2), ticker="aapl "
    )
    app("process-file").post("/", **as_post(event))
    assert batch_status(batch_id)["files"][0]["tickers"] == ["AAPL"]


def test_bad_file_fails_with_its_cause_and_is_acknowledged(function_env: dict[str, str]) -> None:
    batch_id, event = uploaded(function_env, "GOOG.csv", b"Date,Open\n2024-01-02,1\n")
    assert app("process-file").post("/", **as_post(event)).status_code == 204
    state = batch_status(batch_id)
    assert state["status"] == "FAILED" and state["failed"] == 1 and state["progress"] == 100.0
    assert "high, low, close" in state["files"][0]["error"]
    assert state["files"][0]["tickers"] == []


def test_rejected_rows_are_reported_and_downloadable(function_env: dict[str, str]) -> None:
    body = (
        b"Date,Open,High,Low,Close\n2024-01-02,1,2,1,2\n2024-01-03,5,2,1,2\n"
        b"=cmd|' /C calc'!A0,1,2,1,2\n"
    )
    batch_id, event = uploaded(function_env, "TSLA.csv", body)
    app("process-file").post("/", **as_post(event))
    file = batch_status(batch_id)["files"][0]
    assert (file["status"], file["rowsLoaded"], file["rowsRejected"]) == ("COMPLETED", 1, 2)
    rejects = requests.get(file["rejectsUrl"], timeout=10).text.splitlines()
    assert rejects[0] == "line,Date,Open,High,Low,Close,reason,message"
    assert rejects[1].startswith("3,2024-01-03,5,2,1,2,OUTSIDE_RANGE,")
    assert rejects[2].startswith("4,'=cmd|' /C calc'!A0,1,2,1,2,BAD_DATE,")


def test_latin1_file_rejects_keep_their_characters(function_env: dict[str, str]) -> None:
    body = ("Datum;Eröffnung;Hoch;Tief;Schluss\n02.01.2024;1;2;1;2\n03.01.2024;€;2;1;2\n").encode(
        "cp1252"
    )
    _, file = load(function_env, body)
    assert (file["rowsLoaded"], file["rowsRejected"]) == (1, 1), file
    rejects = requests.get(file["rejectsUrl"], timeout=10).content.decode("utf-8")
    assert "Eröffnung" in rejects and "€" in rejects and "\ufffd" not in rejects


def test_semicolon_file_with_decimal_comma_is_stored_as_read(function_env: dict[str, str]) -> None:
    body = (
        "Datum;Eröffnung;Hoch;Tief;Schluss;Volumen\n02.01.2024;1.234,50;1.240;1.230,25;1.235;12\n"
    )
    ticker, file = load(function_env, body.encode())
    assert (file["status"], file["rowsLoaded"]) == ("COMPLETED", 1), file
    written = ("1234.50", "1240", "1230.25", "1235", "12", "0")
    stored = stored_rows(function_env["DATABASE_URL"], ticker)
    assert stored == [("2024-01-02", *map(Decimal, written))]


def test_a_200000_row_multi_ticker_file(function_env: dict[str, str]) -> None:
    body = (
        multi_ticker_csv("BIGM", 40, 2000) + multi_ticker_csv("BIGN", 60, 2000).split(b"\n", 1)[1]
    )
    batch_id, event = uploaded(function_env, "many.csv", body)
    assert app("process-file").post("/", **as_post(event)).status_code == 204
    file = batch_status(batch_id)["files"][0]
    assert (file["status"], file["rowsLoaded"], len(file["tickers"])) == ("COMPLETED", 200_000, 100)
    with psycopg.connect(function_env["DATABASE_URL"]) as conn:
        count = conn.execute(
            "SELECT count(*) FROM seasonality_data d JOIN tickers t"
            " ON t.id = d.ticker_id WHERE t.symbol ~ '^BIG[MN][0-9]{2}$'"
        ).fetchone()
    assert count == (200_000,)


def test_events_outside_uploads_or_other_buckets_are_ignored(function_env: dict[str, str]) -> None:
    fixture = json.loads((EVENTS / "minio-webhook-put.json").read_text())
    process = app("process-file")
    assert process.post("/", **as_post(fixture)).status_code == 204
    fixture["Records"][0]["s3"]["bucket"]["name"] = function_env["S3_BUCKET"]
    assert process.post("/", **as_post(fixture)).status_code == 204
    empty = as_post({"EventName": "s3:TestEvent", "Records": []})
    assert process.post("/", **empty).status_code == 204


def test_body_that_is_no_notification_is_400(function_env: dict[str, str]) -> None:
    answer = app("process-file").post("/", data=b"hello", headers={"Content-Type": "text/plain"})
    assert answer.status_code == 400


def test_webhook_token_is_checked(
    function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_TOKEN", "s3cret")
    process = app("process-file")
    body = as_post({"Records": []})
    assert process.post("/", **body).status_code == 401
    for wrong in ("Bearer nope", "s3cret"):
        refused = {**body, "headers": {**body["headers"], "Authorization": wrong}}
        assert process.post("/", **refused).status_code == 401
    right = {**body, "headers": {**body["headers"], "Authorization": "Bearer s3cret"}}
    assert process.post("/", **right).status_code == 204


def test_unreachable_database_is_5xx_and_records_nothing(
    function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    batch_id, event = uploaded(function_env, "NFLX.csv", ohlcv_csv(None, 3))
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    monkeypatch.setenv("DATABASE_TIMEOUT_SECONDS", "1")
    get_clients.cache_clear()
    assert app("process-file").post("/", **as_post(event)).status_code == 503
    monkeypatch.setenv("DATABASE_URL", function_env["DATABASE_URL"])
    get_clients.cache_clear()
    assert batch_status(batch_id)["status"] == "PENDING"
    assert app("process-file").post("/", **as_post(event)).status_code == 204
    assert batch_status(batch_id)["status"] == "COMPLETED"


def test_dead_letter_records_the_failure_on_the_file(function_env: dict[str, str]) -> None:
    batch_id, event = uploaded(function_env, "DLQ.csv", ohlcv_csv(None, 2))
    headers, body = minio_webhook(event)
    answer = app("process-file").post(
        "/dead-letter", data=body, headers={**headers, "ce-knativeerrorcode": "503"}
    )
    assert answer.status_code == 204
    file = batch_status(batch_id)["files"][0]
    assert file["status"] == "FAILED" and "503" in file["error"]
    retried = app("status").post(f"/batch/{batch_id}/retry", headers=AUTH)
    assert retried.json["data"]["retried"] == 1
    get_clients().background.shutdown(wait=True)
    assert batch_status(batch_id)["files"][0]["status"] == "COMPLETED"


def test_processing_counts_in_metrics_and_logs_one_json_line(
    function_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    before = REGISTRY.get_sample_value("csv_rows_loaded_total") or 0
    _, event = uploaded(function_env, "ORCL.csv", ohlcv_csv(None, 6))
    capsys.readouterr()
    app("process-file").post("/", **as_post(event))
    assert REGISTRY.get_sample_value("csv_rows_loaded_total") == before + 6
    lines = [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
    ]
    [logged] = [line for line in lines if line["message"].startswith("event ")]
    assert logged["outcome"] == "completed" and logged["objectKey"].endswith("_ORCL.csv")
    assert logged["batchId"].startswith("b_") and logged["etag"] and logged["durationMs"] > 0
    assert "testing" not in json.dumps(lines)  # the S3 secret never reaches a log line


def test_metrics_and_health_are_served_beside_the_function(function_env: dict[str, str]) -> None:
    assert_serves_health_and_metrics(app("process-file"))
