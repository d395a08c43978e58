"""Request bodies and ledger records."""

import pytest
from pydantic import ValidationError

from shared.models import FileRecord, PresignRequest, ProcessRequest


def test_presign_request_reads_the_contract_names() -> None:
    body = PresignRequest.model_validate(
        {"batchId": "b_1", "files": [{"name": "a.csv", "size": 3, "extra": 1}]}
    )
    assert body.batch_id == "b_1" and body.files[0].size == 3 and body.files[0].ticker is None


@pytest.mark.parametrize(
    "raw",
    [{"files": []}, {"files": [{"size": 1}]}, {"files": [{"name": "a.csv", "size": -1}]}, {}],
)
def test_bad_presign_requests_are_refused(raw: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        PresignRequest.model_validate(raw)


def test_process_request_lists_no_keys_by_default() -> None:
    body = ProcessRequest.model_validate({"batchId": "b_1"})
    assert (body.batch_id, body.object_keys) == ("b_1", [])


@pytest.mark.parametrize(
    ("status", "finished"),
    [("PENDING", False), ("PROCESSING", False), ("COMPLETED", True), ("FAILED", True)],
)
def test_only_completed_and_failed_files_are_finished(status: str, finished: bool) -> None:
    record = FileRecord("uploads/b/x.csv", "b", "x.csv", status)  # type: ignore[arg-type]
    assert record.finished is finished
