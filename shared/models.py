"""Request bodies (validated with pydantic) and ledger records."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

FileStatus = Literal["PENDING", "PROCESSING", "COMPLETED", "FAILED"]
TERMINAL: tuple[FileStatus, ...] = ("COMPLETED", "FAILED")


class _Body(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", str_strip_whitespace=False)


class FileSpec(_Body):
    name: str
    size: int | None = Field(default=None, ge=0)
    type: str | None = None
    ticker: str | None = None
    plausibility: Literal["warn", "reject"] | None = None  # overrides PLAUSIBILITY_MODE


class NotifyOption(BaseModel):
    """A batch's own notification recipients (each must be on the allow-list)."""

    model_config = ConfigDict(extra="forbid")
    webhook: list[str] = Field(default_factory=list, max_length=5)
    email: list[str] = Field(default_factory=list, max_length=5)

    @field_validator("webhook", "email", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


class PresignRequest(_Body):
    files: list[FileSpec] = Field(min_length=1)
    batch_id: str | None = Field(default=None, alias="batchId")
    notify: NotifyOption | None = None


class ProcessRequest(_Body):
    batch_id: str = Field(alias="batchId")
    object_keys: list[str] = Field(default_factory=list, alias="objectKeys")


class SignRequest(_Body):
    """Fresh upload URLs for files of an existing batch (all not yet landed when empty)."""

    batch_id: str = Field(alias="batchId")
    object_keys: list[str] = Field(default_factory=list, alias="objectKeys", max_length=1000)


class MultipartRequest(_Body):
    batch_id: str = Field(alias="batchId")
    object_key: str = Field(alias="objectKey")
    upload_id: str | None = Field(default=None, alias="uploadId", min_length=1)


class MultipartSignRequest(MultipartRequest):
    upload_id: str = Field(alias="uploadId", min_length=1)
    part_numbers: list[int] = Field(alias="partNumbers", min_length=1, max_length=1000)


class PartDone(_Body):
    part_number: int = Field(alias="partNumber", ge=1, le=10_000)
    etag: str = Field(min_length=1)


class MultipartCompleteRequest(MultipartRequest):
    upload_id: str = Field(alias="uploadId", min_length=1)
    parts: list[PartDone] = Field(min_length=1, max_length=10_000)


@dataclass(frozen=True)
class NewFile:
    """A file being added to a batch at presign time."""

    object_key: str
    file_name: str
    content_type: str
    ticker_hint: str | None
    declared_size: int | None
    plausibility: str | None = None


@dataclass(frozen=True)
class FileRecord:
    """One file's row in the PostgreSQL ledger: the durable truth about it."""

    object_key: str
    batch_id: str
    file_name: str
    status: FileStatus
    ticker_hint: str | None = None
    etag: str | None = None
    rows_loaded: int = 0
    rows_rejected: int = 0
    tickers: list[str] = field(default_factory=list)
    error: str | None = None
    rejects_key: str | None = None
    position: int = 0
    revision: int = 0
    warnings: dict[str, int] = field(default_factory=dict)  # plausibility code -> rows
    warnings_key: str | None = None
    series: dict[str, Any] | None = None  # the compact close series (shared/plausibility.py)
    plausibility: str | None = None  # the file's own mode from presign (None: the deployment's)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


@dataclass(frozen=True)
class BatchRecord:
    batch_id: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    files: list[FileRecord]
    owner: str | None = None
    reverted: dict[str, Any] | None = None  # what its revert did (shared/revert.py)


NotificationState = Literal["PENDING", "SENT", "DEAD", "GONE"]


@dataclass(frozen=True)
class BatchOutcome:
    """A batch that has just become final, or final in another state, as the transaction that
    made it so reads it: what its notifications say."""

    batch_id: str
    seq: int  # the how-manieth final state of the batch
    status: str  # COMPLETED, PARTIAL or FAILED
    total: int
    processed: int
    failed: int
    rows_loaded: int
    rows_rejected: int
    created_at: datetime
    finished_at: datetime
    started_at: datetime | None  # the first file's processing start
    # (file name, object key, error) of the first failed files
    failed_files: list[tuple[str, str, str | None]]
    notify: dict[str, list[str]]  # the batch's own recipients, from presign
    reverted: dict[str, Any] | None = None  # a revert's counts and conflicts (REVERTED)
    warnings: dict[str, int] = field(default_factory=dict)  # plausibility warnings per code


@dataclass(frozen=True)
class NewDelivery:
    channel: Literal["webhook", "cloudevent", "email"]
    target: str  # URL or email address


@dataclass(frozen=True)
class Composed:
    """The outbox rows of one transition: one payload, delivered to each target."""

    event_id: str
    event_type: str
    payload: dict[str, Any]
    deliveries: list[NewDelivery]


@dataclass(frozen=True)
class Recorded:
    """A file write that took effect; `transition` when it made its batch final (again)."""

    transition: BatchOutcome | None = None


@dataclass(frozen=True)
class Delivery:
    """One outbox row, as a sender takes it."""

    id: int
    batch_id: str
    event_id: str
    event_type: str
    channel: str
    target: str
    payload: dict[str, Any]
    state: NotificationState
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    revision: int


@dataclass(frozen=True)
class AttemptResult:
    """What a send attempt decided: the delivery's next state and, when PENDING, its next try."""

    state: NotificationState
    error: str | None = None
    next_attempt_at: datetime | None = None
