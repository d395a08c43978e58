"""Presign use case: register a batch's files and hand back one presigned PUT per file."""

import secrets
import time
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

from . import batch_view, database, observability, storage
from .clients import Clients
from .errors import RequestError
from .layout import is_symbol
from .models import CROCKFORD, FileSpec, NewFile, PresignRequest, is_batch_id
from .settings import Settings

MAX_NAME_BYTES = 1024
SAFE_STEM_CHARS = 80
UPLOAD_CONTENT_TYPE = "text/csv"


def new_batch_id() -> str:
    """Sortable by creation time and unguessable (80 random bits), like a ULID."""
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    return "b_" + "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def safe_name(name: str) -> str:
    """A key segment made only of [A-Za-z0-9._-] that keeps the extension; never a path."""
    base = PurePosixPath(name.replace("\\", "/"))
    stem, ext = _ascii_word(base.stem), _ascii_word(base.suffix)
    return (stem[:SAFE_STEM_CHARS] or "file") + (f".{ext[:10]}" if ext else "")


def _ascii_word(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in ascii_text).strip("._")


def presign(clients: Clients, body: PresignRequest) -> dict[str, Any]:
    settings = clients.settings
    if len(body.files) > settings.max_files_per_batch:
        raise RequestError(
            "TOO_MANY_FILES", f"At most {settings.max_files_per_batch} files per batch."
        )
    for spec in body.files:
        _check(spec, settings)
    if body.batch_id is not None and not is_batch_id(body.batch_id):
        raise RequestError("INVALID_BATCH_ID", "batchId is not a batch id.")
    batch_id = body.batch_id or new_batch_id()
    expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(
        seconds=settings.presign_expiry_seconds
    )
    added = database.add_files(
        clients.pool,
        batch_id,
        body.batch_id is None,
        expires_at,
        settings.max_files_per_batch,
        lambda position, spec: _new_file(batch_id, position, spec),
        body.files,
    )
    observability.FILES_UPLOADED.inc(len(added.files))
    batch_view.put_batch(clients.redis, settings.redis_key_prefix, added)
    keys = [f.object_key for f in added.files]
    if settings.upload_method == "POST":
        targets = [_post_target(clients, key, expires_at) for key in keys]
    else:
        urls = clients.put_signer.urls(
            settings.s3_bucket, keys, timedelta(seconds=settings.presign_expiry_seconds)
        )
        targets = [
            {"uploadUrl": url, "method": "PUT", "headers": {"Content-Type": UPLOAD_CONTENT_TYPE}}
            for url in urls
        ]
    return {
        "batchId": batch_id,
        "expiresAt": expires_at.isoformat().replace("+00:00", "Z"),
        "uploadUrls": [
            {"fileName": f.file_name, "objectKey": f.object_key, **target}
            for f, target in zip(added.files, targets, strict=True)
        ],
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
        object_key=f"uploads/{batch_id}/{position:04d}_{safe_name(spec.name)}",
        file_name=spec.name,
        content_type=UPLOAD_CONTENT_TYPE,
        ticker_hint=spec.ticker.strip().upper() if spec.ticker else None,
        declared_size=spec.size,
    )
