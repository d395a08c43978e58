"""The three entry points in-process, wired to the real services."""

from decimal import Decimal
from typing import Any

import psycopg
from minio import Minio

from tests.conftest import API_TOKEN
from tests.helpers import app, ohlcv_csv, put, raw_webhook, webhook

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def test_presign_upload_notify_status(function_env: dict[str, str]) -> None:
    presign, process, status = app("presign"), app("process-file"), app("status")
    response = presign.post(
        "/bulk", json={"files": [{"name": "AAPL.csv", "size": 10}]}, headers=AUTH
    )
    assert response.status_code == 200, response.json
    data: dict[str, Any] = response.json["data"]
    upload = data["uploadUrls"][0]
    put(upload, ohlcv_csv("AAPL", 10))
    store = Minio(
        function_env["S3_ENDPOINT"].removeprefix("http://"),
        "testing",
        "testing",
        secure=False,
        region="us-east-1",
    )
    stat = store.stat_object(function_env["S3_BUCKET"], upload["objectKey"])
    headers, body = raw_webhook(
        webhook(function_env["S3_BUCKET"], upload["objectKey"], stat.etag or "", stat.size or 0)
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
