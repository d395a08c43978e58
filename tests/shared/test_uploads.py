"""Upload URLs for an existing batch: fresh ones only for files that have not landed, and S3
multipart uploads whose parts are sent to presigned URLs."""

import io
from typing import Any

import pytest
import requests

from shared import database, storage
from shared.clients import Clients
from shared.errors import ConflictError, NotFoundError, RequestError
from shared.models import (
    MultipartCompleteRequest,
    MultipartRequest,
    MultipartSignRequest,
    PresignRequest,
    SignRequest,
)
from shared.presign import presign
from shared.uploads import abort_multipart, complete_multipart, create_multipart, sign, sign_parts

PART = 5 * 1024 * 1024


def put_object(clients: Clients, key: str, body: bytes) -> None:
    store, bucket = clients.store, clients.settings.s3_bucket
    store.put_object(bucket, key, io.BytesIO(body), len(body), content_type="text/csv")


def _batch(clients: Clients, *names: str) -> dict[str, Any]:
    return presign(clients, PresignRequest.model_validate({"files": [{"name": n} for n in names]}))


def _sign(clients: Clients, batch_id: str, *keys: str) -> dict[str, Any]:
    return sign(clients, SignRequest.model_validate({"batchId": batch_id, "objectKeys": keys}))


def test_only_files_that_have_not_landed_are_signed_again(clients: Clients) -> None:
    batch = _batch(clients, "A.csv", "B.csv", "C.csv")
    a, b, c = (u["objectKey"] for u in batch["uploadUrls"])
    put_object(clients, b, b"Date,Open,High,Low,Close\n")

    answer = _sign(clients, batch["batchId"], a, b, c, "uploads/elsewhere.csv")

    assert [u["objectKey"] for u in answer["uploadUrls"]] == [a, c]
    assert all(
        u["method"] == "PUT" and "X-Amz-Signature=" in u["uploadUrl"] for u in answer["uploadUrls"]
    )
    assert [(s["objectKey"], s["code"]) for s in answer["skipped"]] == [
        (b, "FILE_LANDED"),
        ("uploads/elsewhere.csv", "FILE_NOT_FOUND"),
    ]
    assert answer["multipart"]["thresholdBytes"] == clients.settings.multipart_threshold_bytes


def test_without_keys_every_file_not_landed_is_signed(clients: Clients) -> None:
    batch = _batch(clients, "A.csv", "B.csv")
    put_object(clients, batch["uploadUrls"][0]["objectKey"], b"Date,Close\n")
    answer = _sign(clients, batch["batchId"])
    assert [u["fileName"] for u in answer["uploadUrls"]] == ["B.csv"]
    assert answer["skipped"] == []


def test_finished_files_are_never_signed_and_the_expiry_is_extended(clients: Clients) -> None:
    batch = _batch(clients, "A.csv")
    key = batch["uploadUrls"][0]["objectKey"]
    record = database.get_file(clients.pool, key)
    assert record is not None
    database.fail_file(clients.pool, record, None, "never uploaded")
    before = database.require_batch(clients.pool, batch["batchId"]).expires_at

    answer = _sign(clients, batch["batchId"], key)

    assert answer["uploadUrls"] == []
    assert answer["skipped"][0]["code"] == "FILE_FINISHED"
    assert database.require_batch(clients.pool, batch["batchId"]).expires_at == before


def test_an_unknown_batch_is_not_found(clients: Clients) -> None:
    with pytest.raises(NotFoundError):
        _sign(clients, "b_" + "0" * 26)


def test_a_multipart_upload_through_presigned_part_urls(clients: Clients) -> None:
    # GIVEN a file of two parts
    batch = _batch(clients, "BIG.csv")
    key = batch["uploadUrls"][0]["objectKey"]
    ids = {"batchId": batch["batchId"], "objectKey": key}
    created = create_multipart(clients, MultipartRequest.model_validate(ids))
    ids["uploadId"] = created["uploadId"]
    body = b"Date,Open,High,Low,Close\n" + b"2020-01-01,1,2,1,1\n" * (PART // 19 + 10)

    # WHEN part 1 is sent, then the parts are signed again (as after a reload) and part 2 sent
    signed = sign_parts(
        clients, MultipartSignRequest.model_validate({**ids, "partNumbers": [1, 2]})
    )
    first = requests.put(signed["parts"][0]["uploadUrl"], data=body[:PART], timeout=30)
    again = sign_parts(clients, MultipartSignRequest.model_validate({**ids, "partNumbers": [2]}))
    second = requests.put(again["parts"][0]["uploadUrl"], data=body[PART:], timeout=30)

    # THEN the store reported part 1 as held, and the joined object is the file
    assert [(p["partNumber"], p["size"]) for p in again["uploaded"]] == [(1, PART)]
    parts = [
        {"partNumber": 1, "etag": first.headers["ETag"]},
        {"partNumber": 2, "etag": second.headers["ETag"]},
    ]
    done = complete_multipart(
        clients, MultipartCompleteRequest.model_validate({**ids, "parts": parts})
    )
    assert done["etag"].endswith("-2")
    stored = storage.stat(clients.store, clients.settings.s3_bucket, key)
    assert stored is not None and stored.size == len(body)

    # AND once landed, the file gets no upload of any kind
    with pytest.raises(ConflictError) as landed:
        create_multipart(clients, MultipartRequest.model_validate(ids))
    assert landed.value.code == "FILE_LANDED"
    assert _sign(clients, batch["batchId"], key)["skipped"][0]["code"] == "FILE_LANDED"


def test_a_part_not_stored_is_refused_and_an_aborted_upload_is_gone(clients: Clients) -> None:
    batch = _batch(clients, "BIG.csv")
    ids = {"batchId": batch["batchId"], "objectKey": batch["uploadUrls"][0]["objectKey"]}
    ids["uploadId"] = create_multipart(clients, MultipartRequest.model_validate(ids))["uploadId"]
    parts = [{"partNumber": 1, "etag": "0" * 32}]
    with pytest.raises(RequestError) as refused:
        complete_multipart(
            clients, MultipartCompleteRequest.model_validate({**ids, "parts": parts})
        )
    assert refused.value.code == "INVALID_PART"

    abort_multipart(clients, MultipartRequest.model_validate(ids))

    with pytest.raises(NotFoundError) as gone:
        sign_parts(clients, MultipartSignRequest.model_validate({**ids, "partNumbers": [1]}))
    assert gone.value.code == "UPLOAD_NOT_FOUND"
