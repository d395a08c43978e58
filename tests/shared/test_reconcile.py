"""The periodic sweep: nothing waits forever."""

from datetime import UTC, datetime, timedelta

from shared import database
from shared.clients import Clients
from shared.keys import new_batch_id
from shared.reconcile import reconcile
from shared.settings import Settings
from tests.support.apps import put_object
from tests.support.reading import ONE_ROW


def _status(clients: Clients, key: str) -> tuple[str, str | None]:
    record = database.get_file(clients.pool, key)
    assert record is not None
    return record.status, record.error


def test_landed_files_are_processed_and_never_uploaded_ones_failed(
    settings: Settings, environment: dict[str, str]
) -> None:
    expired, fresh = datetime.now(UTC) - timedelta(minutes=1), datetime.now(UTC) + timedelta(1)
    batch, other = new_batch_id(), new_batch_id()
    never = f"uploads/{batch}/RECA.csv"
    landed = f"uploads/{other}/RECB.csv"
    waiting = f"uploads/{other}/RECC.csv"
    database_pool = Clients(settings)
    try:
        database.ensure_file(database_pool.pool, never, batch, "RECA.csv", expired, 100, 10**6)
        database.ensure_file(database_pool.pool, landed, other, "RECB.csv", fresh, 100, 10**6)
        database.ensure_file(database_pool.pool, waiting, other, "RECC.csv", fresh, 100, 10**6)
    finally:
        database_pool.close()
    put_object(environment, landed, ONE_ROW)
    # WHEN the sweep runs within the grace an upload event has to arrive
    patient = Clients(settings.model_copy(update={"event_grace_seconds": 3600}))
    try:
        first = reconcile(patient)
        assert _status(patient, landed) == ("PENDING", None)
        status, error = _status(patient, never)
        assert status == "FAILED" and (error or "").startswith("The file was never uploaded")
        assert first.never_uploaded >= 1 and first.left_waiting >= 2
    finally:
        patient.close()
    # WHEN it runs after the grace: the landed file is processed, the other still waits
    prompt = Clients(settings.model_copy(update={"event_grace_seconds": 0}))
    try:
        second = reconcile(prompt)
        assert _status(prompt, landed)[0] == "COMPLETED"
        assert _status(prompt, waiting) == ("PENDING", None)
        assert second.processed >= 1 and second.errors == {}
    finally:
        prompt.close()
