"""Every file reaches a final state: the file lock, duplicates, transient failures counted to a
bound, dead letters, the later upload, and final batches (real PostgreSQL, Redis and S3)."""

import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from devstack.data import ohlcv_csv
from shared import batch_view, database
from shared.clients import Clients
from shared.errors import BusyError, ConflictError, TransientError
from shared.events import ObjectCreated
from shared.keys import new_batch_id
from shared.models import FileRecord, FileSpec, PresignRequest
from shared.presign import presign
from shared.process import process_object, record_dead_letter
from shared.reconcile import reconcile
from shared.settings import Settings
from shared.status import batch_status
from tests.support.apps import put_object
from tests.support.ledger import row_versions, stored_rows

pytestmark = pytest.mark.services


def _file(clients: Clients, key: str) -> FileRecord:
    found = database.get_file(clients.pool, key)
    assert found is not None
    return found


def _landed(env: dict[str, str], ticker: str, days: int = 5, price: str = "100.25") -> str:
    key = f"uploads/{new_batch_id()}/0000_{ticker}.csv"
    put_object(env, key, ohlcv_csv(ticker, days, price=price))
    return key


def _registered(clients: Clients, key: str) -> None:
    """The ledger row an upload event creates for an object nobody presigned."""
    batch_id = key.split("/")[1]
    database.ensure_file(
        clients.pool, key, batch_id, key.rsplit("/", 1)[1], datetime.now(UTC), 10, 10**6
    )


@pytest.fixture
def tolerant(settings: Settings) -> Iterator[Clients]:
    """Clients that take any event time (to order uploads within one test) and give up
    after three transient failures."""
    built = Clients(
        settings.model_copy(update={"clock_skew_seconds": 10**9, "max_transient_attempts": 3})
    )
    yield built
    built.close()


def test_a_killed_holder_frees_its_file_at_once(
    clients: Clients, environment: dict[str, str]
) -> None:
    # GIVEN a worker process that holds a file's lock and then dies by SIGKILL
    key = _landed(environment, "KILLED")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import time, psycopg
                conn = psycopg.connect({environment["DATABASE_URL"]!r}, autocommit=True)
                conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", ({key!r},))
                print("held", flush=True)
                time.sleep(600)
            """),
        ],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
    with pytest.raises(BusyError):
        with database.file_lock(clients.lock_pool, key, 0.2):
            pass
    holder.kill()
    holder.wait()
    # WHEN the redelivered event comes, THEN it loads the file without waiting for a lease
    started = time.monotonic()
    assert process_object(clients, key) == "completed"
    assert time.monotonic() - started < 10
    assert _file(clients, key).status == "COMPLETED"


def test_twenty_copies_of_one_event_load_the_version_once(
    clients: Clients, environment: dict[str, str]
) -> None:
    key = _landed(environment, "COPIES", days=200)
    outcomes: list[str] = []

    def deliver() -> None:
        try:
            outcomes.append(process_object(clients, key))
        except BusyError:
            outcomes.append("busy")

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("completed") == 1, outcomes
    assert set(outcomes) <= {"completed", "duplicate", "busy"}
    record = _file(clients, key)
    assert record.status == "COMPLETED" and record.rows_loaded == 200
    # started once: nothing set the finished row back to PROCESSING
    with psycopg.connect(environment["DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT attempts FROM ingest_files WHERE object_key = %s", (key,)
        ).fetchone()
    assert row == (1,)


def test_a_failure_nobody_foresaw_ends_failed_after_the_bound(
    tolerant: Clients, environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = _landed(environment, "POISON")

    def broken(*_: object) -> None:
        raise ZeroDivisionError("the reader met something new")

    monkeypatch.setattr(tolerant.reader, "read", broken)
    for attempt in (1, 2):
        with pytest.raises(TransientError, match=f"attempt {attempt} of 3"):
            process_object(tolerant, key)
        assert _file(tolerant, key).status == "PENDING"
    assert process_object(tolerant, key) == "failed"
    record = _file(tolerant, key)
    assert record.status == "FAILED"
    assert "could not be processed after 3 attempts: ZeroDivisionError" in (record.error or "")
    assert process_object(tolerant, key) == "duplicate"  # the queue moves on


def test_a_new_version_starts_its_own_count(
    tolerant: Clients, environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = _landed(environment, "RECOUNT")
    monkeypatch.setattr(tolerant.reader, "read", lambda *_: 1 / 0)
    for _ in range(2):
        with pytest.raises(TransientError):
            process_object(tolerant, key)
    monkeypatch.undo()
    put_object(environment, key, ohlcv_csv("RECOUNT", 7))
    assert process_object(tolerant, key) == "completed"
    assert _file(tolerant, key).rows_loaded == 7


def test_a_dead_letter_never_overrides_a_live_load(
    clients: Clients, environment: dict[str, str]
) -> None:
    key = _landed(environment, "LIVE")
    _registered(clients, key)
    upload = ObjectCreated(environment["S3_BUCKET"], key, "", None, None)
    # a worker is loading the file (it holds the lock) when the dead letter arrives
    with database.file_lock(clients.lock_pool, key, 1):
        record_dead_letter(clients, [upload], "last answer: 503")
    assert _file(clients, key).status != "FAILED"
    assert process_object(clients, key) == "completed"
    # a dead letter for a finished file changes nothing either
    record_dead_letter(clients, [upload], "last answer: 503")
    assert _file(clients, key).status == "COMPLETED"


def test_the_later_upload_wins_when_an_identical_one_came_between(
    tolerant: Clients, environment: dict[str, str]
) -> None:
    # A, B and C hold the same ticker; C repeats A. Processed A, C, B: C is the newest.
    batch = new_batch_id()
    base = datetime.now(UTC) - timedelta(hours=1)
    versions = {"A": "100.25", "B": "200.25", "C": "100.25"}
    keys = {}
    for position, (name, price) in enumerate(versions.items()):
        keys[name] = f"uploads/{batch}/{position:04d}_{name}.csv"
        put_object(environment, keys[name], ohlcv_csv("ACB", 5, price=price))
    for name, minutes in (("A", 1), ("C", 3), ("B", 2)):
        stat = tolerant.store.stat_object(environment["S3_BUCKET"], keys[name])
        etag = (stat.etag or "").strip('"')
        outcome = process_object(tolerant, keys[name], etag, base + timedelta(minutes=minutes))
        assert outcome == "completed"
    closes = [str(row[4]) for row in stored_rows(environment["DATABASE_URL"], "ACB")]
    assert closes == ["100.25", "100.26", "100.27", "100.28", "100.29"]
    # C rewrote nothing: its rows equal A's, the coverage records that C holds them
    with psycopg.connect(environment["DATABASE_URL"]) as conn:
        covered = conn.execute(
            "SELECT count(*) FROM ingest_coverage WHERE object_key = ANY(%s)",
            (list(keys.values()),),
        ).fetchone()
    assert covered == (3,)


def test_an_event_time_in_the_future_is_not_believed(
    clients: Clients, environment: dict[str, str]
) -> None:
    key = _landed(environment, "FUTURE")
    stat = clients.store.stat_object(environment["S3_BUCKET"], key)
    etag = (stat.etag or "").strip('"')
    assert process_object(clients, key, etag, datetime(2999, 1, 1, tzinfo=UTC)) == "completed"
    with psycopg.connect(environment["DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT seen_at FROM ingest_files WHERE object_key = %s", (key,)
        ).fetchone()
    assert row is not None and row[0] <= datetime.now(UTC)
    assert stat.last_modified is not None and abs(row[0] - stat.last_modified) < timedelta(
        seconds=1
    )


def test_the_first_seen_time_of_a_version_is_kept(
    tolerant: Clients, environment: dict[str, str]
) -> None:
    key = _landed(environment, "SEEN")
    _registered(tolerant, key)
    first = datetime.now(UTC) - timedelta(minutes=5)
    assert database.version_time(tolerant.pool, key, "e1", first) == first
    assert database.version_time(tolerant.pool, key, "e1", first + timedelta(minutes=1)) == first
    later = first + timedelta(minutes=2)
    assert database.version_time(tolerant.pool, key, "e2", later) == later


def test_a_final_presigned_batch_takes_no_new_files(
    clients: Clients, environment: dict[str, str]
) -> None:
    answer = presign(clients, PresignRequest(files=[FileSpec(name="FINAL.csv")]))
    batch_id, key = answer["batchId"], answer["uploadUrls"][0]["objectKey"]
    put_object(environment, key, ohlcv_csv("FINAL", 3))
    assert process_object(clients, key) == "completed"
    # an object nobody presigned does not turn the finished batch PARTIAL
    stranger = f"uploads/{batch_id}/9999_STRANGER.csv"
    put_object(environment, stranger, ohlcv_csv("STRANGER", 3))
    assert process_object(clients, stranger) == "ignored"
    assert [f.object_key for f in database.require_batch(clients.pool, batch_id).files] == [key]
    # and presign adds nothing to it: the files belong in a new batch
    more = PresignRequest(files=[FileSpec(name="MORE.csv")], batchId=batch_id)
    with pytest.raises(ConflictError, match="new batch"):
        presign(clients, more)


def test_a_batch_written_straight_to_the_bucket_takes_files_as_they_come(
    clients: Clients, environment: dict[str, str]
) -> None:
    first = _landed(environment, "DIRECTA")
    assert process_object(clients, first) == "completed"
    second = first.replace("0000_DIRECTA", "0001_DIRECTB")
    put_object(environment, second, ohlcv_csv("DIRECTB", 3))
    assert process_object(clients, second) == "completed"


def test_a_view_never_loses_newer_news_to_an_older_snapshot(clients: Clients) -> None:
    prefix, batch_id = clients.settings.redis_key_prefix, new_batch_id()
    now = datetime.now(UTC)
    old = FileRecord("uploads/x/0000_A.csv", batch_id, "A.csv", "PROCESSING", revision=5)
    new = FileRecord("uploads/x/0000_A.csv", batch_id, "A.csv", "COMPLETED", revision=6)
    batch_view.put_file(clients.redis, prefix, batch_id, batch_view.entry(new))
    snapshot = database.BatchRecord(batch_id, now, now, now, [old])
    batch_view.put_batch(clients.redis, prefix, snapshot)
    view = batch_view.read_batch(clients.redis, prefix, batch_id)
    assert view is not None and [e["status"] for e in view[1]] == ["COMPLETED"]


def test_status_heals_a_view_that_missed_a_write(
    settings: Settings, environment: dict[str, str]
) -> None:
    checking = Clients(settings.model_copy(update={"view_check_seconds": 0.5}))
    try:
        key = _landed(environment, "HEAL")
        batch_id = key.split("/")[1]
        assert process_object(checking, key) == "completed"
        # GIVEN the write after the load was lost (Redis was away): the view says PROCESSING
        prefix = checking.settings.redis_key_prefix
        stale = FileRecord(key, batch_id, key.rsplit("/", 1)[1], "PROCESSING", revision=1)
        checking.redis.hset(
            f"{prefix}batch:{batch_id}:files", key, json.dumps(batch_view.entry(stale))
        )
        now = datetime.now(UTC)
        batch_view.put_batch(
            checking.redis, prefix, database.BatchRecord(batch_id, now, now, now, [])
        )
        # WHEN status is asked before and after the view is due for its check
        before = json.loads(batch_status(checking, batch_id))["status"]
        time.sleep(0.6)
        after = json.loads(batch_status(checking, batch_id))["status"]
    finally:
        checking.close()
    # THEN the ledger's word replaces the stale entry
    assert (before, after) == ("PENDING", "COMPLETED")


def test_reconcile_goes_on_past_a_failing_file(
    clients: Clients, environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    grace = clients.settings.model_copy(update={"event_grace_seconds": 0})
    sweeping = Clients(grace)
    try:
        first, second = _landed(environment, "SWEEPA"), _landed(environment, "SWEEPB")
        for key in (first, second):
            database.ensure_file(
                sweeping.pool, key, key.split("/")[1], key, datetime.now(UTC), 10, 10**6
            )
        real_stat = sweeping.store.stat_object

        def stat(bucket: str, key: str, *args: object, **kwargs: object) -> object:
            if key == first:
                raise RuntimeError("this object cannot be read")
            return real_stat(bucket, key, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(sweeping.store, "stat_object", stat)
        result = reconcile(sweeping)
    finally:
        sweeping.close()
    assert first in result.errors and "cannot be read" in result.errors[first]
    assert _file(clients, second).status == "COMPLETED"


def _event_at(clients: Clients, environment: dict[str, str], key: str, when: datetime) -> str:
    """Process the object at `key` as its upload event dated `when` would; the outcome."""
    stat = clients.store.stat_object(environment["S3_BUCKET"], key)
    return process_object(clients, key, (stat.etag or "").strip('"'), when)


def test_content_already_loaded_completes_without_reading_or_writing_a_row(
    tolerant: Clients, environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a file loaded once
    body = ohlcv_csv("SAME", 40)
    first = f"uploads/{new_batch_id()}/0000_SAME.csv"
    put_object(environment, first, body)
    base = datetime.now(UTC) - timedelta(hours=1)
    assert _event_at(tolerant, environment, first, base) == "completed"
    before = row_versions(environment["DATABASE_URL"], "SAME")
    # WHEN the same bytes arrive again in a new batch (and the reader would fail if asked)
    again = f"uploads/{new_batch_id()}/0000_SAME.csv"
    put_object(environment, again, body)
    monkeypatch.setattr(tolerant.reader, "read", lambda *_: 1 / 0)
    assert _event_at(tolerant, environment, again, base + timedelta(minutes=1)) == "completed"
    # THEN it counts as loaded, no row was rewritten, and its own coverage is recorded
    record = _file(tolerant, again)
    assert (record.status, record.rows_loaded, record.tickers) == ("COMPLETED", 40, ["SAME"])
    assert row_versions(environment["DATABASE_URL"], "SAME") == before
    with psycopg.connect(environment["DATABASE_URL"]) as conn:
        covered = conn.execute(
            "SELECT count(*) FROM ingest_coverage WHERE object_key = %s", (again,)
        ).fetchone()
    assert covered == (1,)


def test_the_shortcut_never_skips_a_newer_change(
    tolerant: Clients, environment: dict[str, str]
) -> None:
    # A (t1), then B (t2) changes the rows, then A's bytes again (t3): A's values must return
    base = datetime.now(UTC) - timedelta(hours=1)
    keys = {name: f"uploads/{new_batch_id()}/0000_NEWER.csv" for name in "ABC"}
    put_object(environment, keys["A"], ohlcv_csv("NEWER", 5, price="100.25"))
    put_object(environment, keys["B"], ohlcv_csv("NEWER", 5, price="300.25"))
    put_object(environment, keys["C"], ohlcv_csv("NEWER", 5, price="100.25"))
    for minutes, name in ((1, "A"), (2, "B"), (3, "C")):
        at = base + timedelta(minutes=minutes)
        assert _event_at(tolerant, environment, keys[name], at) == "completed"
    closes = [str(row[4]) for row in stored_rows(environment["DATABASE_URL"], "NEWER")]
    assert closes == ["100.25", "100.26", "100.27", "100.28", "100.29"]


def test_an_older_upload_loses_to_content_completed_by_the_shortcut(
    tolerant: Clients, environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A (t1) loads; A' (same bytes, t3) completes by the shortcut; B (t2) comes last: A's stays
    base = datetime.now(UTC) - timedelta(hours=1)
    keys = {name: f"uploads/{new_batch_id()}/0000_SHORT.csv" for name in ("A", "A2", "B")}
    put_object(environment, keys["A"], ohlcv_csv("SHORT", 5, price="100.25"))
    put_object(environment, keys["A2"], ohlcv_csv("SHORT", 5, price="100.25"))
    put_object(environment, keys["B"], ohlcv_csv("SHORT", 5, price="300.25"))
    assert _event_at(tolerant, environment, keys["A"], base + timedelta(minutes=1)) == "completed"
    with monkeypatch.context() as patched:  # A' is never read
        patched.setattr(tolerant.reader, "read", lambda *_: 1 / 0)
        at = base + timedelta(minutes=3)
        assert _event_at(tolerant, environment, keys["A2"], at) == "completed"
    assert _event_at(tolerant, environment, keys["B"], base + timedelta(minutes=2)) == "completed"
    closes = [str(row[4]) for row in stored_rows(environment["DATABASE_URL"], "SHORT")]
    assert closes == ["100.25", "100.26", "100.27", "100.28", "100.29"]


def test_a_load_never_waits_for_its_own_lock_connection(
    settings: Settings, environment: dict[str, str]
) -> None:
    # one connection per pool: the file lock's connection comes from a pool of its own, so the
    # load still gets the connection it needs (with one shared pool this waited and timed out)
    tight = Clients(
        settings.model_copy(update={"database_pool_size": 1, "database_timeout_seconds": 3})
    )
    try:
        key = _landed(environment, "TIGHT")
        assert process_object(tight, key) == "completed"
        assert _file(tight, key).rows_loaded == 5
    finally:
        tight.close()


def test_objects_nobody_presigned_open_a_bounded_number_of_batches(
    settings: Settings, environment: dict[str, str]
) -> None:
    # GIVEN a deployment that opens no batch for objects nobody presigned
    bounded = Clients(settings.model_copy(update={"max_unpresigned_batches_per_hour": 0}))
    try:
        key = _landed(environment, "NOBODY")
        # WHEN an event names an object in a batch nobody presigned
        outcome = process_object(bounded, key)
        # THEN it is ignored without a ledger row; an existing batch still takes its files
        assert outcome == "ignored" and database.get_file(bounded.pool, key) is None
        answer = presign(bounded, PresignRequest(files=[FileSpec(name="KNOWN.csv")]))
        put_object(environment, answer["uploadUrls"][0]["objectKey"], ohlcv_csv("KNOWN", 2))
        assert process_object(bounded, answer["uploadUrls"][0]["objectKey"]) == "completed"
    finally:
        bounded.close()


def test_files_of_one_batch_completed_by_the_shortcut_at_once_never_deadlock(
    settings: Settings, environment: dict[str, str]
) -> None:
    # the last files of a batch, all already loaded once, finishing at the same moment
    strict = Clients(settings.model_copy(update={"max_transient_attempts": 1}))
    try:
        names = [f"DL{n}" for n in range(6)]
        bodies = {name: ohlcv_csv(name, 3) for name in names}
        for _ in range(4):
            answer = presign(
                strict, PresignRequest(files=[FileSpec(name=f"{n}.csv") for n in names])
            )
            targets = [u["objectKey"] for u in answer["uploadUrls"]]
            for key, name in zip(targets, names, strict=True):
                put_object(environment, key, bodies[name])
            outcomes: list[str] = []
            threads = [
                threading.Thread(
                    target=lambda k=key, o=outcomes: o.append(process_object(strict, k))
                )
                for key in targets
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(outcomes) == ["completed"] * len(names)
    finally:
        strict.close()
