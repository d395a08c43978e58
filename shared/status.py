"""Status use cases: the batch's progress (from the Redis view, rebuilt from the ledger when
missing or due for a check), its notifications (sent here when a poll finds one due), and
retry of failed files."""

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from . import access, batch_view, database, notify, storage
from .clients import Clients, get_clients
from .dispatch import hand_over

REJECTS_URL_EXPIRY = timedelta(hours=24)
# Pollers of one batch share the answer until the batch changes (rejects URLs stay fresh).
STATUS_CACHE_SECONDS = 30.0
STATUS_CACHE_BATCHES = 1000
log = logging.getLogger("ingest")


FINAL_STATES = ("COMPLETED", "PARTIAL", "FAILED")


@dataclass(frozen=True)
class _Answer:
    version: str | None
    built: float
    final: bool
    encoded: bytes
    due: float | None  # when a delivery this process can send is next due (epoch seconds)


def batch_status(clients: Clients, batch_id: str, caller: str | None = None) -> bytes:
    """The batch's progress as JSON; while its view has not changed, the answer encoded last
    time (pollers of one batch share it, and encoding is most of an answer's cost).

    While the batch is open its view is compared with the ledger every VIEW_CHECK_SECONDS:
    a view write lost to a Redis outage, or files Redis never heard of, are healed then."""
    prefix = clients.settings.redis_key_prefix
    version, checked_at, owner = batch_view.freshness(clients.redis, prefix, batch_id)
    if version is None:  # no view: the ledger decides whether the batch exists for the caller
        access.require_batch(clients, batch_id, caller)
    else:
        access.check_owner(clients.settings, batch_id, owner, caller)
    due = _check_due(clients, checked_at)
    cached = clients.status_cache.get(batch_id)
    if (
        isinstance(cached, _Answer)
        and version is not None
        and cached.version == version
        and (cached.final or not due)
        and time.monotonic() - cached.built < STATUS_CACHE_SECONDS
        and (cached.due is None or cached.due > time.time())
    ):
        return cached.encoded
    status = _build_status(clients, batch_id)
    if due and status["status"] not in FINAL_STATES:
        _rebuild(clients, batch_id)
        status = _build_status(clients, batch_id)
    if (due_at := _due(clients, status)) is not None and due_at <= time.time():
        notify.send_due(clients, batch_id)
        status = _build_status(clients, batch_id)
    version = batch_view.freshness(clients.redis, prefix, batch_id)[0]
    encoded = json.dumps(status, separators=(",", ":")).encode()
    if len(clients.status_cache) >= STATUS_CACHE_BATCHES:
        clients.status_cache.clear()
    final = status["status"] in FINAL_STATES
    answer = _Answer(version, time.monotonic(), final, encoded, _due(clients, status))
    clients.status_cache[batch_id] = answer
    return encoded


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
    return {
        "batchId": batch_id,
        "status": _batch_state(total, done, failed),
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
        "files": [_file(clients, e) for e in entries],
        "notifications": json.loads(meta.get("notifications", "[]")),
    }


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


def _file(clients: Clients, entry: dict[str, Any]) -> dict[str, Any]:
    rejects_key = entry.get("rejectsKey")
    return {
        "fileName": entry["fileName"],
        "objectKey": entry["objectKey"],
        "status": entry["status"],
        "tickers": entry["tickers"],
        "rowsLoaded": entry["rowsLoaded"],
        "rowsRejected": entry["rowsRejected"],
        "error": entry["error"],
        "rejectsUrl": storage.presigned_get(
            clients.signer, clients.settings.s3_bucket, rejects_key, REJECTS_URL_EXPIRY
        )
        if rejects_key
        else None,
    }
