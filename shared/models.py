"""Request bodies (validated with pydantic) and ledger records."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FileStatus = Literal["PENDING", "PROCESSING", "COMPLETED", "FAILED"]
TERMINAL: tuple[FileStatus, ...] = ("COMPLETED", "FAILED")


class _Body(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", str_strip_whitespace=False)


class FileSpec(_Body):
    name: str
    size: int | None = Field(default=None, ge=0)
    type: str | None = None
    ticker: str | None = None


class PresignRequest(_Body):
    files: list[FileSpec] = Field(min_length=1)
    batch_id: str | None = Field(default=None, alias="batchId")


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
