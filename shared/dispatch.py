"""Hand stored objects to process-file when no upload event will do it (bulk/process, retry).

With PROCESS_FILE_URL set, each object goes to the process-file function as a MinIO-format
notification, so the platform scales and retries it like any upload; without it, the object is
processed in this process, in the background.
"""

import json
import logging
import urllib.request
from collections.abc import Iterable

from . import storage
from .clients import Clients
from .events import minio_notification
from .process import process_object

log = logging.getLogger("ingest")


def hand_over(clients: Clients, object_keys: Iterable[str]) -> int:
    """Queue every key whose object has landed; returns how many were queued."""
    settings = clients.settings
    landed = [
        found for key in object_keys
        if (found := storage.stat(clients.store, settings.s3_bucket, key)) is not None
    ]
    for found in landed:
        clients.background.submit(_deliver, clients, found)
    return len(landed)


def _deliver(clients: Clients, found: storage.StoredObject) -> None:
    settings = clients.settings
    try:
        if not settings.process_file_url:
            process_object(clients, found.key)
            return
        body = minio_notification(settings.s3_bucket, found.key, found.etag, found.size,
                                  found.last_modified)
        request = urllib.request.Request(
            settings.process_file_url, data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json",
                     **({"Authorization": f"Bearer {settings.webhook_token}"}
                        if settings.webhook_token else {})},
        )
        with urllib.request.urlopen(request, timeout=600) as response:
            response.read()
    except Exception:  # a background task has no caller: log, and leave the ledger as it is
        log.exception("hand-over of %s failed", found.key)
