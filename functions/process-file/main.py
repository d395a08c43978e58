"""process-file: one object-created notification in, the file's rows in PostgreSQL.

Answers 204 (empty) for every event it handled (loaded, duplicate, ignored, or failed for
good), 503 for transient trouble so the sender retries, 401 without the webhook token and 400
for a body that is no notification. Never a 4xx for a genuine event: MinIO would retry it
forever. …/dead-letter receives the events a Knative broker gave up on.
"""

import flask
import functions_framework

from shared.clients import get_clients
from shared.events import ObjectCreated, parse_notification
from shared.http import Api, Call, Reply, Route, json_errors, serve
from shared.observability import instrument
from shared.process import handle_uploads, record_dead_letter
from shared.workspace import remove_stale


def _uploads(call: Call) -> list[ObjectCreated]:
    limit = get_clients().settings.max_notification_records
    return parse_notification(dict(call.request.headers), call.body, limit)


def _notification(call: Call) -> Reply:
    handle_uploads(get_clients(), _uploads(call))
    return Reply(status=204)


def _dead_letter(call: Call) -> Reply:
    uploads = _uploads(call)
    cause = call.request.headers.get("ce-knativeerrorcode", "unknown")
    record_dead_letter(get_clients(), uploads, f"last answer: {cause}")
    return Reply(status=204)


API = Api(
    name="process-file",
    routes=(Route("POST", "/", _notification), Route("POST", "/dead-letter", _dead_letter)),
    auth="webhook",
)

json_errors(flask.current_app)
instrument(flask.current_app)
remove_stale()  # what a killed predecessor in this container left behind


@functions_framework.http
def process_file(request: flask.Request) -> flask.Response:
    return serve(API, request, get_clients().settings)
