"""The webhook relay: every new or changed object under uploads/ is delivered, until 2xx."""

import io
import json
import secrets
import time

from devstack.client import Client
from devstack.relay import WebhookRelay
from devstack.services import object_store
from shared import storage
from tests.support.receiver import Receiver


def _wait(check: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_relay_delivers_new_and_changed_uploads_again_after_failures(
    environment: dict[str, str], receiver: Receiver
) -> None:
    env = {**environment, "WEBHOOK_TOKEN": "hook", "S3_BUCKET": f"relay-{secrets.token_hex(4)}"}
    store, bucket = object_store(env), env["S3_BUCKET"]
    storage.ensure_bucket(store, bucket)
    receiver.answers = [500]
    relay = WebhookRelay(env, Client.of(env, {"process-file": receiver.url}), interval=0.05)
    relay.start()
    try:
        store.put_object(bucket, "uploads/b_x/one.csv", io.BytesIO(b"a\n"), 2)
        store.put_object(bucket, "elsewhere/two.csv", io.BytesIO(b"b\n"), 2)
        _wait(lambda: relay.delivered == 1)
        store.put_object(bucket, "uploads/b_x/one.csv", io.BytesIO(b"changed\n"), 8)
        _wait(lambda: relay.delivered == 2)
    finally:
        relay.stop()
    keys = [json.loads(body)["Records"][0]["s3"]["object"]["key"] for _, body in receiver.got]
    assert len(receiver.got) == 3 and set(keys) == {"uploads%2Fb_x%2Fone.csv"}
    assert {h["Authorization"] for h, _ in receiver.got} == {"Bearer hook"}
    # each event carries the object's own upload time, as MinIO's eventTime does
    stored = store.stat_object(bucket, "uploads/b_x/one.csv").last_modified
    times = [json.loads(body)["Records"][0]["eventTime"] for _, body in receiver.got]
    assert stored is not None and times[-1] == stored.isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )
