"""process-file use case: one uploaded object in, its rows in PostgreSQL exactly once.

Retry contract: every outcome is final except a transient one. A file that can never load is
recorded as FAILED with its cause and the event acknowledged; a transient failure (a service
unreachable, or anything nobody foresaw) answers 5xx so the sender redelivers, and is counted
per object version: after MAX_TRANSIENT_ATTEMPTS the file is FAILED with the last cause, so no
single file can hold the sender's queue for ever.
"""

import hashlib
import logging
import time
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Literal

from . import (
    batch_view,
    database,
    keys,
    layout,
    notify,
    observability,
    plausibility,
    storage,
    workspace,
)
from .clients import Clients
from .errors import BusyError, FileRejectedError, TransientError
from .events import ObjectCreated
from .models import FileRecord, Recorded
from .plausibility import Checks, Mode
from .reader import ParsedFile
from .settings import Settings

log = logging.getLogger("ingest")
Outcome = Literal["completed", "failed", "duplicate", "ignored"]


def handle_uploads(clients: Clients, uploads: list[ObjectCreated]) -> list[Outcome]:
    return [_timed(clients, upload) for upload in uploads]


def _timed(clients: Clients, upload: ObjectCreated) -> Outcome:
    started = time.monotonic()
    outcome: Outcome | Literal["transient"] = "transient"
    try:
        outcome = (
            process_object(clients, upload.key, upload.etag, upload.event_time)
            if upload.bucket == clients.settings.s3_bucket
            else "ignored"
        )
        return outcome
    finally:
        seconds = time.monotonic() - started
        if outcome in ("completed", "failed"):
            observability.PROCESSING_SECONDS.observe(seconds)
        log.info(
            "event %s",
            outcome,
            extra={
                "batchId": keys.batch_of(upload.key),
                "objectKey": upload.key,
                "etag": upload.etag,
                "outcome": outcome,
                "durationMs": round(seconds * 1000, 1),
            },
        )


def process_object(
    clients: Clients, key: str, event_etag: str | None = None, event_time: datetime | None = None
) -> Outcome:
    """Process the object's current version once; later calls for that version do nothing."""
    batch_id = keys.batch_of(key)
    if batch_id is None:
        return "ignored"
    settings = clients.settings
    record = database.ensure_file(
        clients.pool,
        key,
        batch_id,
        key.rsplit("/", 1)[-1],
        datetime.now(UTC) + timedelta(seconds=settings.presign_expiry_seconds),
        settings.max_files_per_batch,
        settings.max_unpresigned_batches_per_hour,
    )
    if record is None:
        log.warning(
            "ignored %s: nobody presigned it, and its batch is final or full (or this hour's"
            " MAX_UNPRESIGNED_BATCHES_PER_HOUR is used up)",
            key,
        )
        return "ignored"
    stored = storage.stat(clients.store, settings.s3_bucket, key)
    if stored is None:
        if record.finished:
            return _publish(clients, record, "duplicate")
        return _fail(clients, record, None, "The uploaded object no longer exists.")
    if record.finished and record.etag == stored.etag:
        return _publish(clients, record, "duplicate")
    uploaded_at = database.version_time(
        clients.pool, key, stored.etag, _upload_time(clients, stored, event_etag, event_time)
    )
    # The lock is what makes one worker the file's only loader; PostgreSQL drops it the moment
    # the holder's connection dies, so a killed worker's file is taken over at once.
    with database.file_lock(clients.lock_pool, key, settings.lock_wait_seconds):
        started = database.start_processing(clients.pool, key, stored.etag)
        if started is None:  # finished by the worker that held the lock before us
            current = database.get_file(clients.pool, key)
            return _publish(clients, current or record, "duplicate")
        _show(clients, started)
        try:
            return _load(clients, started, stored, uploaded_at)
        except Exception as error:  # transient or unforeseen: counted, then retried or failed
            return _after_transient(clients, started, stored.etag, error)


def _upload_time(
    clients: Clients,
    stored: storage.StoredObject,
    event_etag: str | None,
    event_time: datetime | None,
) -> datetime:
    """The version's upload time: the event's, when it speaks of this version and fits the
    object's Last-Modified (which has whole seconds) within the allowed skew, never in the
    future; Last-Modified otherwise."""
    skew = timedelta(seconds=clients.settings.clock_skew_seconds)
    modified = stored.last_modified
    latest = min(datetime.now(UTC), modified + timedelta(seconds=1) + skew)
    if event_time is None or event_etag != stored.etag:
        return modified
    if event_time.tzinfo is None or not modified - skew <= event_time <= latest:
        return modified
    return event_time


def _after_transient(clients: Clients, record: FileRecord, etag: str, error: Exception) -> Outcome:
    cause = str(error) if isinstance(error, TransientError) else f"{type(error).__name__}: {error}"
    if not isinstance(error, TransientError):
        log.exception("unexpected failure on %s", record.object_key)
    failures = database.record_transient(clients.pool, record.object_key, etag)
    limit = clients.settings.max_transient_attempts
    if failures >= limit:
        return _fail(
            clients,
            record,
            etag,
            f"The file could not be processed after {failures} attempts: {cause[:300]}",
        )
    current = database.get_file(clients.pool, record.object_key)
    _show(clients, current or record)
    raise TransientError(
        f"attempt {failures} of {limit} on {record.object_key}: {cause}"
    ) from error


def _show(clients: Clients, record: FileRecord) -> None:
    """Project the ledger row into the Redis view; the ledger stays the truth when Redis is
    away (the view is rebuilt from it), so that never fails the event."""
    try:
        batch_view.put_file(
            clients.redis,
            clients.settings.redis_key_prefix,
            record.batch_id,
            batch_view.entry(record),
        )
    except TransientError as error:
        log.warning("view of %s not updated: %s", record.object_key, error)
    clients.forget_status(record.batch_id)


def _load(
    clients: Clients, record: FileRecord, stored: storage.StoredObject, uploaded_at: datetime
) -> Outcome:
    settings = clients.settings
    try:
        if stored.size == 0:
            raise FileRejectedError("The file is empty.")
        if stored.size > settings.max_file_bytes:
            raise FileRejectedError(
                f"The file is {stored.size} bytes, over the limit of {settings.max_file_bytes}."
            )
        content_key = _content_key(record, stored, _checks(settings, record))
        if content_key is not None:
            done = database.load_identical(
                clients.pool, record, stored.etag, uploaded_at, content_key, notify.outbox(settings)
            )
            if done is not False:
                return _publish(clients, record, "completed" if done else "duplicate", done)
        with workspace.file_workdir() as workdir:
            parsed = _parse(clients, record, uploaded_at, workdir)
            rejects_key = _store_rejects(clients, record, parsed)
            loaded = database.load_file(
                clients.pool,
                record,
                stored.etag,
                uploaded_at,
                parsed,
                rejects_key,
                notify.outbox(settings),
                content_key,
                _store_warnings(clients, record, parsed),
                lambda conflicts: _store_report(
                    clients,
                    plausibility.with_conflicts(
                        parsed.warnings_csv, conflicts, parsed.rows_csv, parsed.lines_csv, workdir
                    ),
                    keys.warnings_key(record.object_key),
                ),
            )
    except FileRejectedError as error:
        return _fail(clients, record, stored.etag, str(error))
    return _publish(clients, record, "completed" if loaded else "duplicate", loaded)


def _content_key(record: FileRecord, stored: storage.StoredObject, checks: Checks) -> str | None:
    """What the file's rows follow from: its bytes (the store's etag, with the size), the
    reading rules (the reader's own source), the ticker a file without a ticker column is
    loaded under, and the plausibility rules. None when the store gives no etag to go by, and
    in reject mode: which rows it drops depends on the stored row before the file's first
    date too, not on the file alone."""
    if not stored.etag or checks.mode == "reject":
        return None
    ticker = record.ticker_hint or layout.ticker_from_name(record.file_name) or ""
    rules = f"{checks.mode}:{checks.max_move}:{checks.max_gap_days}"
    return f"{_reading_rules()}|{stored.etag}|{stored.size}|{ticker}|{rules}"


@cache
def _reading_rules() -> str:
    """Changes whenever the code that turns bytes into rows does."""
    digest = hashlib.sha256()
    for name in ("layout.py", "reader.py", "normalise.sql", "plausibility.py"):
        digest.update(files("shared").joinpath(name).read_bytes())
    return digest.hexdigest()[:16]


def fail_never_uploaded(clients: Clients, record: FileRecord, url_expired_at: datetime) -> None:
    _fail(
        clients,
        record,
        None,
        "The file was never uploaded; its upload URL expired at "
        f"{url_expired_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC.",
    )


def record_dead_letter(clients: Clients, uploads: list[ObjectCreated], cause: str) -> None:
    """An event the broker gave up on: show it on the file so the admin can retry it, unless
    a worker is loading the file right now (its outcome, not the dead letter, is the truth)."""
    for upload in uploads:
        record = database.get_file(clients.pool, upload.key) if keys.batch_of(upload.key) else None
        if record is None or record.finished:
            continue
        try:
            with database.file_lock(clients.lock_pool, upload.key, 0):
                current = database.get_file(clients.pool, upload.key)
                if current is not None and not current.finished:
                    message = f"The upload event could not be delivered after retries ({cause})."
                    _fail(clients, current, upload.etag or None, message)
        except BusyError:
            log.info("dead letter for %s ignored: a worker is loading it", upload.key)


def _parse(
    clients: Clients, record: FileRecord, uploaded_at: datetime, workdir: Path
) -> ParsedFile:
    settings = clients.settings
    head, chunks = storage.peek(
        storage.stream(clients.store, settings.s3_bucket, record.object_key)
    )
    found = layout.detect(head)
    ticker = None
    if "ticker" not in found.columns:
        ticker = record.ticker_hint or layout.ticker_from_name(record.file_name)
        if ticker is None:
            raise FileRejectedError(
                "No ticker: the file has no ticker column, none was given at upload, and the "
                f"file name {record.file_name!r} does not start with a plausible symbol."
            )
    return clients.reader.read(
        record.object_key,
        found,
        ticker,
        uploaded_at,
        lambda symbols: database.ticker_ids(clients.pool, symbols),
        workdir,
        lambda: chunks,
        _checks(settings, record),
        lambda ids, firsts: database.previous_closes(clients.pool, ids, firsts),
    )


def _checks(settings: Settings, record: FileRecord) -> Checks:
    """The plausibility rules of the file: the deployment's, in the file's own mode if any."""
    own = record.plausibility  # warn or reject, given at presign
    mode: Mode = "reject" if own == "reject" else "warn" if own else settings.plausibility_mode
    return Checks(
        mode,
        settings.plausibility_max_move,
        settings.plausibility_max_gap_days,
    )


def _store_warnings(clients: Clients, record: FileRecord, parsed: ParsedFile) -> str | None:
    return _store_report(clients, parsed.warnings_csv, keys.warnings_key(record.object_key))


def _store_rejects(clients: Clients, record: FileRecord, parsed: ParsedFile) -> str | None:
    return _store_report(clients, parsed.rejects_csv, keys.rejects_key(record.object_key))


def _store_report(clients: Clients, path: Path | None, key: str) -> str | None:
    """Put a report CSV of the file (rejects, warnings) beside it; its key (None: no report)."""
    if path is None:
        return None
    storage.upload_file(
        clients.store, clients.settings.s3_bucket, key, path, "text/csv; charset=utf-8"
    )
    return key


def _fail(clients: Clients, record: FileRecord, etag: str | None, error: str) -> Outcome:
    recorded = database.fail_file(
        clients.pool, record, etag, error, notify.outbox(clients.settings)
    )
    return _publish(clients, record, "failed" if recorded else "duplicate", recorded)


def _publish(
    clients: Clients, record: FileRecord, outcome: Outcome, recorded: Recorded | None = None
) -> Outcome:
    """Show the ledger's row in the view and count the outcome; safe to repeat. When the file
    made its batch final, its notifications are sent now, before the event is answered (they
    were committed with the file: a crash here leaves them to the reconcile sweep)."""
    current = database.get_file(clients.pool, record.object_key) or record
    _show(clients, current)
    if recorded is not None and recorded.transition is not None:
        notify.send_due(clients, record.batch_id)
    if outcome == "completed":
        observability.FILES_PROCESSED.inc()
        observability.ROWS_LOADED.inc(current.rows_loaded)
        observability.ROWS_REJECTED.inc(current.rows_rejected)
    elif outcome == "failed":
        observability.FILES_FAILED.inc()
    return outcome
