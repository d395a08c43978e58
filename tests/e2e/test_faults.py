"""Faults over real processes: concurrent redelivery, and workers killed mid-load."""

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from minio import Minio

from tests.conftest import API_TOKEN, free_port
from tests.e2e.conftest import WEBHOOK_TOKEN, localstack
from tests.helpers import (
    binary_cloudevent,
    multi_ticker_csv,
    ohlcv_csv,
    put,
    raw_webhook,
    structured_cloudevent,
    webhook,
)

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
FORMS = (raw_webhook, binary_cloudevent, structured_cloudevent)


def _upload(env: dict[str, str], urls: dict[str, str], name: str,
            body: bytes) -> tuple[str, dict[str, Any]]:
    answer = requests.post(f"{urls['presign']}/bulk", headers=AUTH, timeout=30,
                           json={"files": [{"name": name, "size": len(body)}]})
    batch = answer.json()["data"]
    upload = batch["uploadUrls"][0]
    put(upload, body)
    stat = Minio(env["S3_ENDPOINT"].removeprefix("http://"), "testing", "testing", secure=False,
                 region="us-east-1").stat_object(env["S3_BUCKET"], upload["objectKey"])
    return batch["batchId"], webhook(env["S3_BUCKET"], upload["objectKey"], stat.etag or "",
                                     stat.size or 0)


def _deliver_until_handled(url: str, form: Any, notification: dict[str, Any]) -> int:
    """Deliver as a sender does: again after every 5xx or connection failure."""
    headers, body = form(notification)
    headers = {**headers, "Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            answer = requests.post(url, data=body, headers=headers, timeout=120)
            if answer.status_code < 500:
                return answer.status_code
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    raise AssertionError("the event was never handled")


def _count(database_url: str, ticker: str) -> int:
    """Rows of the ticker, or of every ticker that starts with it."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM seasonality_data d JOIN tickers t ON"
                           " t.id = d.ticker_id WHERE t.symbol LIKE %s", (f"{ticker}%",)
                           ).fetchone()
    return int(row[0]) if row else 0


def _file_status(database_url: str, batch_id: str) -> str:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT status FROM ingest_files WHERE batch_id = %s",
                           (batch_id,)).fetchone()
    return str(row[0]) if row else ""


def _state(urls: dict[str, str], batch_id: str) -> dict[str, Any]:
    return dict(requests.get(f"{urls['status']}/batch/{batch_id}/status", headers=AUTH,
                             timeout=10).json()["data"])


def test_ten_concurrent_deliveries_in_mixed_forms_load_once(
        stack: tuple[dict[str, str], dict[str, str]]) -> None:
    env, urls = stack
    batch_id, notification = _upload(env, urls, "TENX.csv", ohlcv_csv(None, 2000))
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(
            lambda n: _deliver_until_handled(urls["process-file"], FORMS[n % 3], notification),
            range(10)))
    assert answers == [204] * 10
    state = _state(urls, batch_id)
    assert (state["processed"], state["rowsLoaded"], state["total"]) == (1, 2000, 1)
    assert _count(env["DATABASE_URL"], "TENX") == 2000


@pytest.fixture
def killable(stack: tuple[dict[str, str], dict[str, str]], tmp_path: Path) -> Any:
    """Start (and restart) a process-file of our own whose lease expires after 2 s."""
    env, _ = stack
    started: list[Any] = []

    def start() -> str:
        port = free_port()
        process = localstack.spawn_function("process-file", port,
                                            {**env, "PROCESSING_LEASE_SECONDS": "2"}, tmp_path)
        started.append(process)
        return localstack.wait_healthy(process, port, "process-file") + "/"

    def kill() -> None:
        localstack.stop(started[-1], signal.SIGKILL)

    yield start, kill
    for process in started:
        localstack.stop(process)


def _deliver_in_background(url: str, notification: dict[str, Any]) -> threading.Thread:
    headers, body = raw_webhook(notification)

    def send() -> None:
        try:
            requests.post(url, data=body, timeout=120, headers={
                **headers, "Authorization": f"Bearer {WEBHOOK_TOKEN}"})
        except requests.ConnectionError:
            pass  # the worker is killed under this request

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def _wait_for(check: Any, what: str) -> None:
    deadline = time.monotonic() + 60
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


TICKERS, DAYS = 30, 2000
ROWS = TICKERS * DAYS


def test_worker_killed_while_parsing_is_taken_over_after_its_lease(
        stack: tuple[dict[str, str], dict[str, str]], killable: Any) -> None:
    env, urls = stack
    start, kill = killable
    body = multi_ticker_csv("KILLA", TICKERS, DAYS)
    batch_id, notification = _upload(env, urls, "KILLA.csv", body)
    # GIVEN a worker that took the file and is reading it
    _deliver_in_background(start(), notification)
    _wait_for(lambda: _file_status(env["DATABASE_URL"], batch_id) == "PROCESSING", "lease")
    # WHEN it is killed
    kill()
    # THEN nothing of the file is visible, and the file waits under the dead worker's lease
    assert _count(env["DATABASE_URL"], "KILLA") == 0
    assert _file_status(env["DATABASE_URL"], batch_id) == "PROCESSING"
    # WHEN the event comes again to a new worker: refused while the lease runs, then taken over
    assert _deliver_until_handled(start(), raw_webhook, notification) == 204
    assert _count(env["DATABASE_URL"], "KILLA") == ROWS
    assert _state(urls, batch_id)["status"] == "COMPLETED"


def test_worker_killed_inside_its_load_transaction_leaves_nothing_half_written(
        stack: tuple[dict[str, str], dict[str, str]], killable: Any) -> None:
    env, urls = stack
    start, kill = killable
    body = multi_ticker_csv("KILLB", TICKERS, DAYS)
    batch_id, notification = _upload(env, urls, "KILLB.csv", body)
    with psycopg.connect(env["DATABASE_URL"]) as blocker:
        # GIVEN the load transaction held up after its claim and COPY, at the ticker insert
        blocker.execute("INSERT INTO tickers (symbol) VALUES ('KILLB00')")
        _deliver_in_background(start(), notification)
        _wait_for(lambda: _waiting_on_lock(env["DATABASE_URL"]), "load transaction at tickers")
        # WHEN the worker dies mid-transaction
        kill()
        blocker.rollback()
    # THEN none of its rows and none of its claim were committed
    assert _count(env["DATABASE_URL"], "KILLB") == 0
    assert _file_status(env["DATABASE_URL"], batch_id) == "PROCESSING"
    assert _deliver_until_handled(start(), binary_cloudevent, notification) == 204
    assert _count(env["DATABASE_URL"], "KILLB") == ROWS
    state = _state(urls, batch_id)
    assert (state["status"], state["rowsLoaded"]) == ("COMPLETED", ROWS)


def _waiting_on_lock(database_url: str) -> bool:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO tickers%%'").fetchone()
    return bool(row and row[0])
