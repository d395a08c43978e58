"""Entry points in-process (create_app test clients): routes, auth, CORS, errors, events."""

import json
from typing import Any

import psycopg
import pytest
from flask.testing import FlaskClient
from minio import Minio

from tests.conftest import API_TOKEN, EVENTS, free_port
from tests.helpers import (
    app,
    binary_cloudevent,
    ohlcv_csv,
    put,
    raw_webhook,
    structured_cloudevent,
    webhook,
)

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def _store(env: dict[str, str]) -> Minio:
    return Minio(
        env["S3_ENDPOINT"].removeprefix("http://"),
        "testing",
        "testing",
        secure=False,
        region="us-east-1",
    )


def _presign(client: FlaskClient, files: list[dict[str, Any]]) -> dict[str, Any]:
    response = client.post("/api/upload/bulk", json={"files": files}, headers=AUTH)
    assert response.status_code == 200, response.json
    return dict(response.json["data"])


def _uploaded(
    env: dict[str, str], name: str, body: bytes, ticker: str | None = None
) -> tuple[str, dict[str, Any]]:
    data = _presign(app("presign"), [{"name": name, "size": len(body), "ticker": ticker}])
    upload = data["uploadUrls"][0]
    put(upload, body)
    stat = _store(env).stat_object(env["S3_BUCKET"], upload["objectKey"])
    return data["batchId"], webhook(
        env["S3_BUCKET"], upload["objectKey"], stat.etag or "", stat.size or 0
    )


def _status(batch_id: str) -> dict[str, Any]:
    response = app("status").get(f"/function/status/batch/{batch_id}/status", headers=AUTH)
    assert response.status_code == 200, response.json
    return dict(response.json["data"])


# presign


def test_presign_answers_the_contract_shape(function_env: dict[str, str]) -> None:
    data = _presign(
        app("presign"),
        [{"name": "AAPL.csv", "size": 10, "type": "text/csv"}, {"name": "../x y.csv", "size": 10}],
    )
    batch = data["batchId"]
    assert batch.startswith("b_") and data["expiresAt"].endswith("Z")
    keys = [u["objectKey"] for u in data["uploadUrls"]]
    assert keys == [f"uploads/{batch}/0000_AAPL.csv", f"uploads/{batch}/0001_x_y.csv"]
    assert data["uploadUrls"][1]["fileName"] == "../x y.csv"
    assert all(
        u["method"] == "PUT" and u["headers"] == {"Content-Type": "text/csv"}
        for u in data["uploadUrls"]
    )
    assert _status(batch)["status"] == "PENDING" and _status(batch)["total"] == 2


def test_presign_adds_files_to_an_existing_batch(function_env: dict[str, str]) -> None:
    client = app("presign")
    first = _presign(client, [{"name": "A.csv"}])
    response = client.post(
        "/bulk", headers=AUTH, json={"batchId": first["batchId"], "files": [{"name": "B.csv"}]}
    )
    assert response.json["data"]["uploadUrls"][0]["objectKey"].endswith("/0001_B.csv")
    assert _status(first["batchId"])["total"] == 2


def test_presign_url_is_signed_for_the_public_endpoint(
    function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("S3_PUBLIC_ENDPOINT", "https://files.example.com")
    data = _presign(app("presign"), [{"name": "A.csv"}])
    assert data["uploadUrls"][0]["uploadUrl"].startswith("https://files.example.com/")


@pytest.mark.parametrize(
    ("files", "code"),
    [
        ([{"name": ""}], "INVALID_FILE_NAME"),
        ([{"name": "a\x00.csv"}], "INVALID_FILE_NAME"),
        ([{"name": "é" * 600 + ".csv"}], "INVALID_FILE_NAME"),
        ([{"name": "prices.xlsx"}], "UNSUPPORTED_FILE_TYPE"),
        ([{"name": "a.csv", "size": 104857601}], "FILE_TOO_LARGE"),
        ([{"name": "a.csv", "ticker": "=HYPERLINK()"}], "INVALID_TICKER"),
        ([], "INVALID_REQUEST"),
        ([{"name": "a.csv"}] * 1001, "TOO_MANY_FILES"),
    ],
)
def test_presign_refuses_bad_requests_and_creates_nothing(
    function_env: dict[str, str], files: list[dict[str, Any]], code: str
) -> None:
    with psycopg.connect(function_env["DATABASE_URL"]) as conn:
        before = conn.execute("SELECT count(*) FROM ingest_batches").fetchone()
        response = app("presign").post("/bulk", json={"files": files}, headers=AUTH)
        after = conn.execute("SELECT count(*) FROM ingest_batches").fetchone()
    assert response.status_code == 400
    assert response.json["success"] is False and response.json["error"]["code"] == code
    assert response.json["error"]["message"]
    assert before == after


def test_presign_refuses_bad_json_and_unknown_batch(function_env: dict[str, str]) -> None:
    client = app("presign")
    bad = client.post("/bulk", data=b"{nope", headers={**AUTH, "Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.json["error"]["code"] == "INVALID_JSON"
    unknown = client.post(
        "/bulk", headers=AUTH, json={"batchId": "b_" + "0" * 26, "files": [{"name": "a.csv"}]}
    )
    assert unknown.status_code == 404 and unknown.json["error"]["code"] == "BATCH_NOT_FOUND"


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {API_TOKEN}", "Bearer "])
def test_presign_and_status_require_a_token(
    function_env: dict[str, str], header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    for response in (
        app("presign").post("/bulk", json={"files": [{"name": "a.csv"}]}, headers=headers),
        app("status").get("/batch/b_x/status", headers=headers),
    ):
        assert response.status_code == 401
        assert response.json == {
            "success": False,
            "error": {"code": "UNAUTHORIZED", "message": "A valid bearer token is required."},
        }


def test_no_configured_tokens_refuse_everything_unless_auth_disabled(
    function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_TOKENS", "")
    assert app("status").get("/batch/b_x/status", headers=AUTH).status_code == 401
    monkeypatch.setenv("AUTH_DISABLED", "true")
    from shared.clients import get_clients

    get_clients.cache_clear()
    assert app("status").get("/batch/b_x/status").status_code == 404


def test_cors_allows_only_listed_origins(function_env: dict[str, str]) -> None:
    client = app("status")
    preflight = client.options(
        "/batch/b_x/status",
        headers={"Origin": "http://admin.example", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "http://admin.example"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    other = client.get("/batch/b_x/status", headers={**AUTH, "Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


# status


def test_unknown_batch_is_404(function_env: dict[str, str]) -> None:
    response = app("status").get("/batch/b_0000/status", headers=AUTH)
    assert response.status_code == 404 and response.json["error"]["code"] == "BATCH_NOT_FOUND"
    assert app("status").post("/batch/b_0000/retry", headers=AUTH).status_code == 404


def test_status_is_rebuilt_from_the_ledger_when_redis_lost_it(function_env: dict[str, str]) -> None:
    import redis

    batch_id, notification = _uploaded(function_env, "MSFT.csv", ohlcv_csv(None, 5))
    assert app("process-file").post("/", **_raw(notification)).status_code == 204
    before = _status(batch_id)
    client = redis.Redis.from_url(function_env["REDIS_URL"])
    for key in client.scan_iter(f"{function_env['REDIS_KEY_PREFIX']}batch:{batch_id}*"):
        client.delete(key)
    after = _status(batch_id)
    assert after["status"] == "COMPLETED" and after["files"] == before["files"]
    assert after["rowsLoaded"] == 5 and after["files"][0]["tickers"] == ["MSFT"]


# process-file


def _raw(notification: dict[str, Any]) -> dict[str, Any]:
    headers, body = raw_webhook(notification)
    return {"headers": headers, "data": body}


@pytest.mark.parametrize("form", [raw_webhook, binary_cloudevent, structured_cloudevent])
def test_each_notification_form_loads_the_file_once(
    function_env: dict[str, str], form: Any
) -> None:
    batch_id, notification = _uploaded(function_env, "IBM.csv", ohlcv_csv(None, 7))
    headers, body = form(notification)
    process = app("process-file")
    for _ in range(3):
        answer = process.post("/", headers=headers, data=body)
        assert answer.status_code == 204 and answer.data == b""
    state = _status(batch_id)
    assert (state["status"], state["processed"], state["rowsLoaded"]) == ("COMPLETED", 1, 7)


def test_file_ticker_given_at_presign_wins_over_the_name(function_env: dict[str, str]) -> None:
    batch_id, notification = _uploaded(
        function_env, "HistoricalQuotes.csv", ohlcv_csv(None, 2), ticker="aapl "
    )
    app("process-file").post("/", **_raw(notification))
    assert _status(batch_id)["files"][0]["tickers"] == ["AAPL"]


def test_bad_file_fails_with_its_cause_and_is_acknowledged(function_env: dict[str, str]) -> None:
    batch_id, notification = _uploaded(function_env, "GOOG.csv", b"Date,Open\n2024-01-02,1\n")
    assert app("process-file").post("/", **_raw(notification)).status_code == 204
    state = _status(batch_id)
    assert state["status"] == "FAILED" and state["failed"] == 1 and state["progress"] == 100.0
    assert "high, low, close" in state["files"][0]["error"]
    assert state["files"][0]["tickers"] == []


def test_rejected_rows_are_reported_and_downloadable(function_env: dict[str, str]) -> None:
    import requests

    body = (
        b"Date,Open,High,Low,Close\n2024-01-02,1,2,1,2\n2024-01-03,5,2,1,2\n"
        b"=cmd|' /C calc'!A0,1,2,1,2\n"
    )
    batch_id, notification = _uploaded(function_env, "TSLA.csv", body)
    app("process-file").post("/", **_raw(notification))
    file = _status(batch_id)["files"][0]
    assert (file["status"], file["rowsLoaded"], file["rowsRejected"]) == ("COMPLETED", 1, 2)
    rejects = requests.get(file["rejectsUrl"], timeout=10).text.splitlines()
    assert rejects[0] == "line,Date,Open,High,Low,Close,reason,message"
    assert rejects[1].startswith("3,2024-01-03,5,2,1,2,OUTSIDE_RANGE,")
    assert rejects[2].startswith("4,'=cmd|' /C calc'!A0,1,2,1,2,BAD_DATE,")


def test_events_outside_uploads_or_other_buckets_are_ignored(function_env: dict[str, str]) -> None:
    fixture = json.loads((EVENTS / "minio-webhook-put.json").read_text())
    process = app("process-file")
    assert process.post("/", **_raw(fixture)).status_code == 204
    fixture["Records"][0]["s3"]["bucket"]["name"] = function_env["S3_BUCKET"]
    assert process.post("/", **_raw(fixture)).status_code == 204
    empty = _raw({"EventName": "s3:TestEvent", "Records": []})
    assert process.post("/", **empty).status_code == 204


def test_body_that_is_no_notification_is_400(function_env: dict[str, str]) -> None:
    answer = app("process-file").post("/", data=b"hello", headers={"Content-Type": "text/plain"})
    assert answer.status_code == 400


def test_webhook_token_is_checked(
    function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_TOKEN", "s3cret")
    process = app("process-file")
    body = _raw({"Records": []})
    assert process.post("/", **body).status_code == 401
    wrong = {**body, "headers": {**body["headers"], "Authorization": "Bearer nope"}}
    assert process.post("/", **wrong).status_code == 401
    unscheme = {**body, "headers": {**body["headers"], "Authorization": "s3cret"}}
    assert process.post("/", **unscheme).status_code == 401
    right = {**body, "headers": {**body["headers"], "Authorization": "Bearer s3cret"}}
    assert process.post("/", **right).status_code == 204


def test_unreachable_database_is_5xx_and_records_nothing(
    function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    batch_id, notification = _uploaded(function_env, "NFLX.csv", ohlcv_csv(None, 3))
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    monkeypatch.setenv("DATABASE_TIMEOUT_SECONDS", "1")
    from shared.clients import get_clients

    get_clients.cache_clear()
    assert app("process-file").post("/", **_raw(notification)).status_code == 503
    monkeypatch.setenv("DATABASE_URL", function_env["DATABASE_URL"])
    get_clients.cache_clear()
    assert _status(batch_id)["status"] == "PENDING"
    assert app("process-file").post("/", **_raw(notification)).status_code == 204
    assert _status(batch_id)["status"] == "COMPLETED"


def test_retry_reprocesses_failed_files_from_the_stored_object(
    function_env: dict[str, str],
) -> None:
    batch_id, notification = _uploaded(function_env, "AMD.csv", b"Date,Open\n")
    app("process-file").post("/", **_raw(notification))
    assert _status(batch_id)["status"] == "FAILED"
    key = notification["Records"][0]["s3"]["object"]["key"]
    from urllib.parse import unquote_plus

    _store(function_env).put_object(
        function_env["S3_BUCKET"],
        unquote_plus(key),
        __import__("io").BytesIO(ohlcv_csv(None, 4)),
        -1,
        part_size=5 * 1024 * 1024,
        content_type="text/csv",
    )
    response = app("status").post(f"/batch/{batch_id}/retry", headers=AUTH)
    assert response.status_code == 202 and response.json["data"] == {
        "batchId": batch_id,
        "retried": 1,
    }
    from shared.clients import get_clients

    get_clients().background.shutdown(wait=True)
    state = _status(batch_id)
    assert (state["status"], state["rowsLoaded"], state["failed"]) == ("COMPLETED", 4, 0)


# operations


@pytest.mark.parametrize("name", ["presign", "process-file", "status"])
def test_metrics_and_health_are_served_beside_the_function(
    function_env: dict[str, str], name: str
) -> None:
    client = app(name)
    assert client.get("/healthz").status_code == 200
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    for family in (
        "csv_files_uploaded_total",
        "csv_files_processed_total",
        "csv_files_failed_total",
        "csv_processing_duration_seconds_bucket",
        "csv_queue_length",
        "csv_rows_loaded_total",
        "csv_rows_rejected_total",
    ):
        assert family in metrics.text


def test_processing_counts_in_metrics_and_logs_one_json_line(
    function_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from prometheus_client import REGISTRY

    before = REGISTRY.get_sample_value("csv_rows_loaded_total") or 0
    _, notification = _uploaded(function_env, "ORCL.csv", ohlcv_csv(None, 6))
    capsys.readouterr()
    app("process-file").post("/", **_raw(notification))
    assert REGISTRY.get_sample_value("csv_rows_loaded_total") == before + 6
    lines = [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
    ]
    [event] = [line for line in lines if line["message"].startswith("event ")]
    assert event["outcome"] == "completed" and event["objectKey"].endswith("_ORCL.csv")
    assert event["batchId"].startswith("b_") and event["etag"] and event["durationMs"] > 0
    assert "testing" not in json.dumps(lines)  # the S3 secret never reaches a log line
