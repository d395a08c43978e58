"""The Redis layout: a fast, rebuildable view of each batch for the progress bar.

    <prefix>batch:<id>        hash  createdAt, expiresAt, updatedAt, version (bumped on change)
    <prefix>batch:<id>:files  hash  objectKey -> JSON file entry

PostgreSQL's ledger is the authority. Entries are whole-value overwrites and the batch totals
are derived from them when read, so a redelivered event can never count twice.
"""

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import redis

from .errors import TransientError
from .models import BatchRecord, FileRecord

TTL_SECONDS = 30 * 24 * 3600
T = TypeVar("T")
Entry = dict[str, Any]


def entry(record: FileRecord, status: str | None = None) -> Entry:
    return {
        "fileName": record.file_name,
        "objectKey": record.object_key,
        "status": status or record.status,
        "tickers": list(record.tickers) if record.status == "COMPLETED" else [],
        "rowsLoaded": record.rows_loaded,
        "rowsRejected": record.rows_rejected,
        "error": record.error,
        "rejectsKey": record.rejects_key,
        "position": record.position,
    }


def put_batch(client: redis.Redis, prefix: str, batch: BatchRecord) -> None:
    """Write the batch and the given files' entries from the ledger (at presign, and to
    rebuild a lost view); entries of other files are left as they are."""
    meta: dict[Any, Any] = {
        "createdAt": _iso(batch.created_at),
        "expiresAt": _iso(batch.expires_at),
        "updatedAt": _iso(batch.updated_at),
    }
    entries: dict[Any, Any] = {f.object_key: json.dumps(entry(f)) for f in batch.files}

    def write() -> None:
        pipe = client.pipeline()
        pipe.hset(_batch_key(prefix, batch.batch_id), mapping=meta)
        pipe.hincrby(_batch_key(prefix, batch.batch_id), "version", 1)
        if entries:
            pipe.hset(_files_key(prefix, batch.batch_id), mapping=entries)
        _expire(pipe, prefix, batch.batch_id)
        pipe.execute()

    _guard(write)


def put_file(client: redis.Redis, prefix: str, batch_id: str, file: Entry) -> None:
    """Overwrite one file's entry."""

    def write() -> None:
        pipe = client.pipeline()
        pipe.hset(_files_key(prefix, batch_id), file["objectKey"], json.dumps(file))
        pipe.hset(_batch_key(prefix, batch_id), "updatedAt", _iso(datetime.now(UTC)))
        pipe.hincrby(_batch_key(prefix, batch_id), "version", 1)
        _expire(pipe, prefix, batch_id)
        pipe.execute()

    _guard(write)


def version(client: redis.Redis, prefix: str, batch_id: str) -> str | None:
    """Changes whenever the batch's view does: one cheap read to tell a cached answer is fresh."""
    value = _guard(lambda: client.hget(_batch_key(prefix, batch_id), "version"))
    return value.decode() if isinstance(value, bytes) else value


def read_batch(
    client: redis.Redis, prefix: str, batch_id: str
) -> tuple[dict[str, str], list[Entry]] | None:
    def read() -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(_batch_key(prefix, batch_id))
        pipe.hgetall(_files_key(prefix, batch_id))
        meta, files = pipe.execute()
        return meta, files

    meta, files = _guard(read)
    if not meta:
        return None
    entries = sorted((json.loads(v) for v in files.values()), key=lambda e: e["position"])
    return {k.decode(): v.decode() for k, v in meta.items()}, entries


def _expire(pipe: redis.client.Pipeline, prefix: str, batch_id: str) -> None:
    pipe.expire(_batch_key(prefix, batch_id), TTL_SECONDS)
    pipe.expire(_files_key(prefix, batch_id), TTL_SECONDS)


def _batch_key(prefix: str, batch_id: str) -> str:
    return f"{prefix}batch:{batch_id}"


def _files_key(prefix: str, batch_id: str) -> str:
    return f"{prefix}batch:{batch_id}:files"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _guard(call: Callable[[], T]) -> T:
    try:
        return call()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
        raise TransientError(f"Redis unavailable: {type(error).__name__}") from error
