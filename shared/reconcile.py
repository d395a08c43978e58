"""Periodic reconciliation (a CronJob): nothing waits forever.

Landed objects whose event never came are processed (files a dead worker left PROCESSING
included: its lock died with it); presigned files never uploaded are failed once their upload
URL has expired, so every batch reaches a final state. One file's trouble never stops the
sweep: it is reported, and the next file is taken. Last, every notification due is sent (those
a process committed but died before sending included), and the superseded values older than
HISTORY_RETENTION_DAYS are pruned (their batches can no longer be reverted).
"""

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from . import database, notify, storage
from .clients import Clients
from .errors import BusyError
from .process import fail_never_uploaded, process_object

log = logging.getLogger("ingest")
NOTIFICATIONS_PER_SWEEP = 1000


@dataclass
class Reconciled:
    processed: int = 0
    never_uploaded: int = 0
    left_waiting: int = 0
    busy: int = 0
    errors: dict[str, str] = field(default_factory=dict)  # object key -> what went wrong
    notifications: dict[str, int] = field(default_factory=dict)  # state -> deliveries sent
    history_pruned: int = 0  # superseded values older than HISTORY_RETENTION_DAYS, dropped


def reconcile(clients: Clients) -> Reconciled:
    settings = clients.settings
    now = datetime.now(UTC)
    grace = timedelta(seconds=settings.event_grace_seconds)
    result = Reconciled()
    for record, url_expires_at in database.unfinished_files(clients.pool):
        try:
            stored = storage.stat(clients.store, settings.s3_bucket, record.object_key)
            if stored is None and url_expires_at < now:
                fail_never_uploaded(clients, record, url_expires_at)
                result.never_uploaded += 1
            elif stored is not None and stored.last_modified < now - grace:
                process_object(clients, record.object_key)
                result.processed += 1
            else:
                result.left_waiting += 1
        except BusyError:
            result.busy += 1
        except Exception as error:  # reported, and the sweep goes on with the next file
            log.warning("reconcile of %s failed", record.object_key, exc_info=True)
            result.errors[record.object_key] = f"{type(error).__name__}: {error}"[:300]
    result.notifications = notify.send_due(clients, limit=NOTIFICATIONS_PER_SWEEP)
    result.history_pruned = database.prune_history(clients.pool, settings.history_retention_days)
    return result
