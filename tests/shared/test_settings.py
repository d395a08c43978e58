"""Settings: read once from the environment, with the contract's names and checks."""

import pytest

from shared.settings import Settings
from tests.support.env import CONTRACT_VARIABLES, offline_settings

REQUIRED = {"database_url": "x", "redis_url": "x", "s3_endpoint": "http://h:1"}


def test_comma_separated_settings() -> None:
    settings = Settings(**REQUIRED, api_tokens="a, b,,", allowed_extensions="CSV,.Txt")
    assert settings.api_tokens == ("a", "b")
    assert settings.allowed_extensions == (".csv", ".txt")
    assert settings.presign_endpoint == "http://h:1"


def test_settings_fail_fast_on_bad_endpoint() -> None:
    with pytest.raises(ValueError, match="http"):
        Settings(database_url="x", redis_url="x", s3_endpoint="minio:9000")


def test_public_endpoint_is_where_urls_are_signed() -> None:
    settings = Settings(**REQUIRED, s3_public_endpoint="https://files.example.com/")
    assert settings.presign_endpoint == "https://files.example.com"


def test_schema_must_be_a_plain_identifier() -> None:
    with pytest.raises(ValueError, match="DATABASE_SCHEMA"):
        Settings(**REQUIRED, database_schema='x"; DROP')


def test_required_settings_are_required() -> None:
    with pytest.raises(ValueError, match="database_url"):
        Settings(redis_url="x", s3_endpoint="http://h:1")  # type: ignore[call-arg]


def _other_value(name: str) -> str:
    """A valid value, unlike the default, for the setting's type."""
    annotation = Settings.model_fields[name].annotation
    special = {
        "database_schema": "other",
        "upload_method": "POST",
        "notify_webhook_secret": "whsec_" + "b" * 32,
        "smtp_url": "smtp://other.example",
        "notify_email_from": "from@other.example",
        "multipart_threshold_bytes": str(80 << 20),  # S3 parts are at least 5 MiB
        "multipart_part_bytes": str(10 << 20),
        "plausibility_mode": "reject",
    }
    by_type = {int: "2048", float: "2048.5", bool: "true", tuple[str, ...]: "a,b"}
    return special.get(name) or by_type.get(annotation) or "http://other.example"  # type: ignore[call-overload]


def test_every_setting_is_read_from_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    # the variables the clean-environment fixture clears are exactly the ones Settings reads
    assert len(CONTRACT_VARIABLES) == len(Settings.model_fields)
    defaults = offline_settings()
    for name, variable in zip(Settings.model_fields, CONTRACT_VARIABLES, strict=True):
        monkeypatch.setenv(variable, _other_value(name))
    read = Settings()  # type: ignore[call-arg]
    assert [n for n in Settings.model_fields if getattr(read, n) == getattr(defaults, n)] == []


def test_variables_are_matched_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("database_url", "postgresql://lower")
    monkeypatch.setenv("Redis_Url", "redis://mixed")
    monkeypatch.setenv("S3_ENDPOINT", "http://upper:1")
    settings = Settings()  # type: ignore[call-arg]
    assert (settings.database_url, settings.redis_url) == ("postgresql://lower", "redis://mixed")
