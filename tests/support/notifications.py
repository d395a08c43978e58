"""Object-created notifications delivered to an in-process process-file."""

from typing import Any

from devstack.client import minio_webhook


def as_post(notification: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of a test client's post() delivering MinIO's webhook body."""
    headers, body = minio_webhook(notification)
    return {"headers": headers, "data": body}
