import json
from datetime import UTC, datetime

import pytest

from devstack.client import binary_cloudevent, minio_webhook, structured_cloudevent
from shared.errors import BadNotificationError
from shared.events import minio_notification, parse_notification
from tests.support.env import EVENTS

WHEN = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _minio_fixture() -> dict[str, object]:
    return dict(json.loads((EVENTS / "minio-webhook-put.json").read_text()))


def test_real_minio_webhook_body_is_read() -> None:
    headers, body = minio_webhook(_minio_fixture())
    [upload] = parse_notification(headers, body)
    assert (upload.bucket, upload.key, upload.etag, upload.size) == (
        "test-bucket",
        "image.jpg",
        "eb52f8e46f60a27a8a1a704e25757f30",
        84452,
    )
    assert upload.event_time == datetime(2025, 2, 6, 1, 4, 31, 998000, tzinfo=UTC)


def test_escaped_keys_are_decoded() -> None:
    key = "uploads/b_1/0001_INFY Historical Data+x's.csv"
    headers, body = minio_webhook(minio_notification("bkt", key, "e1", 10, WHEN))
    assert "%2F" in body.decode() and "+" in body.decode()
    assert parse_notification(headers, body)[0].key == key


@pytest.mark.parametrize("form", [binary_cloudevent, structured_cloudevent, minio_webhook])
def test_every_form_gives_the_same_upload(form: object) -> None:
    notification = minio_notification("bkt", "uploads/b_1/0000_A.csv", "e1", 10, WHEN)
    headers, body = form(notification)  # type: ignore[operator]
    [upload] = parse_notification(headers, body)
    assert (upload.key, upload.etag, upload.event_time) == ("uploads/b_1/0000_A.csv", "e1", WHEN)


def test_binary_cloudevent_headers_are_case_insensitive() -> None:
    headers, body = binary_cloudevent(minio_notification("b", "uploads/x/y.csv", "e", 1, WHEN))
    upper = {name.title(): value for name, value in headers.items()}
    assert parse_notification(upper, body)[0].key == "uploads/x/y.csv"


@pytest.mark.parametrize(
    "name",
    [
        "s3:ObjectCreated:Copy",
        "s3:ObjectCreated:PutTagging",
        "s3:ObjectRemoved:Delete",
        "s3:ObjectCreated:PutRetention",
    ],
)
def test_non_upload_events_are_dropped(name: str) -> None:
    notification = minio_notification("b", "uploads/x/y.csv", "e", 1, WHEN)
    notification["Records"][0]["eventName"] = name
    assert parse_notification(*minio_webhook(notification)) == []


@pytest.mark.parametrize(
    "name",
    ["s3:ObjectCreated:Post", "ObjectCreated:Put", "s3:ObjectCreated:CompleteMultipartUpload"],
)
def test_upload_event_names_are_accepted(name: str) -> None:
    notification = minio_notification("b", "uploads/x/y.csv", "e", 1, WHEN)
    notification["Records"][0]["eventName"] = name
    assert len(parse_notification(*minio_webhook(notification))) == 1


def test_notification_without_records_is_empty() -> None:
    assert parse_notification(*minio_webhook({"EventName": "s3:TestEvent", "Records": []})) == []
    assert parse_notification(*minio_webhook({"Records": []})) == []


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"hello": "world"}',
        b'{"Records": "nope"}',
        b'{"Records": [{"eventName": "s3:ObjectCreated:Put"}]}',
    ],
)
def test_bodies_that_are_no_notification_are_refused(body: bytes) -> None:
    with pytest.raises(BadNotificationError):
        parse_notification({"Content-Type": "application/json"}, body)


def test_broken_cloudevent_is_refused() -> None:
    with pytest.raises(BadNotificationError):
        parse_notification({"Content-Type": "application/cloudevents+json"}, b'{"data": 1}')


def test_knative_trigger_delivery_fixture_is_read() -> None:
    fixture = json.loads((EVENTS / "knative-kafka-binary.json").read_text())
    [upload] = parse_notification(fixture["headers"], json.dumps(fixture["body"]).encode())
    assert upload.bucket == "seasonality-uploads"
    assert upload.key == "uploads/b_01M8KCT7DSE6CKGMBAVX3XVCN6/0000_INFY Historical Data.csv"
    assert upload.etag == "eb52f8e46f60a27a8a1a704e25757f30"
