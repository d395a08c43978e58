"""The test world's constants, and the environment variables the settings class reads."""

import os
import secrets
from typing import NoReturn

import pytest
from pydantic import AliasChoices, AliasPath

from devstack import ROOT
from shared.settings import Settings

EVENTS = ROOT / "tests" / "events"
API_TOKEN = "test-token-" + secrets.token_hex(8)
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
# Authorization headers an API function refuses (None: no header at all), and its answer
REFUSED_AUTHORIZATIONS = [None, "Bearer wrong", f"Basic {API_TOKEN}", "Bearer "]
UNAUTHORIZED = {
    "success": False,
    "error": {"code": "UNAUTHORIZED", "message": "A valid bearer token is required."},
}


def settings_variables() -> tuple[str, ...]:
    """Every environment variable Settings reads: each field's name upper-cased (after the
    prefix), and every validation alias."""
    prefix = Settings.model_config.get("env_prefix") or ""
    names: list[str] = []
    for name, field in Settings.model_fields.items():
        names.append(f"{prefix}{name}".upper())
        alias = field.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        for choice in choices:
            if isinstance(choice, str):
                names.append(choice.upper())
            elif isinstance(choice, AliasPath) and isinstance(choice.path[0], str):
                names.append(choice.path[0].upper())
    return tuple(dict.fromkeys(names))


CONTRACT_VARIABLES = settings_variables()


def offline_settings(**overrides: object) -> Settings:
    """Settings for code that reads local files only: no service is ever contacted."""
    values: dict[str, object] = {
        "database_url": "postgresql://unused@127.0.0.1:9/unused",
        "redis_url": "redis://127.0.0.1:9/0",
        "s3_endpoint": "http://127.0.0.1:9",
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


def unavailable(reason: str) -> NoReturn:
    """Skip (a developer's machine) or fail (CI) the test needing an absent service."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: the services are required)", pytrace=False)
    pytest.skip(reason)
