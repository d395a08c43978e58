"""The Redis layout: a fast, rebuildable view of each batch for the progress bar.

    <prefix>batch:<id>        hash  createdAt, expiresAt, updatedAt, checkedAt (last compared
                                    with the ledger), version (bumped on every change), owner
                                    (the creating token's caller id, when there is one)
    <prefix>batch:<id>:files  hash  objectKey -> JSON file entry, with the ledger's revision

The batch hash also holds `notifications` (JSON list of the batch's deliveries, as status shows
them) and `notificationsRevision` (the newest outbox revision they reflect), written only when
newer, so a slow sender never puts back an older state.

PostgreSQL's ledger is the authority. An entry is replaced only by one of a higher revision (a
compare-and-set in Redis itself), so a rebuild from an older snapshot, or a slow writer, can
never overwrite newer news; batch totals are derived from the entries when read, so a
redelivered event can never count twice.
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
# KEYS: batch hash, files hash. ARGV: ttl, updatedAt, then (objectKey, revision, entry) triples.
_PUT_NEWER = """
local changed = 0
for i = 3, #ARGV, 3 do
    local held = redis.call('HGET', KEYS[2], ARGV[i])
    if not held or (cjson.decode(held)['revision'] or 0) < tonumber(ARGV[i + 1]) then
        redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2])
        changed = changed + 1
    end
end
if changed > 0 then
    redis.call('HSET', KEYS[1], 'updatedAt', ARGV[2])
    redis.call('HINCRBY', KEYS[1], 'version', 1)
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return changed
"""

# KEYS: batch hash. ARGV: ttl, revision, notifications JSON.
_PUT_NOTIFICATIONS = """
local held = tonumber(redis.call('HGET', KEYS[1], 'notificationsRevision') or '-1')
if held >= tonumber(ARGV[2]) then
    return 0
end
redis.call('HSET', KEYS[1], 'notifications', ARGV[3], 'notificationsRevision', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""


def entry(record: FileRecord) -> Entry:
    return {
        "fileName": record.file_name,
        "objectKey": record.object_key,
        "status": record.status,
        "tickers": list(record.tickers) if record.status == "COMPLETED" else [],
        "rowsLoaded": record.rows_loaded,
        "rowsRejected": record.rows_rejected,
        "error": record.error,
        "rejectsKey": record.rejects_key,
        "position": record.position,
        "revision": record.revision,
        "warnings": dict(record.warnings) if record.status == "COMPLETED" else {},
        "warningsKey": record.warnings_key if record.status == "COMPLETED" else None,
        "series": record.series if record.status == "COMPLETED" else None,
    }


def put_batch(client: redis.Redis, prefix: str, batch: BatchRecord) -> None:
    """Write the batch and the given files' entries from a ledger snapshot (at presign, and to
    rebuild or check a view); entries of other files, and newer ones, are left as they are."""
    meta: dict[Any, Any] = {
        "createdAt": _iso(batch.created_at),
        "expiresAt": _iso(batch.expires_at),
        "checkedAt": _iso(datetime.now(UTC)),
        **({"owner": batch.owner} if batch.owner else {}),
        **({"reverted": json.dumps(batch.reverted)} if batch.reverted else {}),
    }

    def write() -> None:
        pipe = client.pipeline()
        pipe.hset(_batch_key(prefix, batch.batch_id), mapping=meta)
        pipe.hsetnx(_batch_key(prefix, batch.batch_id), "updatedAt", _iso(batch.updated_at))
        pipe.hincrby(_batch_key(prefix, batch.batch_id), "version", 1)
        _put_newer(pipe, prefix, batch.batch_id, [entry(f) for f in batch.files])
        pipe.execute()

    _guard(write)


def put_file(client: redis.Redis, prefix: str, batch_id: str, file: Entry) -> None:
    """Write one file's entry unless the view already holds a newer one."""

    def write() -> None:
        pipe = client.pipeline()
        _put_newer(pipe, prefix, batch_id, [file])
        pipe.execute()

    _guard(write)


def put_notifications(
    client: redis.Redis, prefix: str, batch_id: str, notifications: list[Entry], revision: int
) -> None:
    """Show the batch's deliveries, unless the view already shows a newer state of them."""
    key = _batch_key(prefix, batch_id)
    encoded = json.dumps(notifications)
    _guard(lambda: client.eval(_PUT_NOTIFICATIONS, 1, key, TTL_SECONDS, revision, encoded))


def freshness(
    client: redis.Redis, prefix: str, batch_id: str
) -> tuple[str | None, str | None, str | None]:
    """(version, checkedAt, owner): one cheap read to tell whether a cached answer is still
    right, whether the view is due to be compared with the ledger, and who may read it."""
    fields = ["version", "checkedAt", "owner"]
    values = _guard(lambda: client.hmget(_batch_key(prefix, batch_id), fields))
    version, checked, owner = (v.decode() if isinstance(v, bytes) else v for v in values)
    return version, checked, owner


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
    # one decode for every entry: a 1,000-file batch is one C call, not a thousand
    decoded = json.loads(b"[" + b",".join(files.values()) + b"]")
    entries = sorted(decoded, key=lambda e: e["position"])
    return {k.decode(): v.decode() for k, v in meta.items()}, entries


def _put_newer(pipe: redis.client.Pipeline, prefix: str, batch_id: str, files: list[Entry]) -> None:
    triples: list[Any] = []
    for file in files:
        triples += [file["objectKey"], file["revision"], json.dumps(file)]
    pipe.eval(
        _PUT_NEWER,
        2,
        _batch_key(prefix, batch_id),
        _files_key(prefix, batch_id),
        TTL_SECONDS,
        _iso(datetime.now(UTC)),
        *triples,
    )


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
