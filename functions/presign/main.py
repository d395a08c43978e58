"""presign: presigned upload URLs for a batch (fresh ones, multipart parts), processing of
landed files on request, and the admin page (GET …/ui/)."""

from pathlib import Path

import flask
import functions_framework

from shared import pages, uploads
from shared import presign as use_cases
from shared.clients import get_clients
from shared.http import Api, Call, Reply, Route, json_errors, serve
from shared.models import (
    MultipartCompleteRequest,
    MultipartRequest,
    MultipartSignRequest,
    PresignRequest,
    ProcessRequest,
    SignRequest,
)
from shared.observability import instrument

WEB_DIR = Path(__file__).resolve().parents[2] / "web"


def _presign(call: Call) -> Reply:
    body = PresignRequest.model_validate(call.json())
    return Reply(use_cases.presign(get_clients(), body, call.caller))


def _process(call: Call) -> Reply:
    body = ProcessRequest.model_validate(call.json())
    return Reply(use_cases.process_landed(get_clients(), body, call.caller))


def _sign(call: Call) -> Reply:
    body = SignRequest.model_validate(call.json())
    return Reply(uploads.sign(get_clients(), body, call.caller))


def _multipart(call: Call) -> Reply:
    body = MultipartRequest.model_validate(call.json())
    return Reply(uploads.create_multipart(get_clients(), body, call.caller))


def _parts(call: Call) -> Reply:
    body = MultipartSignRequest.model_validate(call.json())
    return Reply(uploads.sign_parts(get_clients(), body, call.caller))


def _complete(call: Call) -> Reply:
    body = MultipartCompleteRequest.model_validate(call.json())
    return Reply(uploads.complete_multipart(get_clients(), body, call.caller))


def _abort(call: Call) -> Reply:
    body = MultipartRequest.model_validate(call.json())
    return Reply(uploads.abort_multipart(get_clients(), body, call.caller))


def _page(call: Call) -> Reply:
    body, headers = pages.asset(WEB_DIR, call.params.get("name", ""), get_clients().settings)
    return Reply(body, headers=headers, raw=True)


API = Api(
    name="presign",
    routes=(
        Route("POST", "/bulk", _presign),
        Route("POST", "/", _presign),
        Route("POST", "/bulk/process", _process),
        Route("POST", "/bulk/sign", _sign),
        Route("POST", "/bulk/multipart", _multipart),
        Route("POST", "/bulk/multipart/parts", _parts),
        Route("POST", "/bulk/multipart/complete", _complete),
        Route("POST", "/bulk/multipart/abort", _abort),
        Route("GET", "/ui", _page, public=True),
        Route("GET", "/ui/{name}", _page, public=True),
    ),
    auth="api",
)

json_errors(flask.current_app)
instrument(flask.current_app)


@functions_framework.http
def presign(request: flask.Request) -> flask.Response:
    return serve(API, request, get_clients().settings)
