"""Small builders the tests share: apps under test, uploads, notifications in every form."""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent
from flask.testing import FlaskClient
from functions_framework import create_app

from shared.events import minio_notification

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = {
    "presign": ("functions/presign/main.py", "presign"),
    "process-file": ("functions/process-file/main.py", "process_file"),
    "status": ("functions/status/main.py", "status"),
}


def app(name: str) -> FlaskClient:
    source, target = FUNCTIONS[name]
    return create_app(target, str(ROOT / source), "http").test_client()


def ohlcv_csv(ticker: str | None, days: int, start: int = 0, price: str = "100.25") -> bytes:
    """Consecutive-date rows; prices step by 0.01 so every row is distinct."""
    header = (
        "Date,Ticker,Open,High,Low,Close,Volume,OpenInterest"
        if ticker
        else "Date,Open,High,Low,Close,Volume"
    )
    lines = [header]
    base = datetime(2020, 1, 1).toordinal()
    for day in range(start, start + days):
        date = datetime.fromordinal(base + day).date().isoformat()
        close = f"{float(price) + day / 100:.2f}"
        cells = [
            date,
            *([ticker] if ticker else []),
            price,
            f"{float(price) + 50:.2f}",
            "1.5",
            close,
            str(1000 + day),
            *(["7"] if ticker else []),
        ]
        lines.append(",".join(cells))
    return ("\n".join(lines) + "\n").encode()


def put(upload: dict[str, Any], body: bytes) -> None:
    response = requests.request(
        upload["method"], upload["uploadUrl"], data=body, headers=upload["headers"], timeout=30
    )
    assert response.status_code == 200, response.text


def webhook(bucket: str, key: str, etag: str, size: int) -> dict[str, Any]:
    return minio_notification(bucket, key, etag, size, datetime.now(UTC))


def binary_cloudevent(notification: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    event = CloudEvent(
        {"type": "dev.knative.minio.object.created", "source": "minio:test"}, notification
    )
    headers, body = to_binary(event)
    return dict(headers), body


def structured_cloudevent(notification: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    event = CloudEvent(
        {"type": "dev.knative.minio.object.created", "source": "minio:test"}, notification
    )
    headers, body = to_structured(event)
    return dict(headers), body


def raw_webhook(notification: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    return {"Content-Type": "application/json"}, json.dumps(notification).encode()


def multi_ticker_csv(prefix: str, tickers: int, days: int) -> bytes:
    """One file of `tickers` tickers named <prefix>00, <prefix>01, … with `days` rows each."""
    parts = [ohlcv_csv(f"{prefix}{n:02d}", days).split(b"\n", 1) for n in range(tickers)]
    return parts[0][0] + b"\n" + b"".join(body for _, body in parts)
