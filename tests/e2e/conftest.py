"""The running stack for end-to-end tests: moto's S3 server and the three functions as real
processes, on the session's private database, key prefix and bucket."""

import sys
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
import requests
from minio import Minio

from tests.conftest import API_TOKEN, free_port
from tests.helpers import ROOT, webhook

sys.path.insert(0, str(ROOT / "scripts"))
import localstack  # noqa: E402

WEBHOOK_TOKEN = "hook-token"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture(scope="session")
def stack(
    environment: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """(environment, function URLs)."""
    with ExitStack() as exits:
        env = {
            **environment,
            "S3_ENDPOINT": localstack.start_moto(exits, free_port()),
            "WEBHOOK_TOKEN": WEBHOOK_TOKEN,
            "EVENT_GRACE_SECONDS": "0",
        }
        urls = localstack.start_stack(exits, env, tmp_path_factory.mktemp("logs"))
        yield env, urls


def presign_batch(urls: dict[str, str], names: list[str]) -> dict[str, Any]:
    """POST …/bulk for these file names; the answer's data."""
    answer = requests.post(
        f"{urls['presign']}/bulk",
        headers=AUTH,
        timeout=30,
        json={"files": [{"name": name} for name in names]},
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["data"])


def notification_for(env: dict[str, str], upload: dict[str, Any]) -> dict[str, Any]:
    """The MinIO webhook body for an uploaded file, as the object store would send it."""
    stat = Minio(
        env["S3_ENDPOINT"].removeprefix("http://"),
        "testing",
        "testing",
        secure=False,
        region="us-east-1",
    ).stat_object(env["S3_BUCKET"], upload["objectKey"])
    return webhook(env["S3_BUCKET"], upload["objectKey"], stat.etag or "", stat.size or 0)


def batch_status(urls: dict[str, str], batch_id: str) -> dict[str, Any]:
    answer = requests.get(f"{urls['status']}/batch/{batch_id}/status", headers=AUTH, timeout=10)
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["data"])
