"""The HTTP edge: prefixes, routing, health, body limits, tokens, CORS and the error table."""

import io
import json
import socket
import time
from collections.abc import Callable

import flask
import pytest
from pydantic import BaseModel
from werkzeug.test import EnvironBuilder

from shared import errors
from shared.http import Api, Call, Reply, Route, route_path, serve
from shared.settings import Settings

SETTINGS = Settings(
    database_url="postgresql://unused",
    redis_url="redis://unused",
    s3_endpoint="http://unused",
    api_tokens=("secret",),
    webhook_token="hook",
    cors_origins=("http://admin.example",),
    max_request_bytes=2048,
)
AUTH = {"Authorization": "Bearer secret"}


def _echo(call: Call) -> Reply:
    return Reply({"params": call.params, "size": len(call.body)})


def _raises(error: Exception) -> Callable[[Call], Reply]:
    def handler(_: Call) -> Reply:
        raise error

    return handler


def _answer(
    api: Api, method: str, path: str, settings: Settings = SETTINGS, **kwargs: object
) -> flask.Response:
    app = flask.Flask("edge")
    with app.test_request_context(path, method=method, **kwargs):  # type: ignore[arg-type]
        return serve(api, flask.request, settings)


API = Api(
    "status",
    (
        Route("GET", "/batch/{batch_id}/status", _echo),
        Route("POST", "/batch/{batch_id}/retry", _echo),
        Route("POST", "/json", lambda call: Reply(call.json())),
    ),
    auth="api",
)
HOOK = Api("process-file", (Route("POST", "/", lambda _: Reply(status=204)),), auth="webhook")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/batch/b1/status", "/batch/b1/status"),
        ("/function/status/batch/b1/status", "/batch/b1/status"),
        ("/api/upload/batch/b1/status", "/batch/b1/status"),
        ("/function/status", "/"),
        ("/function/status/", "/"),
        ("/function/statusx/batch", "/function/statusx/batch"),  # only whole segments
        ("/function/presign/bulk", "/function/presign/bulk"),  # another function's prefix
    ],
)
def test_configured_prefixes_are_removed_whole(path: str, expected: str) -> None:
    assert route_path(path, SETTINGS.path_prefixes, "status") == expected


def test_routes_match_whole_paths_with_parameters() -> None:
    answer = _answer(API, "GET", "/function/status/batch/b_1/status", headers=AUTH)
    assert answer.status_code == 200
    assert answer.json == {"success": True, "data": {"params": {"batch_id": "b_1"}, "size": 0}}


@pytest.mark.parametrize(
    "path", ["/batch/b_1/status/extra", "/x/batch/b_1/status", "/", "/bulk", "/batch//status"]
)
def test_an_unknown_route_is_404_in_the_envelope(path: str) -> None:
    answer = _answer(API, "GET", path, headers=AUTH)
    assert answer.status_code == 404
    assert answer.json is not None and answer.json["error"]["code"] == "NOT_FOUND"


def test_a_known_path_with_another_method_is_405() -> None:
    answer = _answer(API, "DELETE", "/batch/b_1/status", headers=AUTH)
    assert answer.status_code == 405


def test_health_and_preflight_need_no_token() -> None:
    health = _answer(API, "GET", "/function/status/healthz")
    assert health.status_code == 200 and health.json == {"status": "ok"}
    origin = {"Origin": "http://admin.example"}
    preflight = _answer(API, "OPTIONS", "/batch/b_1/status", headers=origin)
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "http://admin.example"
    stranger = _answer(API, "OPTIONS", "/batch/b_1/status", headers={"Origin": "http://evil"})
    assert "Access-Control-Allow-Origin" not in stranger.headers


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", "secret", "Basic secret", "Bearer ", "Bearer hook"]
)
def test_api_routes_need_an_api_token(authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    answer = _answer(API, "GET", "/batch/b_1/status", headers=headers)
    assert answer.status_code == 401
    assert answer.json is not None and answer.json["error"]["code"] == "UNAUTHORIZED"


def test_no_configured_api_token_refuses_everything_unless_auth_is_disabled() -> None:
    closed = SETTINGS.model_copy(update={"api_tokens": ()})
    assert _answer(API, "GET", "/batch/b_1/status", closed, headers=AUTH).status_code == 401
    opened = closed.model_copy(update={"auth_disabled": True})
    assert _answer(API, "GET", "/batch/b_1/status", opened).status_code == 200


def test_the_webhook_takes_only_the_webhook_token() -> None:
    assert _answer(HOOK, "POST", "/", headers={"Authorization": "Bearer hook"}).status_code == 204
    assert _answer(HOOK, "POST", "/", headers=AUTH).status_code == 401
    unset = SETTINGS.model_copy(update={"webhook_token": ""})
    assert _answer(HOOK, "POST", "/", unset).status_code == 204


def test_an_announced_body_over_the_limit_is_413() -> None:
    answer = _answer(API, "POST", "/batch/b_1/retry", headers=AUTH, data=b"x" * 4096)
    assert answer.status_code == 413


def test_a_chunked_body_over_the_limit_is_413_and_one_within_it_is_read_whole() -> None:
    chunked = {**AUTH, "Transfer-Encoding": "chunked"}
    app = flask.Flask("edge")
    for size, status in ((4096, 413), (2000, 200)):
        environ = {"wsgi.input_terminated": True}
        with app.test_request_context(
            "/batch/b_1/retry",
            method="POST",
            headers=chunked,
            input_stream=io.BytesIO(b"y" * size),
            environ_overrides=environ,
        ):
            assert flask.request.content_length is None
            answer = serve(API, flask.request, SETTINGS)
        assert answer.status_code == status
        if status == 200:
            assert answer.json is not None and answer.json["data"]["size"] == size


@pytest.mark.parametrize(
    "body", [b"not json", b"[1, 2]", b"\xff\xfe", b"[" * 1020 + b"]" * 1020, b'"text"']
)
def test_bodies_that_are_no_json_object_are_400(body: bytes) -> None:
    answer = _answer(API, "POST", "/json", headers=AUTH, data=body)
    assert answer.status_code == 400
    assert answer.json is not None and answer.json["error"]["code"] == "INVALID_JSON"


class _Shape(BaseModel):
    count: int


def _invalid() -> Exception:
    try:
        _Shape.model_validate({"count": "many"})
    except Exception as error:  # the ValidationError pydantic raises
        return error
    raise AssertionError("pydantic accepted an invalid body")


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (errors.AuthError(), 401, "UNAUTHORIZED"),
        (errors.NotFoundError("BATCH_NOT_FOUND", "no"), 404, "BATCH_NOT_FOUND"),
        (errors.ConflictError("BATCH_FINAL", "no"), 409, "BATCH_FINAL"),
        (errors.TooLargeError("PAYLOAD_TOO_LARGE", "no"), 413, "PAYLOAD_TOO_LARGE"),
        (errors.RequestError("TOO_MANY_FILES", "no"), 400, "TOO_MANY_FILES"),
        (errors.BadNotificationError("no records"), 400, "NOT_A_NOTIFICATION"),
        (_invalid(), 400, "INVALID_REQUEST"),
        (errors.TransientError("db down"), 503, "SERVICE_UNAVAILABLE"),
        (errors.BusyError("held"), 503, "SERVICE_UNAVAILABLE"),
        (RuntimeError("bug"), 500, "INTERNAL"),
    ],
)
def test_each_error_class_has_one_answer(error: Exception, status: int, code: str) -> None:
    api = Api("status", (Route("GET", "/boom", _raises(error)),), auth="api")
    answer = _answer(api, "GET", "/boom", headers=AUTH)
    assert answer.status_code == status
    body = json.loads(answer.get_data())
    assert body["success"] is False and body["error"]["code"] == code
    assert ("Retry-After" in answer.headers) == (status == 503)
    assert "bug" not in body["error"]["message"]  # an unexpected error's text stays in the log


def test_a_body_that_stops_arriving_is_408_within_the_read_timeout() -> None:
    # GIVEN a client that announces 2,000 bytes and sends three (a real socket, as gunicorn
    # hands it to the application)
    server, client = socket.socketpair()
    client.sendall(b"abc")
    slow = SETTINGS.model_copy(update={"request_read_timeout_seconds": 0.3})
    app = flask.Flask("edge")
    started = time.monotonic()
    environ = EnvironBuilder(path="/batch/b_1/retry", method="POST", headers=AUTH).get_environ()
    environ.update(
        {"wsgi.input": server.makefile("rb"), "CONTENT_LENGTH": "2000", "gunicorn.socket": server}
    )
    with app.request_context(environ):
        answer = serve(API, flask.request, slow)
    # THEN the request thread is free again at once, and the client is told why
    assert answer.status_code == 408 and time.monotonic() - started < 2
    assert answer.json is not None and answer.json["error"]["code"] == "REQUEST_TIMEOUT"
    assert server.recv(1) == b""  # nothing more is read from that client
    server.close()
    client.close()
