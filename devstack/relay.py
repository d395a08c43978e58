"""Development stand-in for MinIO's bucket-notification webhook (moto sends none)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from shared import storage

from .client import ANY_FAILURE, Backoff, Client, DeliveryError, notification
from .services import object_store, settings


class WebhookRelay(threading.Thread):
    """Polls the bucket for new or changed objects under uploads/ and delivers each to
    process-file in MinIO's webhook format, several in flight, again after every non-2xx
    answer as MinIO's queue does."""

    def __init__(
        self, env: Mapping[str, str], client: Client, in_flight: int = 4, interval: float = 0.2
    ) -> None:
        super().__init__(daemon=True, name="webhook-relay")
        self._store = object_store(env)
        self._bucket = settings(env).s3_bucket
        self._client = client
        self._interval = interval
        self._seen: set[tuple[str, str]] = set()
        self._pool = ThreadPoolExecutor(in_flight, thread_name_prefix="relay")
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self.delivered = 0

    def run(self) -> None:
        while not self._stopped.wait(self._interval):
            for found in storage.list_objects(self._store, self._bucket, "uploads/"):
                if (found.key, found.etag) not in self._seen:
                    self._seen.add((found.key, found.etag))
                    self._pool.submit(self._deliver, found)

    def _deliver(self, found: storage.StoredObject) -> None:
        # The object's own upload time, as MinIO's eventTime is: not when the relay noticed it
        # (which would order uploads by polling round and key).
        body = notification(self._bucket, found.key, found.etag, found.size, found.last_modified)
        try:
            self._client.deliver(
                body, retry=ANY_FAILURE, backoff=Backoff(0.1, 3.0, 300.0), timeout=600
            )
        except DeliveryError:
            return
        with self._lock:
            self.delivered += 1

    def stop(self) -> None:
        self._stopped.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
