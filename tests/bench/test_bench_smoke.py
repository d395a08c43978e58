"""scripts/bench (devstack.bench) end to end at --quick sizes: every scenario measured and
reported with its target (no timings are asserted), and the run's databases and Redis keys
gone afterwards."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from devstack import ROOT
from shared.settings import Settings

pytestmark = pytest.mark.e2e
FILES, ROWS, REPEAT = 4, 200, 1


def _numbers(value: Any) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [value]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []


def test_quick_bench_reports_every_scenario(tmp_path: Path) -> None:
    # GIVEN the test servers (the bench makes its own databases there) and no S3 endpoint
    admin = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"test-bench:{secrets.token_hex(6)}:"
    settings = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k not in settings}
    env.update(DATABASE_URL=admin, REDIS_URL=redis_url, REDIS_KEY_PREFIX=prefix)
    output = tmp_path / "bench.json"

    # WHEN the quick bench runs (its chain on one fresh database)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "devstack.bench",
            "--quick",
            "--repeat",
            str(REPEAT),
            "--json",
            str(output),
            "--log-dir",
            str(tmp_path / "logs"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )

    # THEN it reports every scenario with sane numbers and the batch's row counts
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "(a) raw COPY" in done.stdout and "(l) status" in done.stdout
    report = json.loads(output.read_text())
    s = report["scenarios"]
    assert sorted(s) == list("abcdefghijklm")
    assert all(n >= 0 for n in _numbers(s) if n is not None)
    assert s["a"]["rows"] == s["c"]["rows"] == s["d"]["rows"] == FILES * ROWS
    assert s["b"]["rows"] == s["b"]["files"] * ROWS
    assert s["e"]["rows"] == FILES * (ROWS + 1)
    for key in "abcde":
        assert s[key]["median_seconds"] > 0 and s[key]["rows_per_second"] > 0
        assert len(s[key]["samples_seconds"]) == REPEAT
        assert s[key]["cpu_seconds"]["bench"] >= 0 and "postgres" in s[key]["cpu_seconds"]
    for key, rows in (("c", FILES * ROWS), ("d", FILES * ROWS), ("e", FILES * (ROWS + 1))):
        assert s[key]["rows_loaded"] == rows and s[key]["rows_loaded_ok"]
    assert [t["n_tup_ins"] for t in s["c"]["tuples"]] == [FILES * ROWS] * REPEAT
    assert s["d"]["tuples_max"]["n_tup_ins"] == 0
    assert [t["n_tup_ins"] for t in s["e"]["tuples"]] == [FILES] * REPEAT
    assert s["f"]["rows"] == 5000 and len(s["f"]["samples_seconds"]) == REPEAT
    assert s["f"]["cpu_seconds"]["process-file"] > 0
    for mode in ("closed_loop", "paced", "paced_revalidating"):
        assert s["g"][mode]["requests"] > 0 and s["g"][mode]["p99_ms"] >= s["g"][mode]["p50_ms"]
        assert s["g"][mode]["errors"] == 0
    # the batch is final: a revalidating poller's answers after its first are all 304
    revalidating = s["g"]["paced_revalidating"]
    assert revalidating["not_modified"] == revalidating["requests"] - revalidating["pollers"]
    assert sorted(int(k) for k in s["h"] if k != "cpu_seconds") == [10, 20]
    assert s["i"]["rows_loaded"] == s["i"]["rows"] == 20_000 and s["i"]["peak_vmhwm_mb"] > 0
    # (j) a batch through freshly started functions, against a COPY of its rows
    assert s["j"]["files"] == FILES and s["j"]["rows"] == FILES * ROWS and s["j"]["rows_loaded_ok"]
    assert len(s["j"]["samples_seconds"]) == REPEAT and s["j"]["ratio_to_copy"] > 0
    # (k) the fill, each run on it with its ratio to the empty table's, the plans at each size
    k = s["k"]
    assert k["fill"]["rows"] == 20_000
    for part, rows in (("fresh_empty", ROWS), ("d_stale", ROWS), ("e_stale", ROWS + 1)):
        assert k[part]["rows"] == k[part]["rows_loaded"] == FILES * rows
    assert k["d_analyzed"]["rows_loaded"] == FILES * (ROWS + 1)
    assert k["e_analyzed"]["rows_loaded"] == FILES * (ROWS + 2)
    assert k["d_stale"]["tuples"]["rows_written"] == 0
    assert k["e_stale"]["tuples"]["rows_written"] == FILES
    assert all(k[p]["vs_empty"] > 0 for p in ("d_stale", "e_stale", "d_analyzed", "e_analyzed"))
    for size in ("explain_empty", "explain_stale", "explain_analyzed"):
        assert sorted(k[size]) == ["delta", "identical", "new"]
        assert k[size]["identical"]["staged_in"] == "ingest_stage"
        for case in k[size].values():
            assert case["plans"] and all(p["plan"] for p in case["plans"])
            assert "_cover" in {p["statement"] for p in case["plans"]}
    # (l) the status of a finished batch, full and (where status answers ETag) as a 304
    assert s["l"]["files"] == 20 and s["l"]["full"]["status"] == 200
    assert s["l"]["full"]["requests"] == 20 and s["l"]["response_bytes"] > 0
    assert s["l"]["not_modified"] is None or s["l"]["not_modified"]["status"] == 304
    # (m) the batch and its delta with the plausibility checks on and off, in turns
    m = s["m"]
    for part, rows in (("fresh", ROWS), ("delta", ROWS + 1)):
        for mode in ("on", "off"):
            assert m[f"{part}_{mode}"]["rows"] == FILES * rows
            assert m[f"{part}_{mode}"]["rows_loaded_ok"]
            assert len(m[f"{part}_{mode}"]["samples_seconds"]) == REPEAT
        assert m[f"{part}_slowdown"] > 0
    assert set(report["targets"]) == set("cdefghijklm")
    assert all(isinstance(t["pass"], bool) for t in report["targets"].values())
    assert {"nproc", "memory_bytes", "postgresql", "duckdb"} <= set(report["machine"])

    # AND it leaves nothing behind: its databases and Redis keys are gone
    with psycopg.connect(admin, autocommit=True) as conn:
        left = conn.execute(
            "SELECT datname FROM pg_database WHERE datname = ANY(%s)", (report["run"]["databases"],)
        ).fetchall()
    # raw, per repetition a chain, a cold batch and (m)'s two stacks, the fill's
    assert len(report["run"]["databases"]) == 4 * REPEAT + 2 and left == []
    assert list(redis.Redis.from_url(redis_url).scan_iter(match=f"{prefix}*")) == []
