"""Who may see a batch. With TOKEN_SCOPED_BATCHES a batch answers only the API token that
created it; any other token is told the batch does not exist (it learns nothing)."""

import hashlib

from . import database
from .clients import Clients
from .errors import NotFoundError
from .models import BatchRecord
from .settings import Settings


def caller_id(token: str) -> str:
    """A stable name for an API token that is not the token (it is stored beside batches)."""
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def check_owner(settings: Settings, batch_id: str, owner: str | None, caller: str | None) -> None:
    if settings.token_scoped_batches and owner is not None and owner != caller:
        raise NotFoundError("BATCH_NOT_FOUND", f"Batch {batch_id[:40]!r} was not found.")


def require_batch(clients: Clients, batch_id: str, caller: str | None) -> BatchRecord:
    """The batch from the ledger, if it exists and the caller may see it."""
    batch = database.require_batch(clients.pool, batch_id)
    check_owner(clients.settings, batch_id, batch.owner, caller)
    return batch
