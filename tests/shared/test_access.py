"""Token-scoped batches: with TOKEN_SCOPED_BATCHES a batch answers only the token that made it."""

import json
from collections.abc import Iterator

import pytest

from shared import access
from shared.clients import Clients
from shared.errors import NotFoundError
from shared.models import FileSpec, PresignRequest, ProcessRequest
from shared.presign import presign, process_landed
from shared.settings import Settings
from shared.status import batch_status, retry_failed

pytestmark = pytest.mark.services
ALICE, BOB = access.caller_id("alice-token"), access.caller_id("bob-token")


@pytest.fixture
def scoped(settings: Settings) -> Iterator[Clients]:
    built = Clients(settings.model_copy(update={"token_scoped_batches": True}))
    yield built
    built.close()


def _batch(clients: Clients, caller: str) -> str:
    answer = presign(clients, PresignRequest(files=[FileSpec(name="A.csv")]), caller)
    return str(answer["batchId"])


def test_the_caller_id_is_stable_and_not_the_token() -> None:
    assert access.caller_id("alice-token") == ALICE != BOB
    assert "alice" not in ALICE and len(ALICE) == 32


def test_a_scoped_batch_answers_its_creator_only(scoped: Clients) -> None:
    batch_id = _batch(scoped, ALICE)
    assert json.loads(batch_status(scoped, batch_id, ALICE))["batchId"] == batch_id
    for attempt in (
        lambda: batch_status(scoped, batch_id, BOB),
        lambda: retry_failed(scoped, batch_id, BOB),
        lambda: process_landed(scoped, ProcessRequest(batchId=batch_id), BOB),
        lambda: presign(
            scoped, PresignRequest(files=[FileSpec(name="B.csv")], batchId=batch_id), BOB
        ),
    ):
        with pytest.raises(NotFoundError, match="was not found"):
            attempt()


def test_the_answer_cached_for_the_owner_is_not_served_to_another(scoped: Clients) -> None:
    batch_id = _batch(scoped, ALICE)
    batch_status(scoped, batch_id, ALICE)  # now cached
    with pytest.raises(NotFoundError):
        batch_status(scoped, batch_id, BOB)


def test_the_owner_is_known_from_the_ledger_when_the_view_is_gone(scoped: Clients) -> None:
    batch_id = _batch(scoped, ALICE)
    prefix = scoped.settings.redis_key_prefix
    scoped.redis.delete(f"{prefix}batch:{batch_id}", f"{prefix}batch:{batch_id}:files")
    with pytest.raises(NotFoundError):
        batch_status(scoped, batch_id, BOB)
    assert json.loads(batch_status(scoped, batch_id, ALICE))["total"] == 1


def test_without_the_option_every_valid_token_sees_every_batch(clients: Clients) -> None:
    batch_id = _batch(clients, ALICE)
    assert json.loads(batch_status(clients, batch_id, BOB))["total"] == 1
