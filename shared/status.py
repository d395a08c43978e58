"""Status use cases: the batch's progress (from the Redis view, rebuilt from the ledger when
missing or due for a check), its notifications (sent here when a poll finds one due), and
retry of failed files."""

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from . import access, batch_view, database, layout, notify, storage
from .clients import Clients, get_clients
from .dispatch import hand_over
from .errors import NotFoundError, RequestError

REJECTS_URL_EXPIRY = timedelta(hours=24)
# Rejects URLs are signed at the start of the hour and valid an hour longer than promised, so
# an unchanged batch's answer is byte-identical (and its ETag the same) for the whole hour.
SIGNING_WINDOW = timedelta(hours=1)
# Pollers of one batch share the answer until the batch changes; within STATUS_FRESH_SECONDS
# of the last look at the view it is answered without looking again (at most that far behind).
STATUS_CACHE_SECONDS = 30.0
STATUS_FRESH_SECONDS = 0.5
FILE_VIEWS = ("all", "failed", "none")
STATUS_CACHE_BATCHES = 1000
log = logging.getLogger("ingest")


FINAL_STATES = ("COMPLETED", "PARTIAL", "FAILED", "REVERTED")


@dataclass(frozen=True)
class _Answer:
    version: str | None
    built: float
    final: bool
    status: dict[str, Any]
    revisions: list[int]  # each file's ledger revision, in the order of status["files"]
    encoded: bytes  # the full answer
    etag: str
    due: float | None  # when a delivery this process can send is next due (epoch seconds)
    owner: str | None = None  # the batch's owner when the answer was built (token scoping)
    confirmed: float = 0.0  # when the view was last seen unchanged (time.monotonic())


@dataclass(frozen=True)
class Poll:
    """What a poller asks for: which files' entries (all, failed only, none), only the files
    changed after a cursor it got before, and the ETag of the answer it holds."""

    files: str = "all"
    changed_since: int | None = None
    if_none_match: str | None = None


@dataclass(frozen=True)
class Polled:
    body: bytes | None  # None: the poller's copy is current (answer 304)
    etag: str


def poll_status(
    clients: Clients, batch_id: str, caller: str | None = None, poll: Poll = Poll()
) -> Polled:
    """The status answer a poller asked for. `cursor` in it is the highest file revision it
    reflects: asking `changed_since=cursor` next time returns only files changed since."""
    answer = _answer(clients, batch_id, caller)
    if poll.files == "all" and poll.changed_since is None:
        body, etag = answer.encoded, answer.etag
    else:
        body = _encode(_filtered(answer, poll))
        etag = _etag(body)
    if poll.if_none_match is not None and etag in _etags(poll.if_none_match):
        return Polled(None, etag)
    return Polled(body, etag)


def batch_status(clients: Clients, batch_id: str, caller: str | None = None) -> bytes:
    """The batch's whole progress as JSON (every file's entry)."""
    return _answer(clients, batch_id, caller).encoded


def poll_from(args: Mapping[str, str], if_none_match: str | None) -> Poll:
    """The poll a request asks for: `?files=all|failed|none`, `?changedSince=<cursor>`."""
    files = args.get("files", "all")
    if files not in FILE_VIEWS:
        raise RequestError("INVALID_QUERY", f"files must be one of {', '.join(FILE_VIEWS)}.")
    since = args.get("changedSince")
    if since is not None and not (since.isdigit() and len(since) <= 18):
        raise RequestError("INVALID_QUERY", "changedSince must be a cursor from an answer.")
    return Poll(files, int(since) if since is not None else None, if_none_match)


def _filtered(answer: _Answer, poll: Poll) -> dict[str, Any]:
    since = poll.changed_since
    files = [
        entry
        for entry, revision in zip(answer.status["files"], answer.revisions, strict=True)
        if (poll.files == "all" or (poll.files == "failed" and entry["status"] == "FAILED"))
        and (since is None or revision > since)
    ]
    return {**answer.status, "files": files}


def _encode(status: dict[str, Any]) -> bytes:
    return json.dumps(status, separators=(",", ":")).encode()


def _etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}


def _answer(clients: Clients, batch_id: str, caller: str | None) -> _Answer:
    """The batch's progress; while its view has not changed, the answer built last time
    (pollers of one batch share it, and building and encoding are most of an answer's cost).

    While the batch is open its view is compared with the ledger every VIEW_CHECK_SECONDS:
    a view write lost to a Redis outage, or files Redis never heard of, are healed then."""
    prefix = clients.settings.redis_key_prefix
    cached = clients.status_cache.get(batch_id)
    if (
        isinstance(cached, _Answer)
        and time.monotonic() - cached.confirmed < STATUS_FRESH_SECONDS
        and (cached.due is None or cached.due > time.time())
    ):
        # pollers of a moving batch share one view read per STATUS_FRESH_SECONDS
        access.check_owner(clients.settings, batch_id, cached.owner, caller)
        return cached
    version, checked_at, owner = batch_view.freshness(clients.redis, prefix, batch_id)
    if version is None:  # no view: the ledger decides whether the batch exists for the caller
        access.require_batch(clients, batch_id, caller)
    else:
        access.check_owner(clients.settings, batch_id, owner, caller)
    due = _check_due(clients, checked_at)
    if (
        isinstance(cached, _Answer)
        and version is not None
        and cached.version == version
        and (cached.final or not due)
        and time.monotonic() - cached.built < STATUS_CACHE_SECONDS
        and (cached.due is None or cached.due > time.time())
    ):
        confirmed = replace(cached, confirmed=time.monotonic())
        clients.status_cache[batch_id] = confirmed
        return confirmed
    status = _build_status(clients, batch_id)
    if due and status["status"] not in FINAL_STATES:
        _rebuild(clients, batch_id)
        status = _build_status(clients, batch_id)
    if (due_at := _due(clients, status)) is not None and due_at <= time.time():
        notify.send_due(clients, batch_id)
        status = _build_status(clients, batch_id)
    version, _, owner = batch_view.freshness(clients.redis, prefix, batch_id)
    revisions = status.pop("_revisions")
    encoded = _encode(status)
    if len(clients.status_cache) >= STATUS_CACHE_BATCHES:
        clients.status_cache.clear()
    final = status["status"] in FINAL_STATES
    answer = _Answer(
        version,
        time.monotonic(),
        final,
        status,
        revisions,
        encoded,
        _etag(encoded),
        _due(clients, status),
        owner,
        time.monotonic(),
    )
    clients.status_cache[batch_id] = answer
    return answer


def _due(clients: Clients, status: dict[str, Any]) -> float | None:
    """When the first pending delivery this process can send is due (None: none is)."""
    sendable = notify.channels(clients.settings)
    times = [
        datetime.fromisoformat(n["nextAttemptAt"].replace("Z", "+00:00")).timestamp()
        for n in status["notifications"]
        if n["state"] == "PENDING" and n["channel"] in sendable and n["nextAttemptAt"]
    ]
    return min(times) if times else None


def _check_due(clients: Clients, checked_at: str | None) -> bool:
    if checked_at is None:
        return True
    checked = datetime.fromisoformat(checked_at.replace("Z", "+00:00"))
    age = datetime.now(UTC) - checked
    return age.total_seconds() >= clients.settings.view_check_seconds


def _rebuild(clients: Clients, batch_id: str) -> None:
    """Write the ledger's snapshot of the batch into the view (newer entries are kept)."""
    batch = database.require_batch(clients.pool, batch_id)
    batch_view.put_batch(clients.redis, clients.settings.redis_key_prefix, batch)
    notify.project(clients, batch_id)
    clients.forget_status(batch_id)


def _build_status(clients: Clients, batch_id: str) -> dict[str, Any]:
    settings = clients.settings
    view = batch_view.read_batch(clients.redis, settings.redis_key_prefix, batch_id)
    if view is None or "createdAt" not in view[0]:
        _rebuild(clients, batch_id)
        view = batch_view.read_batch(clients.redis, settings.redis_key_prefix, batch_id)
        assert view is not None
    meta, entries = view
    counts = {
        s: sum(1 for e in entries if e["status"] == s)
        for s in ("PENDING", "PROCESSING", "COMPLETED", "FAILED")
    }
    total, done, failed = len(entries), counts["COMPLETED"], counts["FAILED"]
    signed_at = _window_start()
    revisions = [int(e.get("revision", 0)) for e in entries]
    reverted = json.loads(meta["reverted"]) if meta.get("reverted") else None
    return {
        "batchId": batch_id,
        "status": "REVERTED" if reverted else _batch_state(total, done, failed),
        "progress": round(100.0 * (done + failed) / total, 2) if total else 0.0,
        "total": total,
        "processed": done,
        "failed": failed,
        "rowsLoaded": sum(e["rowsLoaded"] for e in entries),
        "rowsRejected": sum(e["rowsRejected"] for e in entries),
        "createdAt": meta["createdAt"],
        "updatedAt": meta.get("updatedAt", meta["createdAt"]),
        "queue": {
            "waiting": counts["PENDING"],
            "active": counts["PROCESSING"],
            "completed": done,
            "failed": failed,
        },
        "files": [_file(clients, e, signed_at) for e in entries],
        "warnings": sum(sum(e.get("warnings", {}).values()) for e in entries),
        "revert": reverted,
        "notifications": json.loads(meta.get("notifications", "[]")),
        "cursor": max(revisions, default=0),
        "_revisions": revisions,  # taken out before the answer is encoded
    }


def _window_start() -> datetime:
    now = datetime.now(UTC)
    return now - (now - datetime.min.replace(tzinfo=UTC)) % SIGNING_WINDOW


def retry_failed(clients: Clients, batch_id: str, caller: str | None = None) -> dict[str, Any]:
    """Process the batch's failed files again from the stored objects."""
    access.require_batch(clients, batch_id, caller)
    retried = database.reset_failed(clients.pool, batch_id)
    _rebuild(clients, batch_id)
    hand_over(clients, (f.object_key for f in retried))
    return {"batchId": batch_id, "retried": len(retried)}


def queue_length() -> float:
    """Files waiting in all batches, for the csv_queue_length gauge (NaN when unknown)."""
    try:
        return float(database.count_waiting(get_clients().pool))
    except Exception:  # a scrape must not lose every other metric over this one
        log.warning("csv_queue_length unavailable", exc_info=True)
        return float("nan")


def _batch_state(total: int, done: int, failed: int) -> str:
    if done + failed == 0:
        return "PENDING"
    if done + failed < total:
        return "PROCESSING"
    if failed == 0:
        return "COMPLETED"
    return "FAILED" if done == 0 else "PARTIAL"


def _file(clients: Clients, entry: dict[str, Any], signed_at: datetime) -> dict[str, Any]:
    rejects_key = entry.get("rejectsKey")
    return {
        "fileName": entry["fileName"],
        "objectKey": entry["objectKey"],
        "status": entry["status"],
        "tickers": entry["tickers"],
        "rowsLoaded": entry["rowsLoaded"],
        "rowsRejected": entry["rowsRejected"],
        "error": entry["error"],
        "rejectsUrl": _signed(clients, rejects_key, signed_at),
        "warnings": sum(entry.get("warnings", {}).values()),
        "warningCounts": entry.get("warnings", {}),
        "warningsUrl": _signed(clients, entry.get("warningsKey"), signed_at),
        "series": entry.get("series"),
    }


def _signed(clients: Clients, key: str | None, signed_at: datetime) -> str | None:
    if not key:
        return None
    return storage.presigned_get(
        clients.signer,
        clients.settings.s3_bucket,
        key,
        REJECTS_URL_EXPIRY + SIGNING_WINDOW,
        signed_at,
    )


def revert_batch(clients: Clients, batch_id: str, caller: str | None = None) -> dict[str, Any]:
    """Undo the batch once (shared/database.py revert_batch); a repeated call answers what the
    first one did. The view shows the batch REVERTED, and its notification is sent now."""
    access.require_batch(clients, batch_id, caller)
    settings = clients.settings
    done, now = database.revert_batch(
        clients.pool, batch_id, settings.history_retention_days, notify.outbox(settings)
    )
    _rebuild(clients, batch_id)
    if now:
        notify.send_due(clients, batch_id)
    return {"batchId": batch_id, "status": "REVERTED", "alreadyReverted": not now, **done}


def lineage(clients: Clients, args: Mapping[str, str]) -> dict[str, Any]:
    """Which file version and batch wrote a stored row, and the values it replaced."""
    ticker = args.get("ticker", "").strip().upper()
    try:
        day = date.fromisoformat(args.get("date", ""))
    except ValueError:
        raise RequestError("INVALID_QUERY", "date must be a date as YYYY-MM-DD.") from None
    if not layout.is_symbol(ticker):
        raise RequestError("INVALID_QUERY", "ticker must be a plausible symbol.")
    found = database.lineage(clients.pool, ticker, day)
    if found is None:
        raise NotFoundError("ROW_NOT_FOUND", f"No row of {ticker[:20]!r} on {day} is stored.")
    row, history = found["row"], found["history"]
    return {
        "ticker": ticker,
        "date": day.isoformat(),
        "row": _lineage_row(row) if row else None,
        "replaced": [_lineage_row(h) for h in history],
    }


def _lineage_row(row: Mapping[str, Any]) -> dict[str, Any]:
    names = {"open_interest": "openInterest", "uploaded_at": "uploadedAt"}
    values = {
        names.get(f, f): str(row[f])
        for f in ("open", "high", "low", "close", "volume", "open_interest")
    }
    extra = {
        "uploadedAt": row["uploaded_at"].isoformat(),
        "batchId": row.get("batch_id"),
        "objectKey": row.get("object_key"),
    }
    if "file_name" in row:
        extra["fileName"] = row["file_name"]
    if "recorded_at" in row:
        extra["replacedAt"] = row["recorded_at"].isoformat()
        extra["replacedByBatchId"] = row["replaced_by_batch"]
        extra["replacedByObjectKey"] = row["replaced_by_object"]
    return {**values, **extra}
