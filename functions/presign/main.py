"""presign: presigned upload URLs for a batch, and processing of landed files on request."""

import flask
import functions_framework

from shared import presign as use_cases
from shared.clients import get_clients
from shared.http import Api, Call, Reply, Route, json_errors, serve
from shared.models import PresignRequest, ProcessRequest
from shared.observability import instrument


def _presign(call: Call) -> Reply:
    body = PresignRequest.model_validate(call.json())
    return Reply(use_cases.presign(get_clients(), body, call.caller))


def _process(call: Call) -> Reply:
    body = ProcessRequest.model_validate(call.json())
    return Reply(use_cases.process_landed(get_clients(), body, call.caller))


API = Api(
    name="presign",
    routes=(
        Route("POST", "/bulk", _presign),
        Route("POST", "/", _presign),
        Route("POST", "/bulk/process", _process),
    ),
    auth="api",
)

json_errors(flask.current_app)
instrument(flask.current_app)


@functions_framework.http
def presign(request: flask.Request) -> flask.Response:
    return serve(API, request, get_clients().settings)
