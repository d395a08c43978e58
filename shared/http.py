"""The one HTTP edge of all three functions: path prefixes, health, body limits, tokens, CORS,
routing, and the table that turns library errors into answers.

An entry point declares an `Api` (its routes and which token it takes) and hands every request
to `serve`; handlers receive a `Call` (path parameters, the bounded body) and return a `Reply`.
"""

import hmac
import json
import logging
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any, Literal

import flask
from pydantic import ValidationError
from werkzeug.exceptions import ClientDisconnected, HTTPException

from .access import caller_id
from .errors import (
    AuthError,
    BadNotificationError,
    ConflictError,
    NotFoundError,
    RequestError,
    SlowRequestError,
    TooLargeError,
    TransientError,
)
from .settings import Settings

log = logging.getLogger("ingest")
RETRY_AFTER_SECONDS = 5
READ_CHUNK_BYTES = 65536


@dataclass(frozen=True)
class Call:
    """One routed request: its path parameters and its body, already read within the limit."""

    request: flask.Request
    params: dict[str, str]
    body: bytes
    caller: str | None = None  # access.caller_id of the API token the request carried

    def json(self) -> dict[str, Any]:
        """The body as a JSON object; anything else is the caller's mistake (400)."""
        try:
            value = json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise RequestError("INVALID_JSON", "The request body must be a JSON object.") from None
        except RecursionError:
            raise RequestError("INVALID_JSON", "The request body is nested too deeply.") from None
        if not isinstance(value, dict):
            raise RequestError("INVALID_JSON", "The request body must be a JSON object.")
        return value


@dataclass(frozen=True)
class Reply:
    """A handler's answer: data for the envelope (bytes: JSON already encoded), or, with None,
    an empty body."""

    data: dict[str, Any] | bytes | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    raw: bool = False  # data is the whole body (a page or a script), sent as it is


Handler = Callable[[Call], Reply]


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # "/batch/{batch_id}/status": each {name} stands for one path segment
    handler: Handler
    public: bool = False  # served without a token (the admin page's static files)


@dataclass(frozen=True)
class Api:
    name: str  # the function's name, as in its /function/<name> prefix
    routes: tuple[Route, ...]
    # "api": API_TOKENS, CORS and the OpenAPI document (presign, status);
    # "webhook": WEBHOOK_TOKEN when one is set (process-file, called by the object store)
    auth: Literal["api", "webhook"]


class _MethodNotAllowedError(RequestError):
    pass


# Every error a handler may raise, and the status it answers; the first matching class wins.
STATUS_OF: tuple[tuple[type[Exception], int], ...] = (
    (AuthError, 401),
    (NotFoundError, 404),
    (_MethodNotAllowedError, 405),
    (ConflictError, 409),
    (TooLargeError, 413),
    (SlowRequestError, 408),
    (RequestError, 400),
    (BadNotificationError, 400),
    (ValidationError, 400),
    (TransientError, 503),
)


def serve(api: Api, request: flask.Request, settings: Settings) -> flask.Response:
    """Answer one request: CORS, health, auth, route, body limit, then the handler."""
    cors = _cors_headers(request, settings) if api.auth == "api" else {}
    path = route_path(request.path, settings.path_prefixes, api.name)
    if request.method == "OPTIONS" and api.auth == "api":
        return _response(None, 204, cors)
    if request.method == "GET" and path == "/healthz":
        return _response({"status": "ok"}, 200, cors)
    if request.method == "GET" and path == "/openapi.json" and api.auth == "api":
        return _response(openapi_document(), 200, cors)
    try:
        public = _is_public(api.routes, request.method, path)
        caller = _authorize(request, None if public else _tokens(api, settings))
        route, params = _route(api.routes, request.method, path)
        body = _body(request, settings.max_request_bytes, settings.request_read_timeout_seconds)
        reply = route.handler(Call(request, params, body, caller))
    except Exception as error:  # every failure gets its answer from the table
        return _failure(error, cors)
    headers = {**cors, **reply.headers}
    if reply.raw and isinstance(reply.data, bytes):
        response = flask.Response(reply.data, status=reply.status)
        response.headers.update(headers)
        return response
    if isinstance(reply.data, bytes):
        return _encoded(b'{"success":true,"data":' + reply.data + b"}", reply.status, headers)
    if reply.data is None:
        return _response(None, reply.status, headers)
    return _response({"success": True, "data": reply.data}, reply.status, headers)


def route_path(path: str, prefixes: Sequence[str], function: str) -> str:
    """The path with the longest configured prefix removed (`/function/<name>`,
    `/api/upload`, …), so routes match whole paths whatever is in front of the function."""
    path = "/" + path.strip("/")
    candidates = ("/" + p.format(function=function).strip("/") for p in prefixes)
    for prefix in sorted(candidates, key=len, reverse=True):
        if prefix != "/" and (path == prefix or path.startswith(prefix + "/")):
            return path[len(prefix) :] or "/"
    return path


def json_errors(app: flask.Flask) -> None:
    """Requests the framework answers itself (paths its router cannot take) get the envelope."""

    def handle(error: HTTPException) -> flask.Response:
        code = error.name.upper().replace(" ", "_")
        return _envelope_failure(code, error.description or error.name, error.code or 500, {})

    app.register_error_handler(HTTPException, handle)


@cache
def openapi_document() -> Any:
    """The OpenAPI 3 description of presign and status (shared/openapi.json)."""
    return json.loads(files("shared").joinpath("openapi.json").read_text())


def matching_token(request: flask.Request, tokens: Iterable[str]) -> str | None:
    """The token of `tokens` the request carries as `Authorization: Bearer <token>`, compared
    in constant time against every one."""
    scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
    found = None
    for token in tokens:
        if hmac.compare_digest(supplied.encode(), token.encode()):
            found = token
    return found if scheme.lower() == "bearer" and supplied else None


def _tokens(api: Api, settings: Settings) -> tuple[str, ...] | None:
    """The tokens a request must carry one of; None when no check applies."""
    if api.auth == "webhook":
        return (settings.webhook_token,) if settings.webhook_token else None
    # With no API token configured every request is refused, unless auth is disabled outright.
    return None if settings.auth_disabled else settings.api_tokens


def _authorize(request: flask.Request, tokens: tuple[str, ...] | None) -> str | None:
    """The caller's id (None where no token is checked); AuthError without a valid token."""
    if tokens is None:
        return None
    token = matching_token(request, tokens)
    if token is None:
        raise AuthError()
    return caller_id(token)


def _route(routes: Sequence[Route], method: str, path: str) -> tuple[Route, dict[str, str]]:
    segments = path.strip("/").split("/") if path != "/" else []
    allowed = []
    for route in routes:
        params = _match(route.path, segments)
        if params is None:
            continue
        if route.method == method:
            return route, params
        allowed.append(route.method)
    if allowed:
        raise _MethodNotAllowedError("METHOD_NOT_ALLOWED", f"{method} is not allowed here.")
    raise NotFoundError("NOT_FOUND", f"No route for {method} {path}.")


def _is_public(routes: Sequence[Route], method: str, path: str) -> bool:
    segments = path.strip("/").split("/") if path != "/" else []
    return any(
        r.public and r.method == method and _match(r.path, segments) is not None for r in routes
    )


def _match(pattern: str, segments: list[str]) -> dict[str, str] | None:
    parts = pattern.strip("/").split("/") if pattern != "/" else []
    if len(parts) != len(segments):
        return None
    params = {}
    for part, segment in zip(parts, segments, strict=True):
        if part.startswith("{") and part.endswith("}") and segment:
            params[part[1:-1]] = segment
        elif part != segment:
            return None
    return params


def _body(request: flask.Request, limit: int, timeout: float) -> bytes:
    """The body, read up to the limit whether or not a Content-Length announced it (a chunked
    body has none), each read bounded in time so that a client dripping its body cannot hold
    a request thread (gunicorn hands its socket to the application as gunicorn.socket)."""
    if (request.content_length or 0) > limit:
        raise TooLargeError("PAYLOAD_TOO_LARGE", f"The request body is over {limit} bytes.")
    if not request.content_length and "HTTP_TRANSFER_ENCODING" not in request.environ:
        return b""  # no body (a poll): nothing to read, no socket timeout to set and reset
    sock = request.environ.get("gunicorn.socket")
    if isinstance(sock, socket.socket):
        sock.settimeout(timeout)
    chunks, size = [], 0
    try:
        while chunk := request.stream.read(min(READ_CHUNK_BYTES, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise TooLargeError("PAYLOAD_TOO_LARGE", f"The request body is over {limit} bytes.")
    except (TimeoutError, ClientDisconnected) as error:
        # werkzeug reports a timeout on a body of known length as a disconnect
        if not isinstance(error, TimeoutError) and not isinstance(error.__context__, TimeoutError):
            raise RequestError("CLIENT_DISCONNECTED", "The request body ended early.") from None
        if isinstance(sock, socket.socket):
            # the framework reads what is left of a request after answering it: there is none
            sock.shutdown(socket.SHUT_RD)
        raise SlowRequestError(
            "REQUEST_TIMEOUT", f"The request body did not arrive within {timeout:g} s."
        ) from None
    if isinstance(sock, socket.socket):
        sock.settimeout(None)
    return b"".join(chunks)


def _failure(error: Exception, cors: dict[str, str]) -> flask.Response:
    status = next((code for kind, code in STATUS_OF if isinstance(error, kind)), 500)
    if isinstance(error, RequestError):
        return _envelope_failure(error.code, error.message, status, cors)
    if isinstance(error, BadNotificationError):
        return _envelope_failure("NOT_A_NOTIFICATION", f"Not a notification: {error}", 400, cors)
    if isinstance(error, ValidationError):
        return _envelope_failure("INVALID_REQUEST", _validation_message(error), 400, cors)
    if isinstance(error, TransientError):
        log.warning("transient failure, the caller retries: %s", error)
        message = "A backing service is unavailable; retry."
        headers = {**cors, "Retry-After": str(RETRY_AFTER_SECONDS)}
        return _envelope_failure("SERVICE_UNAVAILABLE", message, 503, headers)
    log.exception("unexpected failure")
    return _envelope_failure("INTERNAL", "The request failed unexpectedly.", 500, cors)


def _envelope_failure(
    code: str, message: str, status: int, headers: dict[str, str]
) -> flask.Response:
    body = {"success": False, "error": {"code": code, "message": message}}
    return _response(body, status, headers)


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
