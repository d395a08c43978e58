"""The HTTP surface shared by the entry points: routing on the path's end, the JSON envelope,
bearer auth, CORS, and the mapping from library errors to status codes (in this one place)."""

import hmac
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

import flask
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from .errors import AuthError, RequestError, TransientError
from .settings import Settings

log = logging.getLogger("ingest")
# A handler answers its data (a dict, or bytes already encoded as JSON) and a status code.
Handler = Callable[[flask.Request, re.Match[str]], tuple[dict[str, Any] | bytes, int]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # a regular expression matched against the end of the request path
    handler: Handler


def serve(request: flask.Request, settings: Settings, routes: Sequence[Route]) -> flask.Response:
    """Answer one API request: CORS, health, body limit, auth, then the matching route."""
    cors = _cors_headers(request, settings)
    if request.method == "OPTIONS":
        return _response(None, 204, cors)
    if request.method == "GET" and request.path.rstrip("/").endswith("/healthz"):
        return _response({"status": "ok"}, 200, cors)
    if request.method == "GET" and request.path.endswith("/openapi.json"):
        return _response(openapi_document(), 200, cors)
    try:
        if (request.content_length or 0) > settings.max_request_bytes:
            raise RequestError("PAYLOAD_TOO_LARGE", "The request body is too large.", 413)
        authorize(request, settings)
        route, match = _route(request, routes)
        data, status = route.handler(request, match)
        if isinstance(data, bytes):
            return _encoded(b'{"success":true,"data":' + data + b"}", status, cors)
        return _response({"success": True, "data": data}, status, cors)
    except RequestError as error:
        return _failure(error.code, error.message, error.status, cors)
    except ValidationError as error:
        return _failure("INVALID_REQUEST", _validation_message(error), 400, cors)
    except TransientError as error:
        log.warning("transient failure: %s", error)
        message = "A backing service is unavailable; retry."
        return _failure("SERVICE_UNAVAILABLE", message, 503, cors)


def json_errors(app: flask.Flask) -> None:
    """Requests the framework answers itself (paths its router cannot take) get the envelope."""

    def handle(error: HTTPException) -> flask.Response:
        return _failure(
            error.name.upper().replace(" ", "_"),
            error.description or error.name,
            error.code or 500,
            {},
        )

    app.register_error_handler(HTTPException, handle)


@cache
def openapi_document() -> Any:
    """The OpenAPI 3 description of presign and status (shared/openapi.json)."""
    return json.loads(files("shared").joinpath("openapi.json").read_text())


def authorize(request: flask.Request, settings: Settings) -> None:
    """Bearer tokens compared in constant time; refuse everything when none is configured."""
    if not settings.auth_disabled and not token_matches(request, settings.api_tokens):
        raise AuthError()


def token_matches(request: flask.Request, tokens: Iterable[str]) -> bool:
    """Whether the request carries `Authorization: Bearer <one of tokens>`, compared in
    constant time against every token."""
    scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
    matches = [hmac.compare_digest(supplied.encode(), token.encode()) for token in tokens]
    return scheme.lower() == "bearer" and bool(supplied) and any(matches)


def json_body(request: flask.Request) -> Any:
    body = request.get_json(silent=True)
    if body is None:
        raise RequestError("INVALID_JSON", "The request body must be a JSON object.")
    return body


def _route(request: flask.Request, routes: Sequence[Route]) -> tuple[Route, re.Match[str]]:
    path = request.path.rstrip("/") or "/"
    allowed = False
    for route in routes:
        match = re.search(f"(?:^|/){route.path}$", path)
        if match and route.method == request.method:
            return route, match
        allowed = allowed or bool(match)
    if allowed:
        raise RequestError("METHOD_NOT_ALLOWED", f"{request.method} is not allowed here.", 405)
    raise RequestError("NOT_FOUND", f"No route for {request.method} {request.path}.", 404)


def _cors_headers(request: flask.Request, settings: Settings) -> dict[str, str]:
    origin = request.headers.get("Origin")
    if not origin or origin not in settings.cors_origins:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type",
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }


def _failure(code: str, message: str, status: int, headers: dict[str, str]) -> flask.Response:
    return _response(
        {"success": False, "error": {"code": code, "message": message}}, status, headers
    )


def _response(body: Any, status: int, headers: dict[str, str]) -> flask.Response:
    response = flask.jsonify(body) if body is not None else flask.Response(status=status)
    response.status_code = status
    response.headers.update(headers)
    return response


def _encoded(body: bytes, status: int, headers: dict[str, str]) -> flask.Response:
    response = flask.Response(body, status=status, mimetype="application/json")
    response.headers.update(headers)
    return response


def _validation_message(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"
