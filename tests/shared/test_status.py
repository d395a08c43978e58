"""The status use cases against the real services: progress from the Redis view (rebuilt from
the ledger when lost), batch states, and retry of failed files."""

import json
import time
from typing import Any

import pytest
import redis

from shared import batch_view, database
from shared.clients import Clients
from shared.errors import NotFoundError, RequestError
from shared.models import PresignRequest
from shared.presign import presign
from shared.process import process_object
from shared.status import (
    STATUS_FRESH_SECONDS,
    Poll,
    Polled,
    batch_status,
    poll_from,
    poll_status,
    retry_failed,
)
from tests.support.apps import put_object
from tests.support.reading import HEADER

GOOD = (HEADER + "2024-01-02,1,2,1,2,3\n2024-01-03,1,2,1,2,3\n").encode()
BAD = b"Date,Open\n2024-01-02,1\n"


def _batch(clients: Clients, environment: dict[str, str], *bodies: bytes) -> tuple[str, list[str]]:
    """A presigned batch of one file a body, each stored and processed; (batch id, keys)."""
    files = [{"name": f"ST{n}.csv"} for n in range(len(bodies))]
    answer = presign(clients, PresignRequest.model_validate({"files": files}))
    keys = [u["objectKey"] for u in answer["uploadUrls"]]
    for key, body in zip(keys, bodies, strict=True):
        if body:
            put_object(environment, key, body)
            process_object(clients, key)
    return answer["batchId"], keys


def _status(clients: Clients, batch_id: str) -> dict[str, Any]:
    return dict(json.loads(batch_status(clients, batch_id)))


@pytest.mark.parametrize(
    ("bodies", "state", "progress"),
    [
        ((b"", b""), "PENDING", 0.0),
        ((GOOD, b""), "PROCESSING", 50.0),
        ((GOOD, GOOD), "COMPLETED", 100.0),
        ((BAD, BAD), "FAILED", 100.0),
        ((GOOD, BAD), "PARTIAL", 100.0),
    ],
)
def test_batch_state_follows_its_files(
    clients: Clients,
    environment: dict[str, str],
    bodies: tuple[bytes, ...],
    state: str,
    progress: float,
) -> None:
    batch_id, _ = _batch(clients, environment, *bodies)
    status = _status(clients, batch_id)
    assert (status["status"], status["progress"], status["total"]) == (state, progress, 2)
    assert status["queue"]["waiting"] == sum(1 for body in bodies if not body)


def test_status_is_rebuilt_from_the_ledger_when_redis_lost_it(
    clients: Clients, environment: dict[str, str]
) -> None:
    batch_id, _ = _batch(clients, environment, GOOD)
    before = _status(clients, batch_id)
    client = redis.Redis.from_url(environment["REDIS_URL"])
    for key in client.scan_iter(f"{environment['REDIS_KEY_PREFIX']}batch:{batch_id}*"):
        client.delete(key)
    clients.status_cache.clear()
    after = _status(clients, batch_id)
    assert after["status"] == "COMPLETED" and after["files"] == before["files"]
    assert after["rowsLoaded"] == 2 and after["files"][0]["tickers"] == ["ST0"]


def test_rejected_rows_come_with_a_download_url(
    clients: Clients, environment: dict[str, str]
) -> None:
    batch_id, _ = _batch(clients, environment, GOOD + b"2024-01-04,5,2,1,2,3\n")
    [file] = _status(clients, batch_id)["files"]
    assert (file["rowsLoaded"], file["rowsRejected"]) == (2, 1)
    assert "X-Amz-Signature=" in file["rejectsUrl"]


def test_retry_puts_failed_files_back_and_processes_them(
    clients: Clients, environment: dict[str, str]
) -> None:
    batch_id, [key] = _batch(clients, environment, BAD)
    put_object(environment, key, GOOD)
    assert retry_failed(clients, batch_id) == {"batchId": batch_id, "retried": 1}
    clients.background.shutdown(wait=True)
    record = database.get_file(clients.pool, key)
    assert record is not None and (record.status, record.rows_loaded) == ("COMPLETED", 2)


def test_unknown_batches_are_not_found(clients: Clients) -> None:
    for unknown in ("b_" + "0" * 26, "not-a-batch"):
        with pytest.raises(NotFoundError):
            batch_status(clients, unknown)
        with pytest.raises(NotFoundError):
            retry_failed(clients, unknown)


def test_an_unchanged_batch_answers_the_same_bytes_and_etag(
    clients: Clients, environment: dict[str, str]
) -> None:
    batch_id, _ = _batch(clients, environment, GOOD, BAD)
    first = poll_status(clients, batch_id)
    clients.status_cache.clear()  # built again from the view, rejects URLs signed again
    second = poll_status(clients, batch_id)
    assert first.body is not None and first.body == second.body and first.etag == second.etag
    held = poll_status(clients, batch_id, poll=Poll(if_none_match=f'W/{first.etag}, "x"'))
    assert held == Polled(None, first.etag)


def test_pollers_ask_for_failed_files_only_or_for_what_changed(
    clients: Clients, environment: dict[str, str]
) -> None:
    batch_id, keys = _batch(clients, environment, GOOD, BAD, b"")
    whole = json.loads(batch_status(clients, batch_id))
    failed = json.loads(poll_status(clients, batch_id, poll=Poll(files="failed")).body or b"")
    assert [f["objectKey"] for f in failed["files"]] == [keys[1]]
    assert {k: v for k, v in failed.items() if k != "files"} == {
        k: v for k, v in whole.items() if k != "files"
    }
    none = json.loads(poll_status(clients, batch_id, poll=Poll(files="none")).body or b"")
    assert none["files"] == [] and none["total"] == 3
    # nothing changed after the cursor: no file entries
    cursor = whole["cursor"]
    quiet = json.loads(poll_status(clients, batch_id, poll=Poll(changed_since=cursor)).body or b"")
    assert quiet["files"] == []
    # WHEN the third file lands, THEN only it comes after the cursor
    put_object(environment, keys[2], GOOD)
    process_object(clients, keys[2])
    moved = json.loads(poll_status(clients, batch_id, poll=Poll(changed_since=cursor)).body or b"")
    assert [f["objectKey"] for f in moved["files"]] == [keys[2]]
    assert moved["cursor"] > cursor and moved["processed"] == 2


@pytest.mark.parametrize(
    "args", [{"files": "some"}, {"changedSince": "-1"}, {"changedSince": "x"}, {"files": ""}]
)
def test_a_poll_that_asks_for_nothing_known_is_refused(args: dict[str, str]) -> None:
    with pytest.raises(RequestError):
        poll_from(args, None)


def test_pollers_share_one_view_read_within_the_fresh_interval(
    clients: Clients, environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    batch_id, _ = _batch(clients, environment, GOOD)
    first = poll_status(clients, batch_id)
    reads: list[str] = []
    real = batch_view.freshness

    def counted(*args: Any) -> Any:
        reads.append(args[2])
        return real(*args)

    monkeypatch.setattr(batch_view, "freshness", counted)
    assert all(poll_status(clients, batch_id).etag == first.etag for _ in range(20))
    assert reads == []  # answered from the process's copy
    time.sleep(STATUS_FRESH_SECONDS)
    poll_status(clients, batch_id)
    assert reads == [batch_id]  # then the view is looked at again
