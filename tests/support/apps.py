"""The three functions in-process (functions_framework test clients), and the upload flow a
browser and the object store drive: presign, PUT, the object-created notification, status."""

import io
import secrets
from typing import Any

from flask.testing import FlaskClient
from functions_framework import create_app
from minio.datatypes import Object

from devstack import ROOT
from devstack.client import notification, upload
from devstack.processes import FUNCTIONS
from devstack.services import object_store
from tests.support.env import AUTH
from tests.support.notifications import as_post


def app(name: str) -> FlaskClient:
    source, target = FUNCTIONS[name]
    return create_app(target, str(ROOT / source), "http").test_client()


def put_object(env: dict[str, str], key: str, body: bytes) -> Object:
    """Store `body` under `key` directly (no presign); the stored object's stat."""
    client = object_store(env)
    client.put_object(env["S3_BUCKET"], key, io.BytesIO(body), len(body), content_type="text/csv")
    return client.stat_object(env["S3_BUCKET"], key)


def presign(client: FlaskClient, files: list[dict[str, Any]]) -> dict[str, Any]:
    response = client.post("/api/upload/bulk", json={"files": files}, headers=AUTH)
    assert response.status_code == 200, response.json
    return dict(response.json["data"])


def uploaded(
    env: dict[str, str], name: str, body: bytes, ticker: str | None = None
) -> tuple[str, dict[str, Any]]:
    """Presign one file, PUT it: its batch id and the notification the store would send."""
    data = presign(app("presign"), [{"name": name, "size": len(body), "ticker": ticker}])
    target = data["uploadUrls"][0]
    upload(target, body)
    stat = object_store(env).stat_object(env["S3_BUCKET"], target["objectKey"])
    return data["batchId"], notification(
        env["S3_BUCKET"], target["objectKey"], stat.etag or "", stat.size or 0
    )


def batch_status(batch_id: str) -> dict[str, Any]:
    response = app("status").get(f"/function/status/batch/{batch_id}/status", headers=AUTH)
    assert response.status_code == 200, response.json
    return dict(response.json["data"])


def load(env: dict[str, str], body: bytes, name: str = "data.csv") -> tuple[str, dict[str, Any]]:
    """Upload and process under a fresh ticker: the ticker and the file's status entry."""
    ticker = "T" + secrets.token_hex(4).upper()
    batch_id, event = uploaded(env, name, body, ticker=ticker)
    assert app("process-file").post("/", **as_post(event)).status_code == 204
    return ticker, batch_status(batch_id)["files"][0]
