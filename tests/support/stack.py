"""The running stack as the e2e tests see it: its environment and function URLs, a worker of
their own, and one uploaded file."""

from dataclasses import dataclass
from typing import Any

from devstack.client import Client
from devstack.processes import Process

WEBHOOK_TOKEN = "hook-token"
Stack = tuple[dict[str, str], dict[str, str]]  # (environment, function URLs)


@dataclass(frozen=True)
class Spawned:
    url: str
    process: Process


def upload_one(client: Client, name: str, body: bytes) -> tuple[str, dict[str, Any]]:
    """Presign and upload one file; its batch id and the notification the store sends."""
    batch, notifications = client.upload_batch([(name, body)])
    return batch["batchId"], notifications[0]
