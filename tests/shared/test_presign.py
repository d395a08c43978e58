"""The presign use case: files registered in positions, one upload target each, and landed
files processed on request."""

from typing import Any

import pytest

from shared import database
from shared.clients import Clients
from shared.errors import NotFoundError, RequestError
from shared.models import PresignRequest, ProcessRequest
from shared.presign import presign, process_landed
from tests.support.apps import put_object


def _presign(clients: Clients, *names: str, **body: Any) -> dict[str, Any]:
    files = [{"name": name} for name in names]
    return presign(clients, PresignRequest.model_validate({"files": files, **body}))


def test_files_are_registered_pending_in_their_positions(clients: Clients) -> None:
    answer = _presign(clients, "A.csv", "B.txt")
    more = _presign(clients, "C.tsv", batchId=answer["batchId"])
    batch = database.get_batch(clients.pool, answer["batchId"])
    assert batch is not None
    assert [(f.position, f.file_name, f.status) for f in batch.files] == [
        (0, "A.csv", "PENDING"),
        (1, "B.txt", "PENDING"),
        (2, "C.tsv", "PENDING"),
    ]
    assert more["uploadUrls"][0]["objectKey"] == f"uploads/{answer['batchId']}/0002_C.tsv"


def test_a_malformed_batch_id_is_refused(clients: Clients) -> None:
    with pytest.raises(RequestError) as refused:
        _presign(clients, "A.csv", batchId="b_../../x")
    assert refused.value.code == "INVALID_BATCH_ID"


def test_ticker_hints_are_kept_upper_case(clients: Clients) -> None:
    body = PresignRequest.model_validate({"files": [{"name": "x.csv", "ticker": " brk.b "}]})
    answer = presign(clients, body)
    record = database.get_file(clients.pool, answer["uploadUrls"][0]["objectKey"])
    assert record is not None and record.ticker_hint == "BRK.B"


def test_landed_files_are_processed_on_request(
    clients: Clients, environment: dict[str, str]
) -> None:
    answer = _presign(clients, "LANDA.csv", "LANDB.csv")
    landed = answer["uploadUrls"][0]["objectKey"]
    put_object(environment, landed, b"Date,Open,High,Low,Close\n2024-01-02,1,2,1,2\n")
    request = ProcessRequest.model_validate({"batchId": answer["batchId"]})
    settings = clients.settings.model_copy(update={"event_grace_seconds": 0})
    immediate = Clients(settings)
    try:
        reply = process_landed(immediate, request)
        immediate.background.shutdown(wait=True)
    finally:
        immediate.close()
    assert reply["batchId"] == answer["batchId"] and reply["message"].startswith("1 landed")
    files = {
        f.object_key: f.status for f in database.require_batch(clients.pool, reply["batchId"]).files
    }
    assert files[landed] == "COMPLETED"
    assert files[answer["uploadUrls"][1]["objectKey"]] == "PENDING"


def test_processing_an_unknown_batch_is_not_found(clients: Clients) -> None:
    with pytest.raises(NotFoundError):
        process_landed(clients, ProcessRequest.model_validate({"batchId": "b_" + "1" * 26}))
