"""process-file: one object-created notification in, the file's rows in PostgreSQL.

Answers 204 for every event it handled (loaded, duplicate, ignored, or failed for good),
5xx for transient trouble so the sender retries, 401 without the webhook token and 400 for a
body that is no notification. Never a 4xx for a genuine event: MinIO would retry it forever.
…/dead-letter receives the events a Knative broker gave up on and records them on the file.
"""

import logging

import flask
import functions_framework

from shared.clients import get_clients
from shared.errors import BadNotificationError, TransientError
from shared.events import parse_notification
from shared.http import token_matches
from shared.observability import instrument
from shared.process import handle_uploads, record_dead_letter

log = logging.getLogger("ingest")

instrument(flask.current_app)


@functions_framework.http
def process_file(request: flask.Request) -> flask.Response:
    clients = get_clients()
    if request.method == "GET" and request.path.rstrip("/").endswith("/healthz"):
        return flask.Response("ok", 200, mimetype="text/plain")
    token = clients.settings.webhook_token
    if token and not token_matches(request, (token,)):
        return flask.Response(status=401)
    if (request.content_length or 0) > clients.settings.max_request_bytes:
        return flask.Response("notification too large", 413, mimetype="text/plain")
    try:
        uploads = parse_notification(dict(request.headers), request.get_data())
        if request.path.rstrip("/").endswith("/dead-letter"):
            cause = request.headers.get("ce-knativeerrorcode", "unknown")
            record_dead_letter(clients, uploads, f"last answer: {cause}")
        else:
            handle_uploads(clients, uploads)
    except BadNotificationError as error:
        return flask.Response(f"not a notification: {error}", 400, mimetype="text/plain")
    except TransientError as error:
        log.warning("transient failure, the event will be redelivered: %s", error)
        return flask.Response(status=503, headers={"Retry-After": "5"})
    return flask.Response(status=204)
