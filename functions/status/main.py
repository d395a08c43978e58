"""status: a batch's live progress for the frontend, and retry of its failed files."""

import flask
import functions_framework

from shared import status as use_cases
from shared.clients import get_clients
from shared.http import Api, Call, Reply, Route, json_errors, serve
from shared.observability import instrument


def _status(call: Call) -> Reply:
    return Reply(use_cases.batch_status(get_clients(), call.params["batch_id"], call.caller))


def _retry(call: Call) -> Reply:
    batch_id = call.params["batch_id"]
    return Reply(use_cases.retry_failed(get_clients(), batch_id, call.caller), 202)


API = Api(
    name="status",
    routes=(
        Route("GET", "/batch/{batch_id}/status", _status),
        Route("POST", "/batch/{batch_id}/retry", _retry),
    ),
    auth="api",
)

json_errors(flask.current_app)
instrument(flask.current_app, queue_length=use_cases.queue_length)


@functions_framework.http
def status(request: flask.Request) -> flask.Response:
    return serve(API, request, get_clients().settings)
