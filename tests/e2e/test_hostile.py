"""The hostile corpus and hostile requests over the running stack: every delivery ends in an
empty 2xx (or a 5xx that stops within the bound), every file reaches a final state with the
outcome its reader test expects, and nothing another object holds is read."""

import io
import json
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import requests

from devstack.client import Backoff, Client
from devstack.data import ohlcv_csv
from devstack.services import object_store
from shared.events import minio_notification
from shared.keys import new_batch_id
from tests.data.hostile.make import LARGE, SMALL, Expected, Parsed, Rejected
from tests.support.stack import WEBHOOK_TOKEN, Stack

pytestmark = pytest.mark.e2e
# A sender that gives up after a minute: a file answering 5xx for longer fails the test.
BOUNDED = Backoff(first=0.2, cap=2.0, deadline=60)
HOOK = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}


def _corpus() -> list[tuple[str, bytes, Expected | None]]:
    files = [(name, body, expected) for name, (body, expected) in sorted(SMALL.items())]
    make, expected = LARGE["line_5_mib.csv"]
    return [*files, ("line_5_mib.csv", make(), expected)]


def _check_outcome(entry: dict[str, Any], expected: Expected | None) -> None:
    assert entry["status"] in ("COMPLETED", "FAILED"), entry
    if entry["status"] == "FAILED":
        assert entry["error"] and entry["tickers"] == []
        assert not isinstance(expected, Parsed), entry
        if isinstance(expected, Rejected):
            assert expected.cause.lower() in entry["error"].lower(), entry
        return
    assert not isinstance(expected, Rejected), entry
    if isinstance(expected, Parsed):
        got = (entry["rowsLoaded"], entry["rowsRejected"])
        assert got == (expected.loaded, expected.rejected), entry["fileName"]
        assert (entry["rejectsUrl"] is not None) == (expected.rejected > 0)


def test_every_hostile_file_ends_final_with_its_expected_outcome(client: Client) -> None:
    corpus = _corpus()
    batch = client.presign(
        [
            {"name": name, "size": len(body), "ticker": f"HOS{index:03d}"}
            for index, (name, body, _) in enumerate(corpus)
        ]
    )
    notifications = []
    for target, (_, body, _) in zip(batch["uploadUrls"], corpus, strict=True):
        etag = client.upload(target, body)
        notifications.append(client.notification(target, etag, len(body)))
    for notification in notifications:
        assert client.deliver(notification, backoff=BOUNDED).status == 204
    state = client.status(batch["batchId"])
    assert state["status"] in ("COMPLETED", "PARTIAL")
    assert state["processed"] + state["failed"] == len(corpus)
    for entry, (_, _, expected) in zip(state["files"], corpus, strict=True):
        _check_outcome(entry, expected)


@pytest.mark.parametrize("name", ["a*.csv", "a?.csv", "a[b].csv", "a{b,c}.csv"])
def test_an_object_key_that_would_glob_reads_only_its_own_object(
    stack: Stack, client: Client, name: str
) -> None:
    env, _ = stack
    store, bucket, batch_id = object_store(env), env["S3_BUCKET"], new_batch_id()
    mine = ohlcv_csv("GLOBME", 3)
    for key, body in ((name, mine), ("ab.csv", ohlcv_csv("GLOBAB", 50))):
        store.put_object(bucket, f"uploads/{batch_id}/{key}", io.BytesIO(body), len(body))
    key = f"uploads/{batch_id}/{name}"
    stat = store.stat_object(bucket, key)
    notification = minio_notification(
        bucket, key, (stat.etag or "").strip('"'), len(mine), datetime.now(UTC)
    )
    assert client.deliver(notification, backoff=BOUNDED).status == 204
    files = {f["objectKey"]: f for f in client.status(batch_id)["files"]}
    assert files[key]["status"] == "COMPLETED" and files[key]["rowsLoaded"] == 3
    assert files[key]["tickers"] == ["GLOBME"]


def _post(client: Client, body: bytes, **headers: str) -> requests.Response:
    return requests.post(
        client.urls["process-file"], data=body, headers={**HOOK, **headers}, timeout=30
    )


def test_hostile_requests_get_an_answer_that_is_never_retried_for_ever(
    stack: Stack, client: Client
) -> None:
    env, _ = stack
    record = minio_notification(env["S3_BUCKET"], "uploads/x/y.csv", "e", 1, datetime.now(UTC))
    many = {**record, "Records": record["Records"] * 101}
    deep = b'{"Records": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    outside = minio_notification(env["S3_BUCKET"], "elsewhere/a.csv", "e", 1, datetime.now(UTC))
    answers = {
        "more records than any store sends": _post(client, json.dumps(many).encode()),
        "nested 5,000 deep": _post(client, deep),
        "not JSON": _post(client, b"\xff\xfe not json"),
        "an unknown route": requests.post(
            client.urls["process-file"] + "/nowhere", data=b"{}", headers=HOOK, timeout=30
        ),
        "outside uploads/": _post(client, json.dumps(outside).encode()),
    }
    statuses = {what: answer.status_code for what, answer in answers.items()}
    assert statuses == {
        "more records than any store sends": 400,
        "nested 5,000 deep": 400,
        "not JSON": 400,
        "an unknown route": 404,
        "outside uploads/": 204,
    }
    assert answers["outside uploads/"].content == b""


def test_a_chunked_body_over_the_limit_is_refused_without_reading_it_all(client: Client) -> None:
    def chunks() -> Any:
        for _ in range(4096):  # 4 MiB, over MAX_REQUEST_BYTES (1 MiB), no Content-Length
            yield b" " * 1024

    answer = requests.post(client.urls["process-file"], data=chunks(), headers=HOOK, timeout=30)
    assert answer.status_code == 413


def test_an_event_time_far_in_the_future_is_not_believed(stack: Stack, client: Client) -> None:
    env, _ = stack
    batch, notifications = client.upload_batch([("FUTURE.csv", ohlcv_csv("FUTUREX", 3))])
    notification = notifications[0]
    notification["Records"][0]["eventTime"] = "2999-01-01T00:00:00.000Z"
    assert client.deliver(notification, backoff=BOUNDED).status == 204
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT max(d.uploaded_at) <= now() FROM seasonality_data d"
            " JOIN tickers t ON t.id = d.ticker_id WHERE t.symbol = 'FUTUREX'"
        ).fetchone()
    assert row == (True,)
    assert client.status(batch["batchId"])["status"] == "COMPLETED"
