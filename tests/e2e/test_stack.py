"""End to end over real processes: moto's S3 server, PostgreSQL, Redis and the three functions
started with the functions-framework CLI, exactly as deployed."""

import time
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from devstack.client import Client, Form
from devstack.data import ohlcv_csv
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e
FILES = 24
ROWS = 40


def _deliver(client: Client, notification: dict[str, Any], form: Form = "minio") -> None:
    answer = client.send(notification, form, timeout=60)
    assert answer.status_code == 204, answer.text


def _snapshot(database_url: str, tickers: list[str]) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT t.symbol, d.date, d.open, d.high, d.low, d.close, d.volume, d.open_interest,"
            " d.xmin::text FROM seasonality_data d JOIN tickers t ON t.id = d.ticker_id"
            " WHERE t.symbol = ANY(%s) ORDER BY 1, 2",
            (tickers,),
        ).fetchall()


def test_batch_through_the_running_stack_and_redelivery_changes_nothing(
    stack: Stack, client: Client
) -> None:
    env, _ = stack
    # GIVEN a batch of files presigned through the API and uploaded with PUT
    names = [f"E2E{i:03d}.csv" for i in range(FILES)]
    batch = client.presign(names)
    assert client.status(batch["batchId"])["status"] == "PENDING"
    notifications = []
    for index, upload in enumerate(batch["uploadUrls"]):
        body = ohlcv_csv(None, ROWS, start=index, price="101.25")
        notifications.append(client.notification(upload, client.upload(upload, body), len(body)))
    # WHEN MinIO delivers one webhook per object
    for notification in notifications:
        _deliver(client, notification)
    # THEN the batch is complete, with every row and exact decimals
    deadline = time.monotonic() + 60
    while (state := client.status(batch["batchId"]))["status"] != "COMPLETED":
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    assert (state["total"], state["processed"], state["failed"]) == (FILES, FILES, 0)
    assert state["rowsLoaded"] == FILES * ROWS and state["progress"] == 100.0
    assert state["queue"] == {"waiting": 0, "active": 0, "completed": FILES, "failed": 0}
    tickers = [n.removesuffix(".csv") for n in names]
    rows = _snapshot(env["DATABASE_URL"], tickers)
    assert len(rows) == FILES * ROWS
    first = next(r for r in rows if r[0] == "E2E003" and str(r[1]) == "2020-01-04")
    assert first[2:8] == (
        Decimal("101.25"),
        Decimal("151.25"),
        Decimal("1.5"),
        Decimal("101.28"),
        Decimal("1003"),
        Decimal("0"),
    )

    # WHEN every event is delivered again, in all three forms
    for notification in notifications:
        for form in ("minio", "binary", "structured"):
            _deliver(client, notification, form)
    # THEN nothing changes: not a row, not a counter, not a tuple version
    assert _snapshot(env["DATABASE_URL"], tickers) == rows
    again = client.status(batch["batchId"])
    assert {k: v for k, v in again.items() if k != "updatedAt"} == {
        k: v for k, v in state.items() if k != "updatedAt"
    }


def test_bulk_process_picks_up_a_file_whose_event_never_came(client: Client) -> None:
    batch = client.presign(["LOST.csv", "NEVER.csv"])
    client.upload(batch["uploadUrls"][0], ohlcv_csv(None, 3))
    done = client.process(batch["batchId"], [u["objectKey"] for u in batch["uploadUrls"]])
    assert done["status"] == "PROCESSING"
    deadline = time.monotonic() + 30
    while client.status(batch["batchId"])["processed"] != 1:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    state = client.status(batch["batchId"])
    assert [f["status"] for f in state["files"]] == ["COMPLETED", "PENDING"]
    assert state["status"] == "PROCESSING" and state["rowsLoaded"] == 3
