"""Periodic reconciliation (a CronJob): nothing waits forever.

Landed objects whose event never came are processed; files left PROCESSING by a dead worker are
taken over once their lease has expired; presigned files never uploaded are failed once their
upload URL has expired, so every batch reaches a final state.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from . import database, storage
from .clients import Clients
from .process import fail_never_uploaded, process_object


@dataclass
class Reconciled:
    processed: int = 0
    never_uploaded: int = 0
    left_waiting: int = 0


def reconcile(clients: Clients) -> Reconciled:
    settings = clients.settings
    now = datetime.now(UTC)
    grace = timedelta(seconds=settings.event_grace_seconds)
    result = Reconciled()
    for record, url_expires_at, takeable in database.unfinished_files(
        clients.pool, settings.processing_lease_seconds
    ):
        stored = storage.stat(clients.store, settings.s3_bucket, record.object_key)
        if stored is None and url_expires_at < now:
            fail_never_uploaded(clients, record, url_expires_at)
            result.never_uploaded += 1
        elif stored is not None and takeable and stored.last_modified < now - grace:
            process_object(clients, record.object_key)
            result.processed += 1
        else:
            result.left_waiting += 1
    return result
