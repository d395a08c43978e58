"""status: a batch's live progress for the frontend, and retry of its failed files."""

import flask
import functions_framework

from shared import status as use_cases
from shared.clients import get_clients
from shared.http import Api, Call, Reply, Route, json_errors, serve
from shared.observability import instrument


def _status(call: Call) -> Reply:
    poll = use_cases.poll_from(call.request.args, call.request.headers.get("If-None-Match"))
    polled = use_cases.poll_status(get_clients(), call.params["batch_id"], call.caller, poll)
    # private: the answer depends on the token; no-cache: keep it, but ask (ETag) every time
    headers = {"ETag": polled.etag, "Cache-Control": "private, no-cache"}
    if polled.body is None:
        return Reply(None, 304, headers)
    return Reply(polled.body, 200, headers)


def _retry(call: Call) -> Reply:
    batch_id = call.params["batch_id"]
    return Reply(use_cases.retry_failed(get_clients(), batch_id, call.caller), 202)


def _revert(call: Call) -> Reply:
    batch_id = call.params["batch_id"]
    return Reply(use_cases.revert_batch(get_clients(), batch_id, call.caller), 200)


def _lineage(call: Call) -> Reply:
    return Reply(use_cases.lineage(get_clients(), call.request.args), 200)


API = Api(
    name="status",
    routes=(
        Route("GET", "/batch/{batch_id}/status", _status),
        Route("POST", "/batch/{batch_id}/retry", _retry),
        Route("POST", "/batch/{batch_id}/revert", _revert),
        Route("GET", "/lineage", _lineage),
    ),
    auth="api",
)

json_errors(flask.current_app)
instrument(flask.current_app, queue_length=use_cases.queue_length)


@functions_framework.http
def status(request: flask.Request) -> flask.Response:
    return serve(API, request, get_clients().settings)
