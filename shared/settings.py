"""Configuration, read once per process from the environment (names fixed by the contract)."""

import base64
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[tuple[str, ...], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="", case_sensitive=False, frozen=True, extra="ignore"
    )

    database_url: str
    database_schema: str = "public"
    database_pool_size: int = Field(default=8, ge=1)
    database_timeout_seconds: float = Field(default=10.0, gt=0)

    redis_url: str
    redis_key_prefix: str = "ingest:"

    s3_endpoint: str
    s3_public_endpoint: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_region: str = "us-east-1"
    s3_bucket: str = "seasonality-uploads"
    presign_expiry_seconds: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    upload_method: Literal["PUT", "POST"] = "PUT"
    # Files over this size go up in parts (S3 multipart, one presigned URL a part), so a
    # dropped connection resends one part; parts are at least 5 MiB (S3's minimum).
    multipart_threshold_bytes: int = Field(default=67_108_864, ge=5_242_880)
    multipart_part_bytes: int = Field(default=16_777_216, ge=5_242_880, le=5_368_709_120)
    # Where browsers reach status: the admin page (GET …/ui/ on presign) calls it there.
    status_public_url: str = ""

    api_tokens: CommaList = ()
    auth_disabled: bool = False
    # A batch answers only the API token that created it (others get 404).
    token_scoped_batches: bool = False
    webhook_token: str = ""
    cors_origins: CommaList = ()

    max_files_per_batch: int = Field(default=1000, ge=1)
    max_file_bytes: int = Field(default=104_857_600, ge=1)
    allowed_extensions: CommaList = (".csv", ".txt", ".tsv")
    max_request_bytes: int = Field(default=1_048_576, ge=1024)
    # Longest wait for the next part of a request body before the request is answered 408.
    request_read_timeout_seconds: float = Field(default=10.0, gt=0)
    # What may stand in front of a function's routes; {function} is its name.
    path_prefixes: CommaList = ("/function/{function}", "/api/upload")

    process_file_url: str = ""
    event_grace_seconds: float = Field(default=30.0, ge=0)
    # How long a duplicate event waits for the worker loading its file before answering 503.
    lock_wait_seconds: float = Field(default=10.0, ge=0)
    # Transient failures of one object version before the file is failed with the last cause.
    max_transient_attempts: int = Field(default=5, ge=1)
    # How far an event's eventTime may lie from the object's Last-Modified and still be used.
    clock_skew_seconds: float = Field(default=2.0, ge=0)
    # How often a batch's Redis view is checked against the ledger while the batch is open.
    view_check_seconds: float = Field(default=5.0, gt=0)
    # Records one notification may carry (MinIO sends one per request).
    max_notification_records: int = Field(default=100, ge=1)
    # Batches an hour that objects written straight to the bucket (nobody presigned them) may
    # open; 0 accepts such objects only into existing batches.
    max_unpresigned_batches_per_hour: int = Field(default=100, ge=0)
    duckdb_memory_limit: str = "128MB"
    duckdb_threads: int = Field(default=1, ge=1)
    # Plausibility checks (shared/plausibility.py): warn (load and list) or reject the rows
    # they flag, or off (no checks, no series); a file's own `plausibility` at presign
    # overrides the mode.
    plausibility_mode: Literal["warn", "reject", "off"] = "warn"
    plausibility_max_move: float = Field(default=0.5, gt=0)
    plausibility_max_gap_days: int = Field(default=10, ge=1)
    # Superseded values are kept this long; a batch finished longer ago cannot be reverted.
    history_retention_days: int = Field(default=90, ge=1)

    # Completion notifications (shared/notify.py): each channel is optional.
    notify_webhook_urls: CommaList = ()
    # whsec_<base64 key>; several, space-separated, sign each delivery with each (rotation)
    notify_webhook_secret: str = ""
    # A CloudEvents sink, as a Knative SinkBinding injects it.
    k_sink: str = ""
    # smtp://, smtp+starttls:// or smtps://[user:password@]host[:port]
    smtp_url: str = ""
    notify_email_from: str = ""
    notify_email_to: CommaList = ()
    # What a batch's own `notify` at presign may name: addresses (or @domain) and URL hosts.
    notify_allowed_recipients: CommaList = ()
    notify_allowed_hosts: CommaList = ()
    notify_retry_hours: float = Field(default=24.0, gt=0)
    notify_timeout_seconds: float = Field(default=10.0, gt=0)
    # Delay before the first retry; it doubles with every failed attempt (with jitter).
    notify_backoff_seconds: float = Field(default=5.0, gt=0)

    @field_validator(
        "api_tokens",
        "cors_origins",
        "allowed_extensions",
        "path_prefixes",
        "notify_webhook_urls",
        "notify_email_to",
        "notify_allowed_recipients",
        "notify_allowed_hosts",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("allowed_extensions")
    @classmethod
    def _dotted_lower(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(ext.lower() if ext.startswith(".") else f".{ext.lower()}" for ext in value)

    @field_validator("s3_endpoint", "s3_public_endpoint")
    @classmethod
    def _endpoint_has_scheme(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _schema_is_identifier(self) -> "Settings":
        if not self.database_schema.isidentifier():
            raise ValueError("DATABASE_SCHEMA must be a plain SQL identifier")
        return self

    @model_validator(mode="after")
    def _notify_channels_complete(self) -> "Settings":
        if self.notify_webhook_urls or self.notify_allowed_hosts:
            keys = self.notify_webhook_secret.split()
            if not keys or not all(_is_webhook_secret(key) for key in keys):
                raise ValueError(
                    "NOTIFY_WEBHOOK_URLS and NOTIFY_ALLOWED_HOSTS need NOTIFY_WEBHOOK_SECRET:"
                    " whsec_ and a base64 key (several separated by spaces)"
                )
        if self.notify_email_to or self.notify_allowed_recipients:
            if not (self.smtp_url and self.notify_email_from):
                raise ValueError(
                    "NOTIFY_EMAIL_TO and NOTIFY_ALLOWED_RECIPIENTS need SMTP_URL and"
                    " NOTIFY_EMAIL_FROM"
                )
        if self.smtp_url and not self.smtp_url.startswith(
            ("smtp://", "smtp+starttls://", "smtps://")
        ):
            raise ValueError("SMTP_URL must start with smtp://, smtp+starttls:// or smtps://")
        return self

    @property
    def presign_endpoint(self) -> str:
        """Where browsers reach the object store; URLs are signed for this host."""
        return self.s3_public_endpoint or self.s3_endpoint


def _is_webhook_secret(value: str) -> bool:
    if not value.startswith("whsec_"):
        return False
    try:
        return len(base64.b64decode(value.removeprefix("whsec_"), validate=True)) >= 16
    except ValueError:
        return False
