"""status: a batch's live progress for the frontend, and retry of its failed files."""

import re

import flask
import functions_framework

from shared import status as use_cases
from shared.clients import get_clients
from shared.http import Route, json_errors, serve
from shared.observability import instrument


def _status(_: flask.Request, match: re.Match[str]) -> tuple[bytes, int]:
    return use_cases.batch_status(get_clients(), match["batch_id"]), 200


def _retry(_: flask.Request, match: re.Match[str]) -> tuple[dict[str, object], int]:
    return use_cases.retry_failed(get_clients(), match["batch_id"]), 202


ROUTES = (
    Route("GET", "batch/(?P<batch_id>[^/]+)/status", _status),
    Route("POST", "batch/(?P<batch_id>[^/]+)/retry", _retry),
)

json_errors(flask.current_app)
instrument(flask.current_app, queue_length=use_cases.queue_length)


@functions_framework.http
def status(request: flask.Request) -> flask.Response:
    return serve(request, get_clients().settings, ROUTES)
