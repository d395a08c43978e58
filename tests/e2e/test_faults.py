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

from tests.conftest import API_TOKEN, free_port
from tests.e2e.conftest import WEBHOOK_TOKEN, localstack, notification_for, presign_batch
from tests.e2e.conftest import batch_status as _state
from tests.helpers import (
    binary_cloudevent,
    multi_ticker_csv,
    ohlcv_csv,
    put,
    raw_webhook,
    structured_cloudevent,
)

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
FORMS = (raw_webhook, binary_cloudevent, structured_cloudevent)


def _upload(
    env: dict[str, str], urls: dict[str, str], name: str, body: bytes
) -> tuple[str, dict[str, Any]]:
    batch = presign_batch(urls, [name])
    put(batch["uploadUrls"][0], body)
    return batch["batchId"], notification_for(env, batch["uploadUrls"][0])


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
        row = conn.execute(
            "SELECT count(*) FROM seasonality_data d JOIN tickers t ON"
            " t.id = d.ticker_id WHERE t.symbol LIKE %s",
            (f"{ticker}%",),
        ).fetchone()
    return int(row[0]) if row else 0


def _file_status(database_url: str, batch_id: str) -> str:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT status FROM ingest_files WHERE batch_id = %s", (batch_id,)
        ).fetchone()
    return str(row[0]) if row else ""


def test_ten_concurrent_deliveries_in_mixed_forms_load_once(
    stack: tuple[dict[str, str], dict[str, str]],
) -> None:
    env, urls = stack
    batch_id, notification = _upload(env, urls, "TENX.csv", ohlcv_csv(None, 2000))
    with ThreadPoolExecutor(10) as pool:
        answers = list(
            pool.map(
                lambda n: _deliver_until_handled(urls["process-file"], FORMS[n % 3], notification),
                range(10),
            )
        )
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
        process = localstack.spawn_function(
            "process-file", port, {**env, "PROCESSING_LEASE_SECONDS": "2"}, tmp_path
        )
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
            requests.post(
                url,
                data=body,
                timeout=120,
                headers={**headers, "Authorization": f"Bearer {WEBHOOK_TOKEN}"},
            )
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
    stack: tuple[dict[str, str], dict[str, str]], killable: Any
) -> None:
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
    stack: tuple[dict[str, str], dict[str, str]], killable: Any
) -> None:
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
            " AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO tickers%%'"
        ).fetchone()
    return bool(row and row[0])


@pytest.fixture
def spawn(stack: tuple[dict[str, str], dict[str, str]], tmp_path: Path) -> Any:
    """Start a process-file of our own with some variables changed; stopped afterwards."""
    env, _ = stack
    started: list[Any] = []

    def start(**changes: str) -> str:
        port = free_port()
        process = localstack.spawn_function("process-file", port, {**env, **changes}, tmp_path)
        started.append(process)
        return localstack.wait_healthy(process, port, "process-file") + "/"

    yield start
    for process in started:
        localstack.stop(process)


@pytest.mark.parametrize("broken", ["DATABASE_URL", "REDIS_URL", "S3_ENDPOINT"])
def test_unreachable_service_gives_5xx_and_the_redelivery_completes(
    stack: tuple[dict[str, str], dict[str, str]], spawn: Any, broken: str
) -> None:
    env, urls = stack
    ticker = f"GONE{broken[0]}"
    batch_id, notification = _upload(env, urls, f"{ticker}.csv", ohlcv_csv(None, 9))
    dead = f"127.0.0.1:{free_port()}"
    url = spawn(
        **{
            broken: {
                "DATABASE_URL": f"postgresql://postgres@{dead}/x",
                "REDIS_URL": f"redis://{dead}/0",
                "S3_ENDPOINT": f"http://{dead}",
            }[broken],
            "DATABASE_TIMEOUT_SECONDS": "1",
        }
    )
    headers, body = raw_webhook(notification)
    answer = requests.post(
        url, data=body, timeout=60, headers={**headers, "Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    )
    assert answer.status_code == 503 and answer.headers["Retry-After"]
    assert _file_status(env["DATABASE_URL"], batch_id) == "PENDING"  # nothing failed by mistake
    assert _deliver_until_handled(spawn(), raw_webhook, notification) == 204
    assert _count(env["DATABASE_URL"], ticker) == 9
    assert _state(urls, batch_id)["status"] == "COMPLETED"


def test_redis_flushed_mid_batch_status_is_rebuilt_exactly(
    stack: tuple[dict[str, str], dict[str, str]],
) -> None:
    import redis

    env, urls = stack
    names = [f"FLUSH{i}.csv" for i in range(6)]
    batch = presign_batch(urls, names)
    notifications = []
    for upload in batch["uploadUrls"]:
        put(upload, ohlcv_csv(None, 11))
        notifications.append(notification_for(env, upload))
    for notification in notifications[:3]:
        _deliver_until_handled(urls["process-file"], raw_webhook, notification)
    client = redis.Redis.from_url(env["REDIS_URL"])
    for key in client.scan_iter(f"{env['REDIS_KEY_PREFIX']}*"):
        client.delete(key)  # what FLUSHDB does to this run's keys
    _deliver_until_handled(urls["process-file"], raw_webhook, notifications[3])
    middle = _state(urls, batch["batchId"])
    assert (middle["total"], middle["processed"], middle["rowsLoaded"]) == (6, 4, 44)
    assert middle["queue"] == {"waiting": 2, "active": 0, "completed": 4, "failed": 0}
    for notification in notifications[4:] + notifications[:2]:
        _deliver_until_handled(urls["process-file"], raw_webhook, notification)
    final = _state(urls, batch["batchId"])
    assert (final["status"], final["processed"], final["rowsLoaded"]) == ("COMPLETED", 6, 66)


def test_retry_reprocesses_only_failed_files_from_the_stored_objects(
    stack: tuple[dict[str, str], dict[str, str]],
) -> None:
    env, urls = stack
    batch = presign_batch(urls, ["RETRYOK.csv", "RETRYBAD.csv"])
    good, bad = batch["uploadUrls"]
    put(good, ohlcv_csv(None, 5))
    put(bad, b"Date;Open\n")
    for upload in (good, bad):
        _deliver_until_handled(urls["process-file"], raw_webhook, notification_for(env, upload))
    assert _state(urls, batch["batchId"])["status"] == "PARTIAL"
    put(bad, ohlcv_csv(None, 7))  # the admin fixes the object in place
    retried = requests.post(
        f"{urls['status']}/batch/{batch['batchId']}/retry", headers=AUTH, timeout=30
    )
    assert retried.status_code == 202 and retried.json()["data"]["retried"] == 1
    _wait_for(lambda: _state(urls, batch["batchId"])["status"] == "COMPLETED", "retry")
    state = _state(urls, batch["batchId"])
    assert (state["rowsLoaded"], state["failed"]) == (12, 0)


def test_reconcile_command_finishes_every_batch(
    stack: tuple[dict[str, str], dict[str, str]],
) -> None:
    import json
    import subprocess
    import sys

    from tests.helpers import ROOT

    env, urls = stack
    batch = presign_batch(urls, ["RECLAND.csv", "RECNEVER.csv"])
    put(batch["uploadUrls"][0], ohlcv_csv(None, 4))  # its event is lost; the other never comes
    with psycopg.connect(env["DATABASE_URL"]) as conn:  # the upload URLs have expired
        conn.execute(
            "UPDATE ingest_batches SET expires_at = now() - interval '1 minute' WHERE id = %s",
            (batch["batchId"],),
        )
    ran = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "reconcile")],
        check=True,
        env={**env, "PROCESS_FILE_URL": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    counts = json.loads(ran.stdout.strip().splitlines()[-1])
    assert counts["processed"] >= 1 and counts["never_uploaded"] >= 1
    state = _state(urls, batch["batchId"])
    assert state["status"] == "PARTIAL" and state["rowsLoaded"] == 4
    assert "never uploaded" in state["files"][1]["error"]


def test_two_worker_processes_on_shared_tickers(
    stack: tuple[dict[str, str], dict[str, str]], spawn: Any
) -> None:
    env, urls = stack
    url = spawn(WORKERS="2", THREADS="4")
    tickers = ["WKA", "WKB", "WKC"]
    notifications = []
    for n in range(8):
        order = tickers if n % 2 else tickers[::-1]
        lines = ["Date,Ticker,Open,High,Low,Close"] + [
            f"2022-02-{day:02d},{t},5,9,1,{n + 2}" for t in order for day in range(1, 29)
        ]
        _, notification = _upload(env, urls, f"WK{n}.csv", ("\n".join(lines) + "\n").encode())
        notifications.append(notification)
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda pair: _deliver_until_handled(url, FORMS[pair[0] % 3], pair[1]),
                enumerate(notifications),
            )
        )
    assert answers == [204] * 8
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        rows = conn.execute(
            "SELECT t.symbol, count(*), count(DISTINCT close) FROM seasonality_data d JOIN"
            " tickers t ON t.id = d.ticker_id WHERE t.symbol LIKE 'WK_' GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert rows == [(t, 28, 1) for t in tickers]
    with psycopg.connect(env["DATABASE_URL"]) as conn:  # the last upload (WK7) won everywhere
        closes = conn.execute(
            "SELECT DISTINCT close FROM seasonality_data d JOIN tickers t"
            " ON t.id = d.ticker_id WHERE t.symbol LIKE 'WK_'"
        ).fetchall()
    assert [str(c) for (c,) in closes] == ["9"]


def _peak_rss_bytes(pid: int) -> int:
    import psutil

    peaks = []
    for process in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        status = Path(f"/proc/{process.pid}/status").read_text()
        peaks += [
            int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM:")
        ]
    return max(peaks)


def test_a_million_row_file_loads_with_bounded_memory(
    stack: tuple[dict[str, str], dict[str, str]], tmp_path: Path
) -> None:
    env, urls = stack
    body = multi_ticker_csv("MEGA", 500, 2000)
    batch_id, notification = _upload(env, urls, "MEGA.csv", body)
    port = free_port()
    process = localstack.spawn_function("process-file", port, env, tmp_path)
    try:
        url = localstack.wait_healthy(process, port, "process-file") + "/"
        assert _deliver_until_handled(url, raw_webhook, notification) == 204
        peak = _peak_rss_bytes(process.pid)
    finally:
        localstack.stop(process)
    state = _state(urls, batch_id)
    assert (state["status"], state["rowsLoaded"]) == ("COMPLETED", 1_000_000)
    # DUCKDB_MEMORY_LIMIT (160MB) spills beyond it; the interpreter and libraries are ~100 MB
    assert peak < 400 * 1024 * 1024, f"peak RSS {peak / 2**20:.0f} MiB"
