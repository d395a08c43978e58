"""The Redis view of a batch, against a real Redis."""

import secrets
from datetime import UTC, datetime

import pytest
import redis

from devstack.processes import free_port
from shared import batch_view
from shared.errors import TransientError
from shared.models import BatchRecord, FileRecord

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _record(status: str = "PENDING", revision: int = 0, rows: int = 0) -> FileRecord:
    return FileRecord(
        "uploads/b_1/0000_A.csv",
        "b_1",
        "A.csv",
        status,  # type: ignore[arg-type]
        rows_loaded=rows,
        tickers=["A"],
        revision=revision,
    )


@pytest.fixture
def view(redis_url: str, redis_prefix: str) -> tuple[redis.Redis, str, str]:
    return redis.Redis.from_url(redis_url), redis_prefix, "b_" + secrets.token_hex(13)


def test_a_batch_written_is_read_back(view: tuple[redis.Redis, str, str]) -> None:
    client, prefix, batch_id = view
    assert batch_view.read_batch(client, prefix, batch_id) is None
    batch_view.put_batch(client, prefix, BatchRecord(batch_id, NOW, NOW, NOW, [_record()]))
    found = batch_view.read_batch(client, prefix, batch_id)
    assert found is not None
    meta, [entry] = found
    assert meta["createdAt"] == "2026-01-02T03:04:05Z"
    assert (entry["status"], entry["tickers"]) == ("PENDING", [])  # tickers once completed


def test_an_entry_is_replaced_only_by_a_newer_one(view: tuple[redis.Redis, str, str]) -> None:
    client, prefix, batch_id = view
    batch_view.put_file(client, prefix, batch_id, batch_view.entry(_record("COMPLETED", 2, 5)))
    version = batch_view.freshness(client, prefix, batch_id)[0]
    batch_view.put_file(client, prefix, batch_id, batch_view.entry(_record("PROCESSING", 1)))
    found = batch_view.read_batch(client, prefix, batch_id)
    assert found is not None
    [entry] = found[1]
    assert (entry["status"], entry["rowsLoaded"], entry["tickers"]) == ("COMPLETED", 5, ["A"])
    assert batch_view.freshness(client, prefix, batch_id)[0] == version  # nothing changed
    batch_view.put_file(client, prefix, batch_id, batch_view.entry(_record("FAILED", 3)))
    assert batch_view.freshness(client, prefix, batch_id)[0] != version


def test_an_unreachable_redis_is_transient() -> None:
    client = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    with pytest.raises(TransientError, match="Redis unavailable"):
        batch_view.read_batch(client, "p:", "b_1")
