"""The API client's notification forms and its delivery loop, against real HTTP servers."""

import pytest

from devstack.client import FORMS, Backoff, Client, DeliveryError, notification, upload
from devstack.processes import free_port
from devstack.services import object_store
from shared.events import ObjectCreated, parse_notification
from tests.support.receiver import Receiver

QUICK = Backoff(first=0.01, cap=0.01, deadline=5)


def _client(url: str, token: str = "hook") -> Client:
    return Client({"process-file": url}, "api", webhook_token=token, bucket="bkt")


@pytest.mark.parametrize("form", sorted(FORMS))
def test_every_form_parses_to_the_same_upload(form: str) -> None:
    body = notification("bkt", "uploads/b_1/0000 a+b.csv", "e1", 10)
    headers, data = FORMS[form](body)  # type: ignore[index]
    [found] = parse_notification(headers, data)
    assert isinstance(found, ObjectCreated)
    assert (found.bucket, found.key, found.etag, found.size) == (
        "bkt",
        "uploads/b_1/0000 a+b.csv",
        "e1",
        10,
    )


def test_deliver_sends_again_after_5xx_and_carries_the_webhook_token(receiver: Receiver) -> None:
    receiver.answers = [503, 502]
    done = _client(receiver.url).deliver(notification("bkt", "uploads/k.csv", "e", 1), "binary")
    assert (done.status, done.attempts, done.retries) == (204, 3, 2)
    assert all(h["Authorization"] == "Bearer hook" for h, _ in receiver.got)
    assert len({body for _, body in receiver.got}) == 1


def test_deliver_returns_a_final_refusal_without_sending_again(receiver: Receiver) -> None:
    receiver.answers = [401]
    done = _client(receiver.url, token="").deliver(notification("b", "uploads/k.csv", "e", 1))
    assert (done.status, done.attempts) == (401, 1)
    assert "Authorization" not in receiver.got[0][0]


def test_deliver_gives_up_when_nothing_listens_by_the_deadline() -> None:
    client = _client(f"http://127.0.0.1:{free_port()}/")
    with pytest.raises(DeliveryError, match="unreachable"):
        client.deliver(notification("b", "uploads/k.csv", "e", 1), backoff=QUICK)


def test_upload_puts_or_posts_exactly_as_the_target_says(environment: dict[str, str]) -> None:
    store = object_store(environment)
    bucket = environment["S3_BUCKET"]
    put_url = store.presigned_put_object(bucket, "uploads/put.csv")
    etag = upload({"method": "PUT", "uploadUrl": put_url, "headers": {}}, b"a,b\n")
    assert etag == store.stat_object(bucket, "uploads/put.csv").etag
    from datetime import UTC, datetime, timedelta

    from minio.datatypes import PostPolicy

    policy = PostPolicy(bucket, datetime.now(UTC) + timedelta(minutes=5))
    policy.add_equals_condition("key", "uploads/post.csv")
    fields = {**store.presigned_post_policy(policy), "key": "uploads/post.csv"}
    target = {"method": "POST", "uploadUrl": f"{environment['S3_ENDPOINT']}/{bucket}"}
    upload({**target, "headers": {}, "fields": fields}, b"c,d\n")
    assert store.get_object(bucket, "uploads/post.csv").read() == b"c,d\n"
