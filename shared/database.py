"""Every SQL statement of the project: schema, the file ledger and the set-based load."""

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from . import keys
from .errors import (
    BusyError,
    ConflictError,
    FileRejectedError,
    NotFoundError,
    RequestError,
    TransientError,
)
from .models import (
    AttemptResult,
    BatchOutcome,
    BatchRecord,
    Composed,
    Delivery,
    FileRecord,
    NewFile,
    Recorded,
)
from .plausibility import Conflict
from .reader import ParsedFile
from .settings import Settings

COPY_CHUNK_BYTES = 1 << 20
LOCK_POLL_SECONDS = 0.25
T = TypeVar("T")
# Builds the outbox rows of a transition, inside the transaction that makes it.
Outbox = Callable[[BatchOutcome], Composed | None]
FAILED_FILES_LISTED = 100
_FILE_COLUMNS = (
    "object_key, batch_id, file_name, status, ticker_hint, etag, rows_loaded, rows_rejected,"
    " tickers, error, rejects_key, position, revision, warnings, warnings_key, series,"
    " plausibility"
)
# TCP keepalives on both ends: a worker whose node vanished loses its connection, and with it
# the file lock, within about idle + interval x count seconds.
_KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 2,
}
_SERVER_KEEPALIVE = (
    "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=2"
)


def connect_pool(settings: Settings, name: str) -> ConnectionPool:
    """A pool opened lazily: building it never blocks, the first checkout connects."""
    return ConnectionPool(
        settings.database_url,
        name=name,
        min_size=0,
        max_size=settings.database_pool_size,
        timeout=settings.database_timeout_seconds,
        # a connection PostgreSQL has dropped (a restart, pg_terminate_backend) is noticed
        # when it is handed out, not by the statement that then fails
        check=ConnectionPool.check_connection,
        kwargs={
            "options": f"-c search_path={settings.database_schema} {_SERVER_KEEPALIVE}",
            "connect_timeout": max(1, int(settings.database_timeout_seconds)),
            **_KEEPALIVE,
        },
        open=True,
    )


@contextmanager
def transaction(pool: ConnectionPool) -> Iterator[psycopg.Connection[Any]]:
    """A connection inside one transaction; connectivity trouble becomes TransientError."""
    try:
        with pool.connection() as conn, conn.transaction():
            yield conn
    except (psycopg.OperationalError, PoolTimeout) as error:
        raise TransientError(f"PostgreSQL unavailable: {type(error).__name__}") from error


def migrate(conn: psycopg.Connection[Any], schema: str) -> None:
    """Apply schema.sql; the advisory lock makes concurrent runs wait for each other."""
    ddl = files("shared").joinpath("schema.sql").read_text()
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('seasonality-ingest:migrate'))")
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        conn.execute(f'SET LOCAL search_path TO "{schema}"')
        conn.execute(ddl)


def add_files(
    pool: ConnectionPool,
    batch_id: str,
    new_batch: bool,
    owner: str | None,
    expires_at: datetime,
    max_files: int,
    new_file: Callable[[int, T], NewFile],
    specs: Sequence[T],
    notify: dict[str, list[str]] | None = None,
) -> BatchRecord:
    """Add files to a batch (created when new, with its own notification recipients) in one
    transaction; nothing is created on error. Returns the batch with just the files added."""
    with transaction(pool) as conn:
        if new_batch:
            conn.execute(
                "INSERT INTO ingest_batches (id, expires_at, presigned, owner, notify)"
                " VALUES (%s, %s, true, %s, %s)",
                (batch_id, expires_at, owner, Jsonb(notify) if notify else None),
            )
        row = conn.execute(
            "SELECT file_count, created_at, owner FROM ingest_batches WHERE id = %s FOR UPDATE",
            (batch_id,),
        ).fetchone()
        if row is None:
            raise NotFoundError("BATCH_NOT_FOUND", f"Batch {batch_id} does not exist.")
        first, created_at, batch_owner = int(row[0]), row[1], row[2]
        if not new_batch and _is_final(conn, batch_id):
            raise ConflictError(
                "BATCH_FINAL",
                f"Batch {batch_id} is finished; upload the files as a new batch.",
            )
        if first + len(specs) > max_files:
            raise RequestError("TOO_MANY_FILES", f"A batch holds at most {max_files} files.")
        created = [new_file(first + i, spec) for i, spec in enumerate(specs)]
        expires = conn.execute(
            "UPDATE ingest_batches SET file_count = %s, expires_at = greatest(expires_at, %s)"
            " WHERE id = %s RETURNING expires_at",
            (first + len(specs), expires_at, batch_id),
        ).fetchone()
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO ingest_files (object_key, batch_id, position, file_name, ticker_hint,"
                " declared_size, plausibility) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        f.object_key,
                        batch_id,
                        first + i,
                        f.file_name,
                        f.ticker_hint,
                        f.declared_size,
                        f.plausibility,
                    )
                    for i, f in enumerate(created)
                ],
            )
    return BatchRecord(
        batch_id=batch_id,
        created_at=created_at,
        updated_at=created_at,
        expires_at=expires[0] if expires else expires_at,
        owner=batch_owner,
        files=[
            FileRecord(
                object_key=f.object_key,
                batch_id=batch_id,
                file_name=f.file_name,
                status="PENDING",
                ticker_hint=f.ticker_hint,
                position=first + i,
                plausibility=f.plausibility,
            )
            for i, f in enumerate(created)
        ],
    )


def ensure_file(
    pool: ConnectionPool,
    object_key: str,
    batch_id: str,
    file_name: str,
    expires_at: datetime,
    max_files: int,
    max_new_batches_per_hour: int,
) -> FileRecord | None:
    """The ledger row of an object, registering objects that arrived without presign; None
    when the object may not join its batch (the batch is final, or full), or would open a
    batch beyond the hour's allowance for batches nobody presigned."""
    with transaction(pool) as conn:
        found = _file(conn, object_key)
        if found is not None:
            return found
        opened = conn.execute(
            "SELECT NOT EXISTS (SELECT 1 FROM ingest_batches WHERE id = %s)"
            " AND (SELECT count(*) FROM ingest_batches WHERE NOT presigned"
            " AND created_at > now() - interval '1 hour') >= %s",
            (batch_id, max_new_batches_per_hour),
        ).fetchone()
        if opened is None or opened[0]:
            return None
        conn.execute(
            "INSERT INTO ingest_batches (id, expires_at) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (batch_id, expires_at),
        )
        if _is_final(conn, batch_id, presigned_only=True):
            return None
        conn.execute(
            "WITH slot AS (UPDATE ingest_batches SET file_count = file_count + 1"
            " WHERE id = %s AND file_count < %s RETURNING file_count - 1 AS position)"
            " INSERT INTO ingest_files (object_key, batch_id, position, file_name)"
            " SELECT %s, %s, position, %s FROM slot ON CONFLICT DO NOTHING",
            (batch_id, max_files, object_key, batch_id, file_name),
        )
        return _file(conn, object_key)


def _is_final(conn: psycopg.Connection[Any], batch_id: str, presigned_only: bool = False) -> bool:
    """Whether the batch has files and every one of them is finished (with presigned_only:
    and the batch was made by presign; a batch of objects written straight to the bucket
    takes files as they come)."""
    row = conn.execute(
        "SELECT count(*) > 0 AND bool_and(status IN ('COMPLETED', 'FAILED'))"
        " AND (NOT %s OR (SELECT presigned FROM ingest_batches WHERE id = %s))"
        " FROM ingest_files WHERE batch_id = %s",
        (presigned_only, batch_id, batch_id),
    ).fetchone()
    return bool(row and row[0])


def version_time(pool: ConnectionPool, object_key: str, etag: str, candidate: datetime) -> datetime:
    """The upload time of this object version: the first one offered is kept, so every event,
    retry and reconcile of the version stamps its rows alike."""
    with transaction(pool) as conn:
        row = conn.execute(
            "WITH seen AS (UPDATE ingest_files SET seen_etag = %(etag)s, seen_at = %(at)s"
            " WHERE object_key = %(key)s AND seen_etag IS DISTINCT FROM %(etag)s"
            " RETURNING seen_at)"
            " SELECT seen_at FROM seen UNION ALL SELECT seen_at FROM ingest_files"
            " WHERE object_key = %(key)s AND seen_etag = %(etag)s LIMIT 1",
            {"key": object_key, "etag": etag, "at": candidate},
        ).fetchone()
    return row[0] if row and row[0] else candidate


@contextmanager
def file_lock(pool: ConnectionPool, object_key: str, wait_seconds: float) -> Iterator[None]:
    """Hold the file for this process: a session advisory lock on a connection of its own.
    PostgreSQL frees it when that connection ends, however the holder died; BusyError when
    another holder keeps it longer than wait_seconds. A waiter holds no connection between
    its tries, so duplicates waiting for a long load never starve the pool it needs."""
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            with pool.connection() as conn:
                if _try_lock(conn, object_key):
                    try:
                        yield
                    finally:
                        _unlock(conn, object_key)
                    return
            if time.monotonic() >= deadline:
                raise BusyError(f"{object_key} is being processed by another worker")
            time.sleep(LOCK_POLL_SECONDS)
    except (psycopg.OperationalError, PoolTimeout) as error:
        raise TransientError(f"PostgreSQL unavailable: {type(error).__name__}") from error


def _try_lock(conn: psycopg.Connection[Any], object_key: str) -> bool:
    with conn.transaction():
        row = conn.execute(
            "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (object_key,)
        ).fetchone()
    return bool(row and row[0])


def _unlock(conn: psycopg.Connection[Any], object_key: str) -> None:
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (object_key,))
    except psycopg.Error:  # the connection is gone, and the lock with it
        pass


def start_processing(pool: ConnectionPool, object_key: str, etag: str) -> FileRecord | None:
    """Mark the file PROCESSING (under its lock); None when this version is already finished."""
    with transaction(pool) as conn, conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "UPDATE ingest_files SET status = 'PROCESSING', started_at = now(),"
            " attempts = attempts + 1, updated_at = now() WHERE object_key = %s"
            " AND NOT (status IN ('COMPLETED', 'FAILED') AND etag IS NOT DISTINCT FROM %s)"
            f" RETURNING {_FILE_COLUMNS}",
            (object_key, etag),
        ).fetchone()
    return FileRecord(**row) if row else None


def record_transient(pool: ConnectionPool, object_key: str, etag: str) -> int:
    """Count a transient failure of this object version and put the file back to PENDING;
    returns how many this version has had."""
    with transaction(pool) as conn:
        row = conn.execute(
            "UPDATE ingest_files SET status = 'PENDING', updated_at = now(),"
            " transient_failures = CASE WHEN transient_etag IS NOT DISTINCT FROM %(etag)s"
            " THEN transient_failures + 1 ELSE 1 END, transient_etag = %(etag)s"
            " WHERE object_key = %(key)s AND status = 'PROCESSING' RETURNING transient_failures",
            {"key": object_key, "etag": etag},
        ).fetchone()
    return int(row[0]) if row else 0


def ticker_ids(pool: ConnectionPool, symbols: list[str]) -> dict[str, int]:
    """Ids of the symbols, created where new (in sorted order: no deadlocks between workers).

    Committed on its own: a ticker without rows is harmless, and the load transaction then
    takes no lock on the shared tickers table."""
    with transaction(pool) as conn:
        conn.execute(
            "INSERT INTO tickers (symbol) SELECT s FROM unnest(%s::text[]) s ORDER BY s"
            " ON CONFLICT (symbol) DO NOTHING",
            (symbols,),
        )
        rows = conn.execute(
            "SELECT symbol, id FROM tickers WHERE symbol = ANY(%s)", (symbols,)
        ).fetchall()
    return {symbol: ticker_id for symbol, ticker_id in rows}


def load_file(
    pool: ConnectionPool,
    record: FileRecord,
    etag: str,
    uploaded_at: datetime,
    parsed: ParsedFile,
    rejects_key: str | None,
    outbox: Outbox | None = None,
    content_key: str | None = None,
    warnings_key: str | None = None,
    report_conflicts: Callable[[list[Conflict]], str | None] | None = None,
) -> Recorded | None:
    """Load a parsed file all or nothing, and settle its batch in the same transaction; None
    when this version was already finished (or its batch was reverted). When rows of it
    conflict with another file of the batch, they count as CONFLICT warnings and
    `report_conflicts` stores the warnings CSV that lists them (its key replaces
    warnings_key), inside the transaction."""
    try:
        with transaction(pool) as conn:
            # The claim is the conditional write that makes redelivery harmless: a concurrent
            # duplicate blocks on this row and then finds it finished.
            if not _claim(conn, record.object_key, etag):
                return None
            _lock_tickers(conn, parsed.ticker_ids)
            if not _begin_load(conn, record, etag, uploaded_at):
                return None  # its batch was reverted: it takes no rows any more
            conflicts: list[Conflict] = []
            holder = _insert_rows(
                conn,
                parsed,
                lambda: conflicts.extend(_conflicts(conn, record, uploaded_at, parsed)),
            )
            _cover(conn, holder, record.object_key, etag, uploaded_at, parsed)
            warnings = parsed.warnings
            if conflicts:
                warnings = {**warnings, "CONFLICT": len(conflicts)}
                if report_conflicts is not None:
                    warnings_key = report_conflicts(conflicts)
            conn.execute(
                "UPDATE ingest_files SET status = 'COMPLETED', etag = %s, uploaded_at = %s,"
                " rows_loaded = %s, rows_rejected = %s, tickers = %s, error = NULL,"
                " rejects_key = %s, content_key = %s, warnings = %s, warnings_key = %s,"
                " series = %s, finished_at = now(), updated_at = now() WHERE object_key = %s",
                (
                    etag,
                    uploaded_at,
                    parsed.rows_loaded,
                    parsed.rows_rejected,
                    parsed.tickers,
                    rejects_key,
                    content_key,
                    Jsonb(warnings),
                    warnings_key,
                    Jsonb(parsed.series) if parsed.series else None,
                    record.object_key,
                ),
            )
            return Recorded(_settle(conn, record.batch_id, outbox))
    except psycopg.errors.DataError as error:  # a value the reader let through; not retryable
        cause = error.diag.message_primary
        raise FileRejectedError(f"A value cannot be stored: {cause}") from error


def load_identical(
    pool: ConnectionPool,
    record: FileRecord,
    etag: str,
    uploaded_at: datetime,
    content_key: str,
    outbox: Outbox | None = None,
) -> Recorded | None | Literal[False]:
    """Complete a version whose content a completed version already loaded, without reading
    or writing a row: the stored rows are that version's as long as no newer version holds
    any of its dates. Records this version's coverage at its own time (so an older upload
    processed later still loses to it) and the first one's counts. False when no such
    version is usable (the file must be read); None when this version was already finished.
    """
    try:
        with transaction(pool) as conn:
            return _complete_identical(conn, record, etag, uploaded_at, content_key, outbox)
    except _NotIdentical:
        return False


class _NotIdentical(Exception):
    """Rolls the shortcut's transaction back: the file must be read after all."""


def _complete_identical(
    conn: psycopg.Connection[Any],
    record: FileRecord,
    etag: str,
    uploaded_at: datetime,
    content_key: str,
    outbox: Outbox | None,
) -> Recorded | None | Literal[False]:
    first = conn.execute(
        "SELECT object_key, etag, uploaded_at, rows_loaded, rows_rejected, tickers,"
        " rejects_key, warnings ? 'CONFLICT' FROM ingest_files WHERE content_key = %s"
        " AND status = 'COMPLETED' AND uploaded_at IS NOT NULL ORDER BY uploaded_at DESC LIMIT 1",
        (content_key,),
    ).fetchone()
    if first is None:
        return False
    key, first_etag, first_at, loaded, rejected, tickers, rejects_key, conflicted = first
    if conflicted:
        return False  # its CONFLICT findings were about its own batch: read this one
    held = {"key": key, "etag": first_etag, "at": first_at}
    ids = [
        row[0]
        for row in conn.execute(
            "SELECT ticker_id FROM ingest_coverage"
            " WHERE object_key = %(key)s AND etag = %(etag)s AND uploaded_at = %(at)s",
            held,
        ).fetchall()
    ]
    if not ids and loaded:
        return False  # loaded before coverage was kept: read it
    if not _claim(conn, record.object_key, etag):
        return None
    _lock_tickers(conn, ids)
    newer = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM ingest_coverage f JOIN ingest_coverage c"
        " ON c.ticker_id = f.ticker_id AND c.uploaded_at > f.uploaded_at"
        " AND c.dates && f.dates WHERE f.object_key = %(key)s AND f.etag = %(etag)s"
        " AND f.uploaded_at = %(at)s)",
        held,
    ).fetchone()
    if newer is None or newer[0]:
        raise _NotIdentical()
    mates = conn.execute(  # another file of this batch holds its dates: read it, for CONFLICT
        "SELECT EXISTS (SELECT 1 FROM ingest_coverage f JOIN ingest_coverage c"
        " ON c.ticker_id = f.ticker_id AND c.dates && f.dates WHERE f.object_key = %(key)s"
        " AND f.etag = %(etag)s AND f.uploaded_at = %(at)s"
        " AND starts_with(c.object_key, %(prefix)s) AND c.object_key <> %(mine)s)",
        {**held, "prefix": f"{keys.UPLOADS}{record.batch_id}/", "mine": record.object_key},
    ).fetchone()
    if mates is None or mates[0]:
        raise _NotIdentical()
    # its load, writing no row (a later file of the batch compares with it); as in load_file,
    # a reverted batch takes none
    if not _begin_load(conn, record, etag, uploaded_at):
        return None
    conn.execute(
        "INSERT INTO ingest_coverage (ticker_id, uploaded_at, object_key, etag, dates)"
        " SELECT ticker_id, %(now)s, %(mine)s, %(my_etag)s, dates FROM ingest_coverage"
        " WHERE object_key = %(key)s AND etag = %(etag)s AND uploaded_at = %(at)s"
        " ON CONFLICT DO NOTHING",
        {**held, "now": uploaded_at, "mine": record.object_key, "my_etag": etag},
    )
    # One update of the file's row: a second one in this transaction would make PostgreSQL
    # check its batch foreign key, share-locking the batch row that _settle then locks FOR
    # UPDATE, and two files of one batch doing so deadlock.
    conn.execute(  # with the first one's plausibility findings (the mode is part of the key)
        "UPDATE ingest_files f SET status = 'COMPLETED', etag = %(etag)s,"
        " uploaded_at = %(at)s, rows_loaded = %(loaded)s, rows_rejected = %(rejected)s,"
        " tickers = %(tickers)s, error = NULL, rejects_key = %(rejects)s,"
        " content_key = %(content)s, warnings = o.warnings, warnings_key = o.warnings_key,"
        " series = o.series, finished_at = now(), updated_at = now()"
        " FROM ingest_files o WHERE f.object_key = %(mine)s AND o.object_key = %(first)s",
        {
            "etag": etag,
            "at": uploaded_at,
            "loaded": loaded,
            "rejected": rejected,
            "tickers": tickers,
            "rejects": rejects_key,
            "content": content_key,
            "mine": record.object_key,
            "first": key,
        },
    )
    return Recorded(_settle(conn, record.batch_id, outbox))


# Loads of the same tickers run one after another: whether a row is identical to the stored
# one, and whether a newer version holds its date, is then decided on committed data only. A
# file takes a lock per ticker bucket (sorted, so loads cannot deadlock) under a shared "all
# tickers" lock; a file with more buckets than MAX_TICKER_LOCKS takes that lock exclusively
# instead, which bounds the locks any file holds.
_TICKER_LOCK_SPACE = 0x7469636B
_ALL_TICKERS = -1
TICKER_BUCKETS = 1024
MAX_TICKER_LOCKS = 32


def _lock_tickers(conn: psycopg.Connection[Any], ticker_ids: Sequence[int]) -> None:
    buckets = sorted({ticker_id % TICKER_BUCKETS for ticker_id in ticker_ids})
    if len(buckets) > MAX_TICKER_LOCKS:
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_TICKER_LOCK_SPACE, _ALL_TICKERS))
        return
    conn.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", (_TICKER_LOCK_SPACE, _ALL_TICKERS))
    for bucket in buckets:
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_TICKER_LOCK_SPACE, bucket))


def _insert_rows(
    conn: psycopg.Connection[Any],
    parsed: ParsedFile,
    staged: Callable[[], None] | None = None,
) -> str:
    """Straight COPY when none of the file's tickers has rows in its date range (a new
    history, a new day), otherwise a staged upsert that leaves unchanged rows untouched
    (`staged` runs between staging and the upsert, while the stored rows are as before the
    file). Returns the table that holds the file's rows now."""
    overlap = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM seasonality_data WHERE ticker_id = ANY(%s)"
        " AND date BETWEEN %s AND %s)",
        (parsed.ticker_ids, parsed.first_date, parsed.last_date),
    ).fetchone()
    if overlap and not overlap[0]:
        try:
            with conn.transaction():  # a savepoint: a concurrent load may have won the race
                _copy(conn, "seasonality_data", parsed.rows_csv)
                return "seasonality_data"
        except psycopg.errors.UniqueViolation:
            pass
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS ingest_stage (LIKE seasonality_data) ON COMMIT DELETE ROWS"
    )
    _copy(conn, "ingest_stage", parsed.rows_csv)
    if staged is not None:
        staged()
    # No merge join, whatever the statistics say: after an ANALYZE of a large table the planner
    # may merge on ticker_id alone and compare every staged row with every stored row of the
    # ticker (seconds per file on 20 M rows). A hash join or a nested loop reads only the
    # file's key range (the lookups below are bounded by its tickers and dates).
    conn.execute("SET LOCAL enable_mergejoin = off")
    conn.execute(
        _UPSERT,
        {"ticker_ids": parsed.ticker_ids, "first": parsed.first_date, "last": parsed.last_date},
    )
    conn.execute("SET LOCAL enable_mergejoin = on")
    return "ingest_stage"


# CONFLICT: the staged rows that another file of the batch holds with other values. Each other
# file counts with its latest loaded version (`o`); its value for a (ticker, date) is known as
# (1) the stored row its load wrote, (2) a value its load wrote that a later load replaced
# (ingest_history), or (3) the stored row its load held without rewriting it (its coverage holds
# the date, the row was written before that load and is not newer than it, and no newer version
# held the date: then the file's value was the stored one). Under the tickers' locks, so only
# committed loads are seen, and bounded by the file's tickers and dates on every table.
_CONFLICTS = """
WITH o AS (
    SELECT DISTINCT ON (object_key) id, object_key, etag, uploaded_at FROM ingest_loads
    WHERE batch_id = %(batch)s AND object_key <> %(key)s ORDER BY object_key, id DESC
), e AS (
    SELECT * FROM seasonality_data
    WHERE ticker_id = ANY(%(ids)s) AND date BETWEEN %(first)s AND %(last)s
), held AS (
    SELECT e.ticker_id, e.date, o.id AS load_id, e.open, e.high, e.low, e.close, e.volume,
        e.open_interest
    FROM e JOIN o ON o.id = e.load_id
    UNION ALL
    SELECT h.ticker_id, h.date, o.id, h.open, h.high, h.low, h.close, h.volume, h.open_interest
    FROM ingest_history h JOIN o ON o.id = h.old_load_id
    WHERE h.ticker_id = ANY(%(ids)s) AND h.date BETWEEN %(first)s AND %(last)s
    UNION ALL
    SELECT e.ticker_id, e.date, o.id, e.open, e.high, e.low, e.close, e.volume, e.open_interest
    FROM e JOIN ingest_coverage c ON c.ticker_id = e.ticker_id AND c.dates @> e.date
    JOIN o ON o.object_key = c.object_key AND o.etag = c.etag AND o.uploaded_at = c.uploaded_at
    WHERE c.ticker_id = ANY(%(ids)s) AND coalesce(e.load_id < o.id, true)
      AND e.uploaded_at <= o.uploaded_at
      AND NOT EXISTS (SELECT 1 FROM ingest_coverage n WHERE n.ticker_id = e.ticker_id
          AND n.dates @> e.date AND n.uploaded_at > o.uploaded_at)
)
SELECT DISTINCT ON (s.ticker_id, s.date) s.ticker_id, t.symbol, s.date, s.close, x.close,
    f.file_name, f.object_key, o.uploaded_at <= %(at)s
FROM ingest_stage s JOIN held x ON x.ticker_id = s.ticker_id AND x.date = s.date
JOIN o ON o.id = x.load_id
JOIN tickers t ON t.id = s.ticker_id
JOIN ingest_files f ON f.object_key = o.object_key
WHERE (s.open, s.high, s.low, s.close, s.volume, s.open_interest)
    IS DISTINCT FROM (x.open, x.high, x.low, x.close, x.volume, x.open_interest)
ORDER BY s.ticker_id, s.date, o.uploaded_at DESC, o.id DESC
"""


def _batch_overlaps(
    conn: psycopg.Connection[Any],
    record: FileRecord,
    ticker_ids: Sequence[int],
    first: Any,
    last: Any,
) -> bool:
    """Whether another file of the batch holds one of these tickers in the date range (its
    coverage; one index range a ticker)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM ingest_coverage WHERE ticker_id = ANY(%(ids)s)"
        " AND starts_with(object_key, %(prefix)s) AND object_key <> %(key)s"
        " AND dates && datemultirange(daterange(%(first)s, %(last)s, '[]')))",
        {
            "ids": list(ticker_ids),
            "prefix": f"{keys.UPLOADS}{record.batch_id}/",
            "key": record.object_key,
            "first": first,
            "last": last,
        },
    ).fetchone()
    return bool(row and row[0])


def _conflicts(
    conn: psycopg.Connection[Any],
    record: FileRecord,
    uploaded_at: datetime,
    parsed: ParsedFile,
) -> list[Conflict]:
    """The staged rows of the file that another file of its batch holds with other values;
    nothing is looked up unless another file of the batch holds its tickers and dates."""
    if not _batch_overlaps(conn, record, parsed.ticker_ids, parsed.first_date, parsed.last_date):
        return []
    rows = conn.execute(
        _CONFLICTS,
        {
            "batch": record.batch_id,
            "key": record.object_key,
            "ids": parsed.ticker_ids,
            "first": parsed.first_date,
            "last": parsed.last_date,
            "at": uploaded_at,
        },
    ).fetchall()
    return [Conflict(*row) for row in rows]


def _cover(
    conn: psycopg.Connection[Any],
    source: str,
    object_key: str,
    etag: str,
    uploaded_at: datetime,
    parsed: ParsedFile,
) -> None:
    """Record the dates this version holds per ticker (read back from the rows it stands
    for: staged, or written straight)."""
    conn.execute(
        "INSERT INTO ingest_coverage (ticker_id, uploaded_at, object_key, etag, dates)"
        " SELECT ticker_id, %(at)s, %(key)s, %(etag)s, range_agg(daterange(date, date, '[]'))"
        f" FROM {source} WHERE ticker_id = ANY(%(ids)s) AND date BETWEEN %(first)s AND %(last)s"
        "   AND uploaded_at = %(at)s"
        " GROUP BY ticker_id ON CONFLICT DO NOTHING",
        {
            "at": uploaded_at,
            "key": object_key,
            "etag": etag,
            "ids": parsed.ticker_ids,
            "first": parsed.first_date,
            "last": parsed.last_date,
        },
    )


def _copy(conn: psycopg.Connection[Any], table: str, rows_csv: Path) -> None:
    with (
        conn.cursor() as cur,
        cur.copy(
            f"COPY {table} (ticker_id, date, open, high, low, close, volume, open_interest,"
            " uploaded_at) FROM STDIN (FORMAT csv)"
        ) as copy,
        rows_csv.open("rb") as source,
    ):
        while chunk := source.read(COPY_CHUNK_BYTES):
            copy.write(chunk)


# Rows identical to the stored ones are filtered out before the insert, so an unchanged
# re-upload writes, locks and dirties nothing. The lookup is bounded by the file's tickers and
# dates: whatever plan the (often stale) statistics suggest, it reads only that key range,
# never the whole table.
_UPSERT = """
INSERT INTO seasonality_data AS d
    (ticker_id, date, open, high, low, close, volume, open_interest, uploaded_at)
SELECT s.ticker_id, s.date, s.open, s.high, s.low, s.close, s.volume, s.open_interest,
       s.uploaded_at
FROM ingest_stage s
WHERE NOT EXISTS (
    SELECT 1 FROM seasonality_data e
    WHERE e.ticker_id = s.ticker_id AND e.date = s.date
      AND e.ticker_id = ANY(%(ticker_ids)s) AND e.date BETWEEN %(first)s AND %(last)s
      AND (e.open, e.high, e.low, e.close, e.volume, e.open_interest)
        = (s.open, s.high, s.low, s.close, s.volume, s.open_interest))
  AND NOT EXISTS (
    SELECT 1 FROM ingest_coverage c
    WHERE c.ticker_id = s.ticker_id AND c.uploaded_at > s.uploaded_at AND c.dates @> s.date)
ORDER BY s.ticker_id, s.date
ON CONFLICT (ticker_id, date) DO UPDATE SET
    open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
    volume = EXCLUDED.volume, open_interest = EXCLUDED.open_interest,
    uploaded_at = EXCLUDED.uploaded_at
WHERE d.uploaded_at <= EXCLUDED.uploaded_at
"""


def fail_file(
    pool: ConnectionPool,
    record: FileRecord,
    etag: str | None,
    error: str,
    outbox: Outbox | None = None,
) -> Recorded | None:
    """Record a permanent failure and settle the batch in the same transaction; None when this
    version was already finished."""
    with transaction(pool) as conn:
        if not _claim(conn, record.object_key, etag):
            return None
        conn.execute(
            "UPDATE ingest_files SET status = 'FAILED', etag = %s, error = %s, rows_loaded = 0,"
            " rows_rejected = 0, tickers = '{}', rejects_key = NULL, finished_at = now(),"
            " updated_at = now() WHERE object_key = %s",
            (etag, error, record.object_key),
        )
        return Recorded(_settle(conn, record.batch_id, outbox))


def _claim(conn: psycopg.Connection[Any], object_key: str, etag: str | None) -> bool:
    row = conn.execute(
        "SELECT status IN ('COMPLETED', 'FAILED') AND etag IS NOT DISTINCT FROM %s"
        " FROM ingest_files WHERE object_key = %s FOR UPDATE",
        (etag, object_key),
    ).fetchone()
    return row is not None and not row[0]


def get_file(pool: ConnectionPool, object_key: str) -> FileRecord | None:
    with transaction(pool) as conn:
        return _file(conn, object_key)


def _file(conn: psycopg.Connection[Any], object_key: str) -> FileRecord | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {_FILE_COLUMNS} FROM ingest_files WHERE object_key = %s", (object_key,)
        ).fetchone()
    return FileRecord(**row) if row else None


def require_batch(pool: ConnectionPool, batch_id: str) -> BatchRecord:
    """The batch, or NotFoundError for an unknown (or malformed) batch id."""
    batch = get_batch(pool, batch_id) if keys.is_batch_id(batch_id) else None
    if batch is None:
        raise NotFoundError("BATCH_NOT_FOUND", f"Batch {batch_id[:40]!r} was not found.")
    return batch


def get_batch(pool: ConnectionPool, batch_id: str) -> BatchRecord | None:
    with transaction(pool) as conn, conn.cursor(row_factory=dict_row) as cur:
        batch = cur.execute(
            "SELECT b.id, b.created_at, b.expires_at, b.owner, b.reverted,"
            " greatest(b.created_at, max(f.updated_at))"
            " AS updated_at FROM ingest_batches b LEFT JOIN ingest_files f ON f.batch_id = b.id"
            " WHERE b.id = %s GROUP BY b.id",
            (batch_id,),
        ).fetchone()
        if batch is None:
            return None
        rows = cur.execute(
            f"SELECT {_FILE_COLUMNS} FROM ingest_files WHERE batch_id = %s ORDER BY position",
            (batch_id,),
        ).fetchall()
    return BatchRecord(
        batch_id=batch["id"],
        created_at=batch["created_at"],
        updated_at=batch["updated_at"],
        expires_at=batch["expires_at"],
        files=[FileRecord(**row) for row in rows],
        owner=batch["owner"],
        reverted=batch["reverted"],
    )


def unfinished_files(pool: ConnectionPool) -> list[tuple[FileRecord, datetime]]:
    """Files not finished, each with its batch's upload URL expiry."""
    with transaction(pool) as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {', '.join('f.' + c.strip() for c in _FILE_COLUMNS.split(','))},"
            " b.expires_at AS batch_expires_at FROM ingest_files f"
            " JOIN ingest_batches b ON b.id = f.batch_id"
            " WHERE f.status IN ('PENDING', 'PROCESSING') ORDER BY f.batch_id, f.position",
        ).fetchall()
    return [
        (
            FileRecord(**{k: v for k, v in row.items() if k != "batch_expires_at"}),
            row["batch_expires_at"],
        )
        for row in rows
    ]


def count_waiting(pool: ConnectionPool) -> int:
    """Files registered but not finished: what the processing queue still holds."""
    with transaction(pool) as conn:
        row = conn.execute(
            "SELECT count(*) FROM ingest_files WHERE status IN ('PENDING', 'PROCESSING')"
        ).fetchone()
    return int(row[0]) if row else 0


def reset_failed(pool: ConnectionPool, batch_id: str) -> list[FileRecord]:
    """Put the batch's failed files back to PENDING so they can be processed again; the batch
    is open again (its next final state is a new transition when it differs from the last)."""
    with transaction(pool) as conn, conn.cursor(row_factory=dict_row) as cur:
        # files first, then the batch: the order every file write takes them in
        rows = cur.execute(
            "UPDATE ingest_files SET status = 'PENDING', error = NULL, etag = NULL,"
            " transient_failures = 0, updated_at = now()"
            " WHERE batch_id = %s AND status = 'FAILED'"
            f" RETURNING {_FILE_COLUMNS}",
            (batch_id,),
        ).fetchall()
        if rows:
            cur.execute("UPDATE ingest_batches SET finished_at = NULL WHERE id = %s", (batch_id,))
    return [FileRecord(**row) for row in rows]


def extend_expiry(pool: ConnectionPool, batch_id: str, expires_at: datetime) -> None:
    """Fresh upload URLs were signed for the batch: its files count as never uploaded only
    once the latest of them has expired (reconcile)."""
    with transaction(pool) as conn:
        conn.execute(
            "UPDATE ingest_batches SET expires_at = greatest(expires_at, %s) WHERE id = %s",
            (expires_at, batch_id),
        )


def _settle(
    conn: psycopg.Connection[Any], batch_id: str, outbox: Outbox | None
) -> BatchOutcome | None:
    """Decide, in the file write's own transaction, whether the batch has just become final
    (or final in another state than last time): then record the transition and write its
    outbox rows. The batch row's lock orders concurrent finishers: the count below, taken
    after the lock, sees every file write committed before this one, so of two workers
    finishing the last two files exactly one sees no file left (never both, never neither)."""
    batch = conn.execute(
        "SELECT final_status, final_seq, notify, created_at FROM ingest_batches"
        " WHERE id = %s FOR UPDATE",
        (batch_id,),
    ).fetchone()
    counts = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE status = 'COMPLETED'),"
        " count(*) FILTER (WHERE status = 'FAILED'), coalesce(sum(rows_loaded), 0),"
        " coalesce(sum(rows_rejected), 0), min(started_at) FROM ingest_files WHERE batch_id = %s",
        (batch_id,),
    ).fetchone()
    assert batch is not None and counts is not None
    total, done, failed = int(counts[0]), int(counts[1]), int(counts[2])
    if total == 0 or done + failed < total:
        return None
    status = "COMPLETED" if failed == 0 else "FAILED" if done == 0 else "PARTIAL"
    if status == batch[0]:  # final again in the same state (a retry that changed nothing)
        conn.execute(
            "UPDATE ingest_batches SET finished_at = coalesce(finished_at, now()) WHERE id = %s",
            (batch_id,),
        )
        return None
    finished = conn.execute(
        "UPDATE ingest_batches SET final_status = %s, final_seq = final_seq + 1,"
        " finished_at = now() WHERE id = %s RETURNING final_seq, finished_at",
        (status, batch_id),
    ).fetchone()
    assert finished is not None
    failed_files = conn.execute(
        "SELECT file_name, object_key, error FROM ingest_files WHERE batch_id = %s"
        " AND status = 'FAILED' ORDER BY position LIMIT %s",
        (batch_id, FAILED_FILES_LISTED),
    ).fetchall()
    warnings = conn.execute(
        "SELECT w.key, sum(w.value::bigint) FROM ingest_files f, jsonb_each_text(f.warnings) w"
        " WHERE f.batch_id = %s AND f.status = 'COMPLETED' GROUP BY w.key ORDER BY w.key",
        (batch_id,),
    ).fetchall()
    outcome = BatchOutcome(
        batch_id=batch_id,
        seq=int(finished[0]),
        status=status,
        total=total,
        processed=done,
        failed=failed,
        rows_loaded=int(counts[3]),
        rows_rejected=int(counts[4]),
        created_at=batch[3],
        finished_at=finished[1],
        started_at=counts[5],
        failed_files=[(name, key, error) for name, key, error in failed_files],
        notify=dict(batch[2] or {}),
        warnings={code: int(rows) for code, rows in warnings},
    )
    composed = outbox(outcome) if outbox is not None else None
    if composed is not None and composed.deliveries:
        _write_outbox(conn, outcome, composed)
    return outcome


def _write_outbox(conn: psycopg.Connection[Any], outcome: BatchOutcome, composed: Composed) -> None:
    """One row per delivery; a target that answered 410 Gone before gets its row GONE at once.
    The unique key (batch, seq, channel, target) makes a second write of a transition a no-op."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ingest_notifications (batch_id, seq, event_id, event_type, channel,"
            " target, payload, state, last_error)"
            " SELECT %(batch)s, %(seq)s, %(event)s, %(type)s, %(channel)s, %(target)s,"
            " %(payload)s, CASE WHEN g.target IS NULL THEN 'PENDING' ELSE 'GONE' END, g.reason"
            " FROM (SELECT 1) one LEFT JOIN ingest_notify_gone g ON g.target = %(target)s"
            " ON CONFLICT (batch_id, seq, channel, target) DO NOTHING",
            [
                {
                    "batch": outcome.batch_id,
                    "seq": outcome.seq,
                    "event": composed.event_id,
                    "type": composed.event_type,
                    "channel": d.channel,
                    "target": d.target,
                    "payload": Jsonb(composed.payload),
                }
                for d in composed.deliveries
            ],
        )


_DELIVERY_COLUMNS = (
    "id, batch_id, event_id, event_type, channel, target, payload, state, attempts,"
    " next_attempt_at, last_error, created_at, sent_at, revision"
)


def deliver_due(
    pool: ConnectionPool,
    channels: Sequence[str],
    batch_id: str | None,
    send: Callable[[Delivery], AttemptResult],
) -> tuple[Delivery, AttemptResult, set[str]] | None:
    """Take one due delivery (of the batch, when given) that no other sender holds, send it
    while holding its row, and record the attempt; None when none is due. Returns the
    delivery as taken, what the attempt decided, and every batch whose deliveries changed."""
    with transaction(pool) as conn, conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM ingest_notifications"
            " WHERE state = 'PENDING' AND next_attempt_at <= now() AND channel = ANY(%s)"
            " AND (%s::text IS NULL OR batch_id = %s)"
            " ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED",
            (list(channels), batch_id, batch_id),
        ).fetchone()
        if row is None:
            return None
        delivery = Delivery(**row)
        gone = cur.execute(
            "SELECT reason FROM ingest_notify_gone WHERE target = %s", (delivery.target,)
        ).fetchone()
        result = AttemptResult("GONE", gone["reason"]) if gone else send(delivery)
        cur.execute(
            "UPDATE ingest_notifications SET state = %(state)s, last_error = coalesce(%(error)s,"
            " last_error), next_attempt_at = coalesce(%(next)s, next_attempt_at),"
            " sent_at = CASE WHEN %(state)s::text = 'SENT' THEN now() END,"
            " attempts = attempts + %(tried)s, revision = nextval('ingest_file_revision')"
            " WHERE id = %(id)s",
            {
                "state": result.state,
                "error": result.error,
                "next": result.next_attempt_at,
                "tried": 0 if gone else 1,
                "id": delivery.id,
            },
        )
        touched = {delivery.batch_id}
        if result.state == "GONE" and not gone:
            touched |= _stop_target(conn, delivery.target, result.error or "410 Gone")
    return delivery, result, touched


def _stop_target(conn: psycopg.Connection[Any], target: str, reason: str) -> set[str]:
    """A receiver answered 410 Gone: nothing more goes to it (pending deliveries no other
    sender holds end GONE now; the others when they are next taken)."""
    conn.execute(
        "INSERT INTO ingest_notify_gone (target, reason) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (target, reason),
    )
    rows = conn.execute(
        "UPDATE ingest_notifications SET state = 'GONE', last_error = %s,"
        " revision = nextval('ingest_file_revision') WHERE id IN (SELECT id FROM"
        " ingest_notifications WHERE target = %s AND state = 'PENDING' FOR UPDATE SKIP LOCKED)"
        " RETURNING batch_id",
        (reason, target),
    ).fetchall()
    return {row[0] for row in rows}


def batch_notifications(pool: ConnectionPool, batch_id: str) -> list[Delivery]:
    """Every delivery of the batch's transitions, oldest first."""
    with transaction(pool) as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM ingest_notifications WHERE batch_id = %s"
            " ORDER BY seq, id",
            (batch_id,),
        ).fetchall()
    return [Delivery(**row) for row in rows]


# Plausibility and undo (shared/plausibility.py, shared/revert.py).


def previous_closes(
    pool: ConnectionPool, ticker_ids: list[int], firsts: list[Any]
) -> list[tuple[int, Any, float]]:
    """The stored row before each ticker's first date in a file: one index probe a ticker."""
    with transaction(pool) as conn:
        rows = conn.execute(
            "SELECT f.t, p.date, p.close FROM unnest(%s::int[], %s::date[]) f(t, first)"
            " CROSS JOIN LATERAL (SELECT date, close FROM seasonality_data"
            " WHERE ticker_id = f.t AND date < f.first ORDER BY date DESC LIMIT 1) p",
            (ticker_ids, firsts),
        ).fetchall()
    return [(int(t), d, float(c)) for t, d, c in rows]


def _begin_load(
    conn: psycopg.Connection[Any],
    record: FileRecord,
    etag: str,
    uploaded_at: datetime,
) -> bool:
    """Open the load of a file version (under its tickers' locks): its load row, named in
    ingest.load_id for the rows written and the history kept in this transaction; False
    (nothing is loaded) when its batch was reverted."""
    row = conn.execute(
        "WITH b AS (SELECT reverted_at FROM ingest_batches WHERE id = %(batch)s)"
        " INSERT INTO ingest_loads (object_key, etag, batch_id, uploaded_at)"
        " SELECT %(key)s, %(etag)s, %(batch)s, %(at)s FROM b WHERE b.reverted_at IS NULL"
        " RETURNING id",
        {"batch": record.batch_id, "key": record.object_key, "etag": etag, "at": uploaded_at},
    ).fetchone()
    if row is None:
        return False
    conn.execute("SELECT set_config('ingest.load_id', %s, true)", (str(row[0]),))
    return True


def _revert_rows(conn: psycopg.Connection[Any], batch_id: str) -> dict[str, Any]:
    """Undo the batch's loads (under its tickers' locks): restore each row a load of it changed
    to the value it replaced, remove each row it inserted; rows changed since by a load of
    another batch, or held by a later upload (ingest_coverage), are left and reported."""
    conn.execute("SELECT set_config('ingest.reverting', 'on', true)")
    conn.execute(
        "CREATE TEMP TABLE ingest_revert ON COMMIT DROP AS"
        " WITH l AS (SELECT array_agg(id) AS ids FROM ingest_loads WHERE batch_id = %(batch)s),"
        " c AS (SELECT ticker_id, min(lower(dates)) AS first, max(upper(dates)) AS last"
        "   FROM ingest_coverage WHERE object_key LIKE %(prefix)s GROUP BY ticker_id)"
        " SELECT d.ticker_id, d.date, d.load_id, d.uploaded_at,"
        "  (SELECT h.id FROM ingest_history h WHERE h.ticker_id = d.ticker_id"
        "   AND h.date = d.date AND h.load_id = ANY(l.ids)"
        "   AND (h.old_load_id IS NULL OR NOT h.old_load_id = ANY(l.ids))"
        "   ORDER BY h.id LIMIT 1) AS history_id,"
        "  EXISTS (SELECT 1 FROM ingest_coverage o WHERE o.ticker_id = d.ticker_id"
        "   AND o.dates @> d.date AND o.uploaded_at > d.uploaded_at"
        "   AND o.object_key NOT LIKE %(prefix)s) AS held"
        " FROM l, c JOIN seasonality_data d ON d.ticker_id = c.ticker_id"
        "  AND d.date >= c.first AND d.date < c.last"
        " WHERE d.load_id = ANY(l.ids)",
        {"batch": batch_id, "prefix": f"{keys.UPLOADS}{batch_id}/%"},
    )
    restored = conn.execute(
        "UPDATE seasonality_data d SET open = h.open, high = h.high, low = h.low,"
        " close = h.close, volume = h.volume, open_interest = h.open_interest,"
        " uploaded_at = h.uploaded_at, load_id = h.old_load_id"
        " FROM ingest_revert r JOIN ingest_history h ON h.id = r.history_id"
        " WHERE NOT r.held AND d.ticker_id = r.ticker_id AND d.date = r.date"
        " AND d.load_id = r.load_id"
    ).rowcount
    removed = conn.execute(
        "DELETE FROM seasonality_data d USING ingest_revert r WHERE r.history_id IS NULL"
        " AND NOT r.held AND d.ticker_id = r.ticker_id AND d.date = r.date"
        " AND d.load_id = r.load_id"
    ).rowcount
    # left: rows a load of another batch changed after this batch's (their value replaced
    # this batch's), and rows a later upload holds
    conflicts = conn.execute(
        "WITH l AS (SELECT array_agg(id) AS ids FROM ingest_loads WHERE batch_id = %(batch)s),"
        " left_rows AS (SELECT h.ticker_id, h.date FROM ingest_history h, l"
        "   WHERE h.old_load_id = ANY(l.ids) AND NOT coalesce(h.load_id = ANY(l.ids), false)"
        "   AND NOT EXISTS (SELECT 1 FROM ingest_revert r WHERE r.ticker_id = h.ticker_id"
        "     AND r.date = h.date AND NOT r.held)"
        "   UNION SELECT ticker_id, date FROM ingest_revert WHERE held),"
        " islands AS (SELECT ticker_id, date, sum(CASE WHEN date - prev > 4 OR prev IS NULL"
        "   THEN 1 ELSE 0 END) OVER (PARTITION BY ticker_id ORDER BY date) AS island"
        "   FROM (SELECT *, lag(date) OVER (PARTITION BY ticker_id ORDER BY date) AS prev"
        "         FROM left_rows) x)"
        " SELECT t.symbol, min(i.date), max(i.date), count(*) FROM islands i"
        " JOIN tickers t ON t.id = i.ticker_id GROUP BY t.symbol, i.island"
        " ORDER BY t.symbol, min(i.date)",
        {"batch": batch_id},
    ).fetchall()
    conn.execute(
        "DELETE FROM ingest_coverage WHERE object_key LIKE %s", (f"{keys.UPLOADS}{batch_id}/%",)
    )
    by_ticker: dict[str, list[dict[str, Any]]] = {}
    for symbol, first, last, rows in conflicts:
        by_ticker.setdefault(symbol, []).append(
            {"from": first.isoformat(), "to": last.isoformat(), "rows": int(rows)}
        )
    return {
        "restored": restored,
        "removed": removed,
        "left": sum(int(rows) for *_, rows in conflicts),
        "conflicts": [{"ticker": t, "ranges": r} for t, r in by_ticker.items()],
    }


def revert_batch(
    pool: ConnectionPool,
    batch_id: str,
    retention_days: int,
    outbox: Outbox | None = None,
) -> tuple[dict[str, Any], bool]:
    """Revert the batch once: (what the revert did, whether this call did it). A second call,
    or one that waited for a concurrent revert, finds it recorded and changes nothing."""
    with transaction(pool) as conn:
        tickers = conn.execute(
            "SELECT coalesce(array_agg(DISTINCT ticker_id), '{}') FROM ingest_coverage"
            " WHERE object_key LIKE %s",
            (f"{keys.UPLOADS}{batch_id}/%",),
        ).fetchone()
        _lock_tickers(conn, list(tickers[0]) if tickers else [])
        batch = conn.execute(
            "SELECT reverted, final_status, notify, created_at,"
            " (SELECT max(loaded_at) FROM ingest_loads WHERE batch_id = %(id)s),"
            " now() - make_interval(days => %(days)s), now()"
            " FROM ingest_batches WHERE id = %(id)s FOR UPDATE",
            {"id": batch_id, "days": retention_days},
        ).fetchone()
        if batch is None:
            raise NotFoundError("BATCH_NOT_FOUND", f"Batch {batch_id[:40]!r} was not found.")
        reverted, final_status, notify, created_at, loaded_at, oldest, now = batch
        if reverted is not None:
            return dict(reverted), False
        if final_status is None or not _is_final(conn, batch_id):
            raise ConflictError(
                "BATCH_NOT_FINAL", "The batch is still loading; revert it once it is final."
            )
        if loaded_at is not None and loaded_at < oldest:
            raise ConflictError(
                "REVERT_EXPIRED",
                f"The batch loaded its rows more than {retention_days} days ago"
                " (HISTORY_RETENTION_DAYS): the values it replaced are no longer kept.",
            )
        done = {**_revert_rows(conn, batch_id), "revertedAt": now.isoformat()}
        finished = conn.execute(
            "UPDATE ingest_batches SET reverted_at = %s, reverted = %s,"
            " final_status = 'REVERTED', final_seq = final_seq + 1 WHERE id = %s"
            " RETURNING final_seq, reverted_at",
            (now, Jsonb(done), batch_id),
        ).fetchone()
        assert finished is not None
        conn.execute("UPDATE ingest_files SET updated_at = now() WHERE batch_id = %s", (batch_id,))
        if outbox is not None:
            counts = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE status = 'COMPLETED'),"
                " count(*) FILTER (WHERE status = 'FAILED'), coalesce(sum(rows_loaded), 0),"
                " coalesce(sum(rows_rejected), 0), min(started_at) FROM ingest_files"
                " WHERE batch_id = %s",
                (batch_id,),
            ).fetchone()
            assert counts is not None
            outcome = BatchOutcome(
                batch_id=batch_id,
                seq=int(finished[0]),
                status="REVERTED",
                total=int(counts[0]),
                processed=int(counts[1]),
                failed=int(counts[2]),
                rows_loaded=int(counts[3]),
                rows_rejected=int(counts[4]),
                created_at=created_at,
                finished_at=finished[1],
                started_at=counts[5],
                failed_files=[],
                notify=dict(notify or {}),
                reverted=done,
            )
            composed = outbox(outcome)
            if composed is not None and composed.deliveries:
                _write_outbox(conn, outcome, composed)
        return done, True


def prune_history(pool: ConnectionPool, retention_days: int) -> int:
    """Drop the superseded values kept longer than the retention: rows deleted."""
    with transaction(pool) as conn:
        return conn.execute(
            "DELETE FROM ingest_history WHERE recorded_at < now() - make_interval(days => %s)",
            (retention_days,),
        ).rowcount


def lineage(pool: ConnectionPool, ticker: str, day: Any) -> dict[str, Any] | None:
    """Which file version and batch wrote the stored row, and every value it replaced."""
    with transaction(pool) as conn, conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT * FROM ingest_lineage WHERE ticker = %s AND date = %s", (ticker, day)
        ).fetchone()
        history = cur.execute(
            "SELECT h.open, h.high, h.low, h.close, h.volume, h.open_interest, h.uploaded_at,"
            " h.recorded_at, o.batch_id AS batch_id, o.object_key AS object_key,"
            " n.batch_id AS replaced_by_batch, n.object_key AS replaced_by_object"
            " FROM ingest_history h JOIN tickers t ON t.id = h.ticker_id"
            " LEFT JOIN ingest_loads o ON o.id = h.old_load_id"
            " LEFT JOIN ingest_loads n ON n.id = h.load_id"
            " WHERE t.symbol = %s AND h.date = %s ORDER BY h.id DESC",
            (ticker, day),
        ).fetchall()
    if row is None and not history:
        return None
    return {"row": row, "history": history}
