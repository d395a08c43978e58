"""Liveness under chaos: a 200-file batch while process-file workers are SIGKILLed every few
seconds, PostgreSQL connections are terminated and the Redis view is deleted. Afterwards the
table holds exactly the expected rows (md5), every file counts once and the batch is COMPLETED.

The same batch runs once without chaos, so the two wall times can be compared (printed)."""

import hashlib
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from devstack.client import Backoff, Client
from devstack.data import ohlcv_csv
from devstack.processes import Process, free_port, kill, spawn_function, stop
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e
FILES, DAYS, WORKERS, IN_FLIGHT = 200, 60, 2, 4
SENDER = Backoff(first=0.2, cap=1.0, deadline=300)  # a MinIO queue_dir: again until 2xx


class Workers:
    """process-file workers on fixed ports, each replaced by a new process when killed."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env, self.log_dir = env, log_dir
        self.ports = [free_port() for _ in range(WORKERS)]
        self.processes: list[Process] = [self._start(port) for port in self.ports]
        self.kills = 0

    def _start(self, port: int) -> Process:
        return spawn_function("process-file", port, self.env, self.log_dir, f"worker-{port}.log")

    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}/" for port in self.ports]

    def kill_one(self, rng: random.Random) -> None:
        index = rng.randrange(len(self.processes))
        kill(self.processes[index])
        self.kills += 1
        self.processes[index] = self._start(self.ports[index])

    def stop(self) -> None:
        for process in self.processes:
            stop(process)


class Chaos(threading.Thread):
    """Kill a worker every 2 s, terminate every PostgreSQL connection of the test database
    every 3 s and delete the batch views every 5 s, until stopped."""

    def __init__(self, workers: Workers, env: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.workers, self.env = workers, env
        self.halt = threading.Event()
        self.terminated = self.flushed = 0

    def run(self) -> None:
        rng = random.Random(7)
        tick = 0
        while not self.halt.wait(1.0):
            tick += 1
            if tick % 2 == 0:
                self.workers.kill_one(rng)
            if tick % 3 == 0:
                self.terminated += _terminate_connections(self.env["DATABASE_URL"])
            if tick % 5 == 0:
                self.flushed += _delete_views(self.env["REDIS_URL"], self.env["REDIS_KEY_PREFIX"])


def _terminate_connections(database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


def _delete_views(redis_url: str, prefix: str) -> int:
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}batch:*"))
    return int(client.delete(*keys)) if keys else 0


def _stored_md5(database_url: str, prefix: str) -> tuple[str, int]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT md5(coalesce(string_agg(concat_ws(',', t.symbol, d.date, d.open, d.high,"
            " d.low, d.close, d.volume, d.open_interest), E'\\n' ORDER BY t.symbol, d.date),"
            " '')), count(*) FROM seasonality_data d JOIN tickers t ON t.id = d.ticker_id"
            " WHERE t.symbol LIKE %s",
            (f"{prefix}%",),
        ).fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


def _expected_md5(files: list[tuple[str, bytes]]) -> str:
    lines = []
    for _, body in files:
        for line in body.decode().splitlines()[1:]:
            date, ticker, *numbers = line.split(",")
            lines.append((ticker, date, ",".join([ticker, date, *numbers])))
    return hashlib.md5("\n".join(text for *_, text in sorted(lines)).encode()).hexdigest()


@pytest.fixture
def workers(stack: Stack, tmp_path: Path) -> Iterator[Workers]:
    env, _ = stack
    started = Workers(env, tmp_path)
    yield started
    started.stop()


@pytest.mark.parametrize("chaos", [False, True], ids=["quiet", "chaos"])
def test_a_batch_completes_exactly_under_chaos(
    stack: Stack, client: Client, workers: Workers, chaos: bool
) -> None:
    env, _ = stack
    prefix = f"CH{int(chaos)}{random.randrange(10**6):06d}"
    files = [(f"{prefix}{i:03d}.csv", ohlcv_csv(f"{prefix}{i:03d}", DAYS)) for i in range(FILES)]
    batch, notifications = client.upload_batch(files)
    urls = workers.urls()
    disorder = Chaos(workers, env)
    started = time.monotonic()
    if chaos:
        disorder.start()

    def deliver(item: tuple[int, dict[str, Any]]) -> int:
        index, notification = item
        return client.deliver(notification, url=urls[index % WORKERS], backoff=SENDER).status

    try:
        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            answers = list(pool.map(deliver, enumerate(notifications)))
    finally:
        disorder.halt.set()
    state = client.wait(batch["batchId"], timeout=180)
    elapsed = time.monotonic() - started
    print(  # the note compares the two runs
        f"\n{'chaos' if chaos else 'quiet'}: {FILES} files in {elapsed:.1f} s; kills="
        f"{workers.kills} terminated={disorder.terminated} views deleted={disorder.flushed}"
    )
    assert answers == [204] * FILES
    assert (state["status"], state["processed"], state["failed"]) == ("COMPLETED", FILES, 0)
    assert state["rowsLoaded"] == FILES * DAYS
    assert _stored_md5(env["DATABASE_URL"], prefix) == (_expected_md5(files), FILES * DAYS)
    if chaos:
        assert workers.kills >= 2 and disorder.terminated > 0
