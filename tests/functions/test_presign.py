"""The presign function in-process (create_app test client), wired to the real services."""

import base64
import json
from typing import Any

import psycopg
import pytest
import requests

from devstack.data import ohlcv_csv
from devstack.services import object_store
from tests.support.apps import app, batch_status, presign
from tests.support.env import AUTH, REFUSED_AUTHORIZATIONS, UNAUTHORIZED
from tests.support.observing import assert_serves_health_and_metrics


def test_presign_answers_the_contract_shape(function_env: dict[str, str]) -> None:
    data = presign(
        app("presign"),
        [{"name": "AAPL.csv", "size": 10, "type": "text/csv"}, {"name": "../x y.csv", "size": 10}],
    )
    batch = data["batchId"]
    assert batch.startswith("b_") and data["expiresAt"].endswith("Z")
    keys = [u["objectKey"] for u in data["uploadUrls"]]
    assert keys == [f"uploads/{batch}/0000_AAPL.csv", f"uploads/{batch}/0001_x_y.csv"]
    assert data["uploadUrls"][1]["fileName"] == "../x y.csv"
    assert all(
        u["method"] == "PUT" and u["headers"] == {"Content-Type": "text/csv"}
        for u in data["uploadUrls"]
    )
    assert batch_status(batch)["status"] == "PENDING" and batch_status(batch)["total"] == 2


def test_presign_adds_files_to_an_existing_batch(function_env: dict[str, str]) -> None:
    client = app("presign")
    first = presign(client, [{"name": "A.csv"}])
    response = client.post(
        "/bulk", headers=AUTH, json={"batchId": first["batchId"], "files": [{"name": "B.csv"}]}
    )
    assert response.json["data"]["uploadUrls"][0]["objectKey"].endswith("/0001_B.csv")
    assert batch_status(first["batchId"])["total"] == 2


def test_presign_url_is_signed_for_the_public_endpoint(
    function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("S3_PUBLIC_ENDPOINT", "https://files.example.com")
    data = presign(app("presign"), [{"name": "A.csv"}])
    assert data["uploadUrls"][0]["uploadUrl"].startswith("https://files.example.com/")


@pytest.mark.parametrize(
    ("files", "code"),
    [
        ([{"name": ""}], "INVALID_FILE_NAME"),
        ([{"name": "a\x00.csv"}], "INVALID_FILE_NAME"),
        ([{"name": "é" * 600 + ".csv"}], "INVALID_FILE_NAME"),
        ([{"name": "prices.xlsx"}], "UNSUPPORTED_FILE_TYPE"),
        ([{"name": "a.csv", "size": 104857601}], "FILE_TOO_LARGE"),
        ([{"name": "a.csv", "ticker": "=HYPERLINK()"}], "INVALID_TICKER"),
        ([], "INVALID_REQUEST"),
        ([{"name": "a.csv"}] * 1001, "TOO_MANY_FILES"),
    ],
)
def test_presign_refuses_bad_requests_and_creates_nothing(
    function_env: dict[str, str], files: list[dict[str, Any]], code: str
) -> None:
    with psycopg.connect(function_env["DATABASE_URL"]) as conn:
        before = conn.execute("SELECT count(*) FROM ingest_batches").fetchone()
        response = app("presign").post("/bulk", json={"files": files}, headers=AUTH)
        after = conn.execute("SELECT count(*) FROM ingest_batches").fetchone()
    assert response.status_code == 400
    assert response.json["success"] is False and response.json["error"]["code"] == code
    assert response.json["error"]["message"]
    assert before == after


def test_presign_refuses_bad_json_and_unknown_batch(function_env: dict[str, str]) -> None:
    client = app("presign")
    bad = client.post("/bulk", data=b"{nope", headers={**AUTH, "Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.json["error"]["code"] == "INVALID_JSON"
    unknown = client.post(
        "/bulk", headers=AUTH, json={"batchId": "b_" + "0" * 26, "files": [{"name": "a.csv"}]}
    )
    assert unknown.status_code == 404 and unknown.json["error"]["code"] == "BATCH_NOT_FOUND"


@pytest.mark.parametrize("header", REFUSED_AUTHORIZATIONS)
def test_presign_requires_a_token(function_env: dict[str, str], header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = app("presign").post("/bulk", json={"files": [{"name": "a.csv"}]}, headers=headers)
    assert (response.status_code, response.json) == (401, UNAUTHORIZED)


def test_presigned_post_option_bounds_the_size_in_its_policy(
    function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPLOAD_METHOD", "POST")
    monkeypatch.setenv("MAX_FILE_BYTES", "5000")
    response = app("presign").post("/bulk", json={"files": [{"name": "POSTED.csv"}]}, headers=AUTH)
    target = response.json["data"]["uploadUrls"][0]
    assert target["method"] == "POST" and target["headers"] == {}
    policy = json.loads(base64.b64decode(target["fields"]["policy"]))
    assert ["content-length-range", 1, 5000] in policy["conditions"]
    assert ["eq", "$key", target["objectKey"]] in policy["conditions"]
    # a browser-style form upload to the S3 endpoint
    body = ohlcv_csv(None, 3)
    answer = requests.post(
        target["uploadUrl"],
        data=target["fields"],
        files={"file": ("POSTED.csv", body, "text/csv")},
        timeout=30,
    )
    assert answer.status_code in (200, 201, 204), answer.text
    stored = object_store(function_env).get_object(function_env["S3_BUCKET"], target["objectKey"])
    assert stored.read() == body


def test_metrics_and_health_are_served_beside_the_function(function_env: dict[str, str]) -> None:
    assert_serves_health_and_metrics(app("presign"))


def test_the_admin_page_is_served_without_a_token(function_env: dict[str, str]) -> None:
    client = app("presign")
    page = client.get("/ui/")
    script = client.get("/function/presign/ui/upload-client.js")
    config = client.get("/ui/config.json").json
    assert page.status_code == 200 and b"<title>Price files: upload</title>" in page.data
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert script.status_code == 200 and b"export function startBatch" in script.data
    assert config["limits"]["maxFiles"] == 1000
    for missing in ("/ui/nothing.js", "/ui/..%2Fpyproject.toml", "/ui/.hidden.js", "/ui/a/b.js"):
        assert client.get(missing).status_code in (401, 404), missing
    assert client.get("/ui/nothing.js").json["error"]["code"] == "NOT_FOUND"
    assert client.post("/bulk/sign", json={"batchId": "b_x"}).status_code == 401
