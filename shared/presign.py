"""Presign use case: register a batch's files and hand back one presigned upload per file;
and processing, on request, of landed files whose upload event never came."""

import logging
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

from . import access, batch_view, database, keys, notify, observability, storage
from .clients import Clients
from .dispatch import hand_over
from .errors import RequestError, TransientError
from .layout import is_symbol
from .models import FileRecord, FileSpec, NewFile, PresignRequest, ProcessRequest
from .settings import Settings

MAX_NAME_BYTES = 1024
log = logging.getLogger("ingest")
UPLOAD_CONTENT_TYPE = "text/csv"


def presign(clients: Clients, body: PresignRequest, caller: str | None = None) -> dict[str, Any]:
    settings = clients.settings
    if len(body.files) > settings.max_files_per_batch:
        raise RequestError(
            "TOO_MANY_FILES", f"At most {settings.max_files_per_batch} files per batch."
        )
    for spec in body.files:
        _check(spec, settings)
    if body.batch_id is not None and not keys.is_batch_id(body.batch_id):
        raise RequestError("INVALID_BATCH_ID", "batchId is not a batch id.")
    recipients = notify.check_option(settings, body.notify)
    if recipients is not None and body.batch_id is not None:
        raise RequestError("INVALID_NOTIFY", "notify is given when a batch is created.")
    batch_id = body.batch_id or keys.new_batch_id()
    expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(
        seconds=settings.presign_expiry_seconds
    )
    if body.batch_id is not None:
        access.require_batch(clients, body.batch_id, caller)
    added = database.add_files(
        clients.pool,
        batch_id,
        body.batch_id is None,
        caller,
        expires_at,
        settings.max_files_per_batch,
        lambda position, spec: _new_file(batch_id, position, spec),
        body.files,
        recipients,
    )
    observability.FILES_UPLOADED.inc(len(added.files))
    try:
        batch_view.put_batch(clients.redis, settings.redis_key_prefix, added)
    except TransientError as error:  # the ledger has the files; status rebuilds the view
        log.warning("view of batch %s not written: %s", batch_id, error)
    return {"batchId": batch_id, **upload_targets(clients, added.files, expires_at)}


def upload_targets(
    clients: Clients, files: list[FileRecord], expires_at: datetime
) -> dict[str, Any]:
    """`expiresAt`, one upload target per file (exactly what the browser sends) and the
    multipart parameters for files over the threshold."""
    settings = clients.settings
    object_keys = [f.object_key for f in files]
    if settings.upload_method == "POST":
        targets = [_post_target(clients, key, expires_at) for key in object_keys]
    else:
        urls = clients.put_signer.urls(
            settings.s3_bucket, object_keys, timedelta(seconds=settings.presign_expiry_seconds)
        )
        targets = [
            {"uploadUrl": url, "method": "PUT", "headers": {"Content-Type": UPLOAD_CONTENT_TYPE}}
            for url in urls
        ]
    return {
        "expiresAt": expires_at.isoformat().replace("+00:00", "Z"),
        "uploadUrls": [
            {"fileName": f.file_name, "objectKey": f.object_key, **target}
            for f, target in zip(files, targets, strict=True)
        ],
        "multipart": {
            "thresholdBytes": settings.multipart_threshold_bytes,
            "partBytes": settings.multipart_part_bytes,
        },
    }


def _post_target(clients: Clients, key: str, expires_at: datetime) -> dict[str, Any]:
    settings = clients.settings
    return {
        "uploadUrl": storage.bucket_url(settings.presign_endpoint, settings.s3_bucket),
        "method": "POST",
        "headers": {},
        "fields": storage.presigned_post(
            clients.signer,
            settings.s3_bucket,
            key,
            expires_at,
            settings.max_file_bytes,
            UPLOAD_CONTENT_TYPE,
        ),
    }


def _check(spec: FileSpec, settings: Settings) -> None:
    name = spec.name
    if not name or not name.strip():
        raise RequestError("INVALID_FILE_NAME", "A file name is empty.")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise RequestError("INVALID_FILE_NAME", f"File name longer than {MAX_NAME_BYTES} bytes.")
    if "\x00" in name:
        raise RequestError("INVALID_FILE_NAME", "A file name contains a NUL character.")
    extension = PurePosixPath(name.replace("\\", "/")).suffix.lower()
    if extension not in settings.allowed_extensions:
        raise RequestError(
            "UNSUPPORTED_FILE_TYPE",
            f"{name[:100]!r}: extension must be one of {', '.join(settings.allowed_extensions)}.",
        )
    if spec.size is not None and spec.size > settings.max_file_bytes:
        raise RequestError(
            "FILE_TOO_LARGE", f"{name[:100]!r} is larger than {settings.max_file_bytes} bytes."
        )
    if spec.ticker is not None and not is_symbol(spec.ticker.strip().upper()):
        raise RequestError("INVALID_TICKER", f"{spec.ticker[:40]!r} is not a plausible symbol.")


def _new_file(batch_id: str, position: int, spec: FileSpec) -> NewFile:
    return NewFile(
        object_key=keys.upload_key(batch_id, position, spec.name),
        file_name=spec.name,
        content_type=UPLOAD_CONTENT_TYPE,
        ticker_hint=spec.ticker.strip().upper() if spec.ticker else None,
        declared_size=spec.size,
        plausibility=spec.plausibility,
    )


def process_landed(
    clients: Clients, body: ProcessRequest, caller: str | None = None
) -> dict[str, Any]:
    """Process listed objects that landed but whose event never arrived (never twice)."""
    batch = access.require_batch(clients, body.batch_id, caller)
    wanted = set(body.object_keys)
    waiting = [
        f.object_key
        for f in batch.files
        if not f.finished and (not wanted or f.object_key in wanted)
    ]
    queued = hand_over(clients, waiting, clients.settings.event_grace_seconds)
    return {
        "batchId": batch.batch_id,
        "status": "PROCESSING",
        "message": f"{queued} landed file(s) not yet processed will be processed if their"
        " upload event does not arrive first.",
    }
