"""The status function in-process (create_app test client), wired to the real services."""

import pytest

from devstack.data import ohlcv_csv
from devstack.processes import free_port
from shared.clients import get_clients
from tests.support.apps import app, batch_status, put_object, uploaded
from tests.support.env import AUTH, REFUSED_AUTHORIZATIONS, UNAUTHORIZED
from tests.support.notifications import as_post
from tests.support.observing import assert_serves_health_and_metrics


@pytest.mark.parametrize("header", REFUSED_AUTHORIZATIONS)
def test_status_requires_a_token(function_env: dict[str, str], header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = app("status").get("/batch/b_x/status", headers=headers)
    assert (response.status_code, response.json) == (401, UNAUTHORIZED)


def test_no_configured_tokens_refuse_everything_unless_auth_disabled(
    function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_TOKENS", "")
    assert app("status").get("/batch/b_x/status", headers=AUTH).status_code == 401
    monkeypatch.setenv("AUTH_DISABLED", "true")
    get_clients.cache_clear()
    assert app("status").get("/batch/b_x/status").status_code == 404


def test_cors_allows_only_listed_origins(function_env: dict[str, str]) -> None:
    client = app("status")
    preflight = client.options(
        "/batch/b_x/status",
        headers={"Origin": "http://admin.example", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "http://admin.example"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    other = client.get("/batch/b_x/status", headers={**AUTH, "Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_unknown_batch_is_404(function_env: dict[str, str]) -> None:
    response = app("status").get("/batch/b_0000/status", headers=AUTH)
    assert response.status_code == 404 and response.json["error"]["code"] == "BATCH_NOT_FOUND"
    assert app("status").post("/batch/b_0000/retry", headers=AUTH).status_code == 404


def test_retry_reprocesses_failed_files_from_the_stored_object(
    function_env: dict[str, str],
) -> None:
    batch_id, event = uploaded(function_env, "AMD.csv", b"Date,Open\n")
    app("process-file").post("/", **as_post(event))
    assert batch_status(batch_id)["status"] == "FAILED"
    [record] = event["Records"]
    from urllib.parse import unquote_plus

    put_object(function_env, unquote_plus(record["s3"]["object"]["key"]), ohlcv_csv(None, 4))
    response = app("status").post(f"/batch/{batch_id}/retry", headers=AUTH)
    assert response.status_code == 202 and response.json["data"] == {
        "batchId": batch_id,
        "retried": 1,
    }
    get_clients().background.shutdown(wait=True)
    state = batch_status(batch_id)
    assert (state["status"], state["rowsLoaded"], state["failed"]) == ("COMPLETED", 4, 0)


def test_minio_credentials_never_reach_error_messages(
    function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/x")
    monkeypatch.setenv("DATABASE_TIMEOUT_SECONDS", "1")
    answer = app("status").get(f"/batch/b_{'0' * 26}/status", headers=AUTH)
    assert answer.status_code == 503 and "hunter2" not in answer.get_data(as_text=True)


def test_metrics_and_health_are_served_beside_the_function(function_env: dict[str, str]) -> None:
    assert_serves_health_and_metrics(app("status"))


def test_pollers_get_an_etag_and_304_while_nothing_changed(function_env: dict[str, str]) -> None:
    batch_id, notification = uploaded(function_env, "ETAG.csv", ohlcv_csv("ETAG", 3))
    status = app("status")
    path = f"/function/status/batch/{batch_id}/status"
    first = status.get(path, headers=AUTH)
    assert first.status_code == 200 and first.headers["Cache-Control"] == "private, no-cache"
    etag = first.headers["ETag"]
    again = status.get(path, headers={**AUTH, "If-None-Match": etag})
    assert (again.status_code, again.get_data(), again.headers["ETag"]) == (304, b"", etag)
    assert app("process-file").post("/", json=notification).status_code == 204
    changed = status.get(path, headers={**AUTH, "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert status.get(path + "?files=every", headers=AUTH).status_code == 400
