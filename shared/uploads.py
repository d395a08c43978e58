"""Uploads of an existing batch's files that have not landed yet: fresh upload URLs (a resumed
or slow upload never meets an expired URL) and S3 multipart uploads with one presigned URL a
part (a dropped connection resends one part, not the file). Nothing here ever signs an upload
for a file that landed: its object is in the store, or its processing has begun."""

from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

from . import access, database, keys, storage
from .clients import Clients
from .errors import ConflictError, NotFoundError, RequestError
from .models import (
    FileRecord,
    MultipartCompleteRequest,
    MultipartRequest,
    MultipartSignRequest,
    SignRequest,
)
from .presign import UPLOAD_CONTENT_TYPE, upload_targets

MAX_PARTS = 10_000


def sign(clients: Clients, body: SignRequest, caller: str | None = None) -> dict[str, Any]:
    """Fresh upload targets for the listed files (every file not landed when none is listed);
    each listed file that gets none is named in `skipped` with the reason."""
    batch = access.require_batch(clients, body.batch_id, caller)
    landed = _landed(clients, batch.batch_id)
    by_key = {f.object_key: f for f in batch.files}
    wanted = body.object_keys or [f.object_key for f in batch.files]
    signable: list[FileRecord] = []
    skipped: list[dict[str, str]] = []
    for key in dict.fromkeys(wanted):
        reason = _refusal(by_key.get(key), landed)
        if reason is None:
            signable.append(by_key[key])
        elif body.object_keys:
            skipped.append({"objectKey": key, "code": reason[0], "message": reason[1]})
    expires_at = _expiry(clients)
    if signable:
        database.extend_expiry(clients.pool, batch.batch_id, expires_at)
    return {
        "batchId": batch.batch_id,
        **upload_targets(clients, signable, expires_at),
        "skipped": skipped,
    }


def create_multipart(
    clients: Clients, body: MultipartRequest, caller: str | None = None
) -> dict[str, Any]:
    """Start a multipart upload of a file that has not landed; its upload id and part size."""
    record = _not_landed(clients, body, caller)
    settings = clients.settings
    upload_id = storage.create_multipart(
        clients.store, settings.s3_bucket, record.object_key, UPLOAD_CONTENT_TYPE
    )
    database.extend_expiry(clients.pool, record.batch_id, _expiry(clients))
    return {
        "batchId": record.batch_id,
        "objectKey": record.object_key,
        "uploadId": upload_id,
        "partBytes": settings.multipart_part_bytes,
    }


def sign_parts(
    clients: Clients, body: MultipartSignRequest, caller: str | None = None
) -> dict[str, Any]:
    """Presigned UploadPart URLs for the listed part numbers, and the parts the store already
    holds (a resumed upload sends only the others)."""
    record = _not_landed(clients, body, caller)
    numbers = sorted(set(body.part_numbers))
    if numbers[0] < 1 or numbers[-1] > MAX_PARTS:
        raise RequestError("INVALID_PART", f"Part numbers run from 1 to {MAX_PARTS}.")
    settings = clients.settings
    stored = storage.list_parts(
        clients.store, settings.s3_bucket, record.object_key, body.upload_id
    )
    if stored is None:
        raise _no_upload(body.upload_id)
    expires_at = _expiry(clients)
    database.extend_expiry(clients.pool, record.batch_id, expires_at)
    lifetime = timedelta(seconds=settings.presign_expiry_seconds)
    return {
        "batchId": record.batch_id,
        "objectKey": record.object_key,
        "uploadId": body.upload_id,
        "expiresAt": _iso(expires_at),
        "parts": [
            {
                "partNumber": n,
                "uploadUrl": storage.presigned_part(
                    clients.signer,
                    settings.s3_bucket,
                    record.object_key,
                    body.upload_id,
                    n,
                    lifetime,
                ),
            }
            for n in numbers
        ],
        "uploaded": [{"partNumber": p.number, "etag": p.etag, "size": p.size} for p in stored],
    }


def complete_multipart(
    clients: Clients, body: MultipartCompleteRequest, caller: str | None = None
) -> dict[str, Any]:
    """Join the parts into the object. The store then sends its CompleteMultipartUpload
    event, which loads the file (once, like any other upload event)."""
    record = _not_landed(clients, body, caller)
    settings = clients.settings
    stored = storage.list_parts(
        clients.store, settings.s3_bucket, record.object_key, body.upload_id
    )
    if stored is None:
        raise _no_upload(body.upload_id)
    held = {p.number: p.etag for p in stored}
    for part in body.parts:
        if held.get(part.part_number) != part.etag.strip('"'):
            raise RequestError(
                "INVALID_PART", f"Part {part.part_number} is not stored with etag {part.etag!r}."
            )
    etag = storage.complete_multipart(
        clients.store,
        settings.s3_bucket,
        record.object_key,
        body.upload_id,
        [(p.part_number, p.etag.strip('"')) for p in body.parts],
    )
    return {"batchId": record.batch_id, "objectKey": record.object_key, "etag": etag}


def abort_multipart(
    clients: Clients, body: MultipartRequest, caller: str | None = None
) -> dict[str, Any]:
    """Drop an unfinished multipart upload and its stored parts."""
    if body.upload_id is None:
        raise RequestError("INVALID_REQUEST", "uploadId: Field required")
    record = _in_batch(clients, body, caller)
    storage.abort_multipart(
        clients.store, clients.settings.s3_bucket, record.object_key, body.upload_id
    )
    return {"batchId": record.batch_id, "objectKey": record.object_key, "aborted": True}


def _in_batch(clients: Clients, body: MultipartRequest, caller: str | None) -> FileRecord:
    batch = access.require_batch(clients, body.batch_id, caller)
    record = next((f for f in batch.files if f.object_key == body.object_key), None)
    if record is None:
        raise NotFoundError("FILE_NOT_FOUND", f"{body.object_key[:200]!r} is not in the batch.")
    return record


def _not_landed(clients: Clients, body: MultipartRequest, caller: str | None) -> FileRecord:
    record = _in_batch(clients, body, caller)
    stored = storage.stat(clients.store, clients.settings.s3_bucket, record.object_key)
    refusal = _refusal(record, {record.object_key} if stored else set())
    if refusal is not None:
        raise ConflictError(refusal[0], refusal[1])
    return record


def _refusal(record: FileRecord | None, landed: Collection[str]) -> tuple[str, str] | None:
    """Why no upload may be signed for this file; None when one may."""
    if record is None:
        return "FILE_NOT_FOUND", "No such file in the batch."
    if record.object_key in landed or record.status == "PROCESSING":
        return "FILE_LANDED", "The file has landed; it is processed from the stored object."
    if record.finished:
        return "FILE_FINISHED", f"The file is {record.status}; retry it instead of uploading."
    return None


def _landed(clients: Clients, batch_id: str) -> set[str]:
    folder = f"{keys.UPLOADS}{batch_id}/"
    found = storage.list_objects(clients.store, clients.settings.s3_bucket, folder)
    return {o.key for o in found}


def _no_upload(upload_id: str) -> NotFoundError:
    return NotFoundError(
        "UPLOAD_NOT_FOUND", f"No multipart upload {upload_id[:80]!r}: start a new one."
    )


def _expiry(clients: Clients) -> datetime:
    seconds = clients.settings.presign_expiry_seconds
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
