"""process-file use case: one uploaded object in, its rows in PostgreSQL exactly once.

Retry contract: TransientError propagates (the entry point answers 5xx and the sender redelivers);
a file that can never load is recorded as FAILED with its cause, and the event is acknowledged.
"""

import logging
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from . import batch_view, database, keys, layout, observability, storage
from .clients import Clients
from .errors import BusyError, FileRejectedError, TransientError
from .events import ObjectCreated
from .models import FileRecord
from .reader import ParsedFile

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
    )
    stored = storage.stat(clients.store, settings.s3_bucket, key)
    if stored is None:
        if record.finished:
            return _publish(clients, record, "duplicate")
        return _fail(clients, record, None, "The uploaded object no longer exists.")
    if record.finished and record.etag == stored.etag:
        return _publish(clients, record, "duplicate")
    # A stale event (the object was overwritten since) takes the current version's upload time.
    uploaded_at = event_time if event_time and event_etag == stored.etag else stored.last_modified
    if not database.take_lease(clients.pool, key, settings.processing_lease_seconds):
        raise BusyError(f"{key} is being processed by another worker")
    try:
        batch_view.put_file(
            clients.redis,
            settings.redis_key_prefix,
            batch_id,
            batch_view.entry(record, status="PROCESSING"),
        )
        return _load(clients, record, stored, uploaded_at)
    except Exception:  # transient or unexpected: the sender retries, and need not wait
        _release(clients, record)
        raise


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
        with tempfile.TemporaryDirectory(prefix="ingest-") as workdir:
            parsed = _parse(clients, record, uploaded_at, Path(workdir))
            rejects_key = _store_rejects(clients, record, parsed)
            loaded = database.load_file(
                clients.pool, record, stored.etag, uploaded_at, parsed, rejects_key
            )
    except FileRejectedError as error:
        return _fail(clients, record, stored.etag, str(error))
    return _publish(clients, record, "completed" if loaded else "duplicate")


def _release(clients: Clients, record: FileRecord) -> None:
    """Give the lease back so the redelivered event need not wait for it to expire."""
    try:
        database.release_lease(clients.pool, record.object_key)
        batch_view.put_file(
            clients.redis,
            clients.settings.redis_key_prefix,
            record.batch_id,
            batch_view.entry(record, status="PENDING"),
        )
    except TransientError:
        log.warning("lease of %s left to expire", record.object_key)


def fail_never_uploaded(clients: Clients, record: FileRecord, url_expired_at: datetime) -> None:
    _fail(
        clients,
        record,
        None,
        "The file was never uploaded; its upload URL expired at "
        f"{url_expired_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC.",
    )


def record_dead_letter(clients: Clients, uploads: list[ObjectCreated], cause: str) -> None:
    """An event the broker gave up on: show it on the file so the admin can retry it."""
    for upload in uploads:
        batch_id = keys.batch_of(upload.key)
        record = database.get_file(clients.pool, upload.key) if batch_id else None
        if record is not None and not record.finished:
            _fail(
                clients,
                record,
                upload.etag or None,
                f"The upload event could not be delivered after retries ({cause}).",
            )


def _parse(
    clients: Clients, record: FileRecord, uploaded_at: datetime, workdir: Path
) -> ParsedFile:
    settings = clients.settings
    found = layout.detect(storage.head(clients.store, settings.s3_bucket, record.object_key))
    ticker = None
    if "ticker" not in found.columns:
        ticker = record.ticker_hint or layout.ticker_from_name(record.file_name)
        if ticker is None:
            raise FileRejectedError(
                "No ticker: the file has no ticker column, none was given at upload, and the "
                f"file name {record.file_name!r} does not start with a plausible symbol."
            )
    url = f"s3://{settings.s3_bucket}/{record.object_key}"
    return clients.reader.read(
        url,
        found,
        ticker,
        uploaded_at,
        lambda symbols: database.ticker_ids(clients.pool, symbols),
        workdir,
    )


def _store_rejects(clients: Clients, record: FileRecord, parsed: ParsedFile) -> str | None:
    if parsed.rejects_csv is None:
        return None
    key = keys.rejects_key(record.object_key)
    storage.upload_file(
        clients.store,
        clients.settings.s3_bucket,
        key,
        parsed.rejects_csv,
        "text/csv; charset=utf-8",
    )
    return key


def _fail(clients: Clients, record: FileRecord, etag: str | None, error: str) -> Outcome:
    recorded = database.fail_file(clients.pool, record, etag, error)
    return _publish(clients, record, "failed" if recorded else "duplicate")


def _publish(clients: Clients, record: FileRecord, outcome: Outcome) -> Outcome:
    """Project the ledger's row into the Redis view; safe to repeat."""
    current = database.get_file(clients.pool, record.object_key)
    assert current is not None
    batch_view.put_file(
        clients.redis,
        clients.settings.redis_key_prefix,
        current.batch_id,
        batch_view.entry(current),
    )
    if outcome == "completed":
        observability.FILES_PROCESSED.inc()
        observability.ROWS_LOADED.inc(current.rows_loaded)
        observability.ROWS_REJECTED.inc(current.rows_rejected)
    elif outcome == "failed":
        observability.FILES_FAILED.inc()
    return outcome
