"""The browser tier's world: the stack's settings, its relay, and what a test gets from it."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from minio import Minio

from devstack.client import ANY_FAILURE, Backoff, Client, DeliveryError, notification
from devstack.page import PageStack
from devstack.relay import WebhookRelay
from devstack.services import object_store
from shared import storage

MIB = 1 << 20
# Short-lived upload URLs, so that signing again is exercised; small multipart parts.
STACK_CHANGES = {
    "WEBHOOK_TOKEN": "hook-token",
    "EVENT_GRACE_SECONDS": "600",  # processing comes from upload events (the relay)
    "PRESIGN_EXPIRY_SECONDS": "6",
    "MULTIPART_THRESHOLD_BYTES": str(6 * MIB),
    "MULTIPART_PART_BYTES": str(5 * MIB),
}


class Relay(WebhookRelay):
    """MinIO's notifications, except for keys whose event the broker gives up on: those go to
    process-file's dead-letter route, as a Knative broker's dead-letter sink delivers them."""

    def __init__(self, env: dict[str, str], client: Client) -> None:
        super().__init__(env, client)
        self.give_up: set[str] = set()

    def _deliver(self, found: storage.StoredObject) -> None:
        if not any(found.key.endswith(suffix) for suffix in self.give_up):
            return super()._deliver(found)
        body = notification(self._bucket, found.key, found.etag, found.size)
        url = self._client.urls["process-file"] + "/dead-letter"
        try:
            self._client.deliver(body, url=url, retry=ANY_FAILURE, backoff=Backoff(0.1, 1, 60))
        except DeliveryError:
            return


@dataclass(frozen=True)
class Browsed:
    env: dict[str, str]
    served: PageStack
    client: Client
    relay: Relay

    @property
    def store(self) -> Minio:
        return object_store(self.env)

    @property
    def bucket(self) -> str:
        return self.env["S3_BUCKET"]

    def rows_of(self, tickers: list[str]) -> int:
        """Rows PostgreSQL holds for these tickers."""
        with psycopg.connect(self.env["DATABASE_URL"]) as conn:
            row = conn.execute(
                "SELECT count(*) FROM seasonality_data d JOIN tickers t ON t.id = d.ticker_id"
                " WHERE t.symbol = ANY(%s)",
                (tickers,),
            ).fetchone()
        return int(row[0]) if row else 0
