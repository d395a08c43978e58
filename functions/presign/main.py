"""presign: presigned upload URLs for a batch, and processing of landed files on request."""

import re

import flask
import functions_framework

from shared import status as use_cases
from shared.clients import get_clients
from shared.http import Route, json_body, json_errors, serve
from shared.models import PresignRequest, ProcessRequest
from shared.observability import instrument
from shared.presign import presign as presign_files


def _process(request: flask.Request, _: re.Match[str]) -> tuple[dict[str, object], int]:
    body = ProcessRequest.model_validate(json_body(request))
    return use_cases.process_landed(get_clients(), body), 200


def _presign(request: flask.Request, _: re.Match[str]) -> tuple[dict[str, object], int]:
    body = PresignRequest.model_validate(json_body(request))
    return presign_files(get_clients(), body), 200


ROUTES = (
    Route("POST", "bulk/process", _process),
    Route("POST", ".*", _presign),  # POST …/bulk and POST …/ (any prefix)
)

json_errors(flask.current_app)
instrument(flask.current_app)


@functions_framework.http
def presign(request: flask.Request) -> flask.Response:
    return serve(request, get_clients().settings, ROUTES)
