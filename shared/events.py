"""Every shape of object-created notification, parsed in this one place.

Accepted: a CloudEvent in binary or structured mode whose data is a MinIO/S3 notification,
or MinIO's own webhook JSON. The CloudEvent's type and source are not trusted to mean anything;
only the notification records inside decide.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from cloudevents.exceptions import GenericException
from cloudevents.http import from_http

from .errors import BadNotificationError

UPLOAD_EVENTS = ("ObjectCreated:Put", "ObjectCreated:Post", "ObjectCreated:CompleteMultipartUpload")


@dataclass(frozen=True)
class ObjectCreated:
    bucket: str
    key: str
    etag: str
    size: int | None
    event_time: datetime | None


def parse_notification(
    headers: Mapping[str, str], body: bytes, max_records: int = 100
) -> list[ObjectCreated]:
    """Upload records of one notification; other event kinds are dropped, not errors. More
    records than max_records is no notification an object store sends (MinIO sends one)."""
    try:
        notification = _notification(headers, body)
    except RecursionError:
        raise BadNotificationError("body is nested too deeply") from None
    records = _records(notification)
    if len(records) > max_records:
        raise BadNotificationError(f"{len(records)} records, more than the {max_records} accepted")
    return [upload for record in records if (upload := _upload(record)) is not None]


def _notification(headers: Mapping[str, str], body: bytes) -> Any:
    lowered = {name.lower(): value for name, value in headers.items()}
    is_cloudevent = "ce-specversion" in lowered or lowered.get("content-type", "").startswith(
        "application/cloudevents+json"
    )
    if is_cloudevent:
        try:
            data = from_http(dict(headers), body).data
        except GenericException as error:
            raise BadNotificationError(f"not a valid CloudEvent: {error}") from error
        return _json(data) if isinstance(data, str | bytes) else data
    return _json(body)


def _json(raw: str | bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadNotificationError("body is not JSON") from error


def _records(notification: Any) -> list[Mapping[str, Any]]:
    if not isinstance(notification, dict) or not (
        "Records" in notification or "EventName" in notification
    ):
        raise BadNotificationError("body has no notification records")
    records = notification.get("Records") or []
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise BadNotificationError("Records must be a list of objects")
    return records


def _upload(record: Mapping[str, Any]) -> ObjectCreated | None:
    name = str(record.get("eventName", ""))
    if name.removeprefix("s3:") not in UPLOAD_EVENTS:
        return None
    try:
        s3 = record["s3"]
        obj = s3["object"]
        key = unquote_plus(str(obj["key"]))
        bucket = str(s3["bucket"]["name"])
    except (KeyError, TypeError) as error:
        raise BadNotificationError(f"record lacks {error}") from error
    size = obj.get("size")
    return ObjectCreated(
        bucket=bucket,
        key=key,
        etag=str(obj.get("eTag") or obj.get("etag") or "").strip('"'),
        size=int(size) if isinstance(size, int | str) and str(size).isdigit() else None,
        event_time=_timestamp(record.get("eventTime")),
    )


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def minio_notification(
    bucket: str, key: str, etag: str, size: int, event_time: datetime
) -> dict[str, Any]:
    """A MinIO webhook body for one object, exactly as MinIO sends it (key query-escaped);
    an object joined from parts (etag `…-N`) is announced as CompleteMultipartUpload."""
    escaped = quote_plus(key, safe="")
    name = "s3:ObjectCreated:" + ("CompleteMultipartUpload" if "-" in etag else "Put")
    return {
        "EventName": name,
        "Key": f"{bucket}/{key}",
        "Records": [
            {
                "eventVersion": "2.0",
                "eventSource": "minio:s3",
                "awsRegion": "",
                "eventTime": event_time.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "eventName": name,
                "userIdentity": {"principalId": "ingest"},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "Config",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {
                        "key": escaped,
                        "size": size,
                        "eTag": etag,
                        "contentType": "text/csv",
                        "sequencer": "0",
                    },
                },
            }
        ],
    }
