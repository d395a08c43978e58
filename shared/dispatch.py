"""Hand stored objects to processing when no upload event will (bulk/process, retry).

With PROCESS_FILE_URL set, each object goes to the process-file function as a MinIO-format
notification, so the platform scales it like any upload; without it, the object is processed
in this process, in the background. Either way the ledger's claim keeps it to one load.
"""

import json
import logging
import threading
import urllib.request
from collections.abc import Iterable

from . import database, storage
from .clients import Clients
from .events import minio_notification
from .process import process_object

log = logging.getLogger("ingest")


def hand_over(clients: Clients, object_keys: Iterable[str], grace_seconds: float = 0) -> int:
    """Queue every key whose object has landed; returns how many were queued.

    After `grace_seconds` a key is processed only if its upload event has still not started
    it, so a caller racing the events does not make every file be read twice.
    """
    settings = clients.settings
    landed = [
        found
        for key in object_keys
        if (found := storage.stat(clients.store, settings.s3_bucket, key)) is not None
    ]
    if landed:
        # The grace runs on a daemon timer, not in a pool thread: a process told to stop
        # (scale-down, redeploy) exits at once instead of waiting out the grace; what it did not
        # hand over its upload events or the reconcile sweep still process.
        timer = threading.Timer(
            grace_seconds, clients.background.submit, (_deliver_all, clients, landed, grace_seconds)
        )
        timer.daemon = True
        timer.start()
    return len(landed)


def _deliver_all(clients: Clients, landed: list[storage.StoredObject], grace: float) -> None:
    for found in landed:
        try:
            record = database.get_file(clients.pool, found.key)
            if grace and record is not None and record.status != "PENDING":
                continue
            _deliver(clients, found)
        except Exception:  # a background task has no caller: log, and leave the ledger as is
            log.exception("hand-over of %s failed", found.key)


def _deliver(clients: Clients, found: storage.StoredObject) -> None:
    settings = clients.settings
    if not settings.process_file_url:
        process_object(clients, found.key)
        return
    body = minio_notification(
        settings.s3_bucket, found.key, found.etag, found.size, found.last_modified
    )
    headers = {"Content-Type": "application/json"}
    if settings.webhook_token:
        headers["Authorization"] = f"Bearer {settings.webhook_token}"
    request = urllib.request.Request(
        settings.process_file_url, data=json.dumps(body).encode(), method="POST", headers=headers
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        response.read()
