"""Receivers of completion notifications on 127.0.0.1, as the customer's systems would run
them: an HTTP endpoint that verifies Standard Webhooks signatures with the `standardwebhooks`
package (or parses CloudEvents with the cloudevents SDK) and answers from a script, and an
SMTP server (aiosmtpd). Used by scripts/dev and the tests."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cloudevents.http import from_http
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Answer:
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering: a receiver that hangs


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int
    payload: Any  # the verified webhook body, or the parsed CloudEvent; None when refused
    error: str | None  # why the signature (or event) was refused

    @property
    def accepted(self) -> bool:
        return 200 <= self.answered < 300


class Receiver:
    """Records every request and answers with `answers` in turn (then 204). With `secret`
    each request is verified as a Standard Webhooks delivery and refused (401) when it fails;
    with `cloudevents` it is parsed as a CloudEvent (400 when it is none)."""

    def __init__(
        self,
        secret: str | None = None,
        answers: Iterable[Answer | int] = (),
        cloudevents: bool = False,
        on_request: Callable[[Received], None] | None = None,
    ) -> None:
        self._verifier = Webhook(secret) if secret else None
        self._cloudevents = cloudevents
        self._answers = deque(a if isinstance(a, Answer) else Answer(a) for a in answers)
        self._on_request = on_request
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.received: list[Received] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/batches"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped.set()
        self._server.shutdown()
        self._server.server_close()

    def accepted(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.accepted]

    def wait(self, count: int, timeout: float = 30.0, accepted: bool = True) -> list[Received]:
        """Until `count` requests (accepted ones, by default) have come; those requests."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                got = [r for r in self.received if r.accepted or not accepted]
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.02)

    def _check(self, headers: dict[str, str], body: bytes) -> tuple[Any, str | None]:
        try:
            if self._verifier is not None:
                return self._verifier.verify(body, headers), None
            if self._cloudevents:
                return from_http(headers, body), None
            return json.loads(body), None
        except (WebhookVerificationError, ValueError) as error:  # a malformed header: ValueError
            return None, f"{type(error).__name__}: {error}"
        except Exception as error:  # the SDK's own errors for what is no CloudEvent
            return None, f"{type(error).__name__}: {error}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = dict(self.headers.items())
                payload, error = receiver._check(headers, body)
                with receiver._lock:
                    answer = receiver._answers.popleft() if receiver._answers else Answer()
                status = answer.status if error is None else (401 if receiver._verifier else 400)
                received = Received(headers, body, status, payload, error)
                with receiver._lock:
                    receiver.received.append(received)
                if receiver._on_request is not None:
                    receiver._on_request(received)
                if answer.delay and receiver._stopped.wait(answer.delay):
                    return
                try:
                    self.send_response(status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the sender gave up waiting
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


class MailReceiver:
    """An SMTP server (aiosmtpd) on 127.0.0.1 keeping every message it accepts; with
    `tls_context` it offers STARTTLS and requires it, with `credentials` it requires AUTH."""

    def __init__(
        self,
        port: int,
        tls_context: Any = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                message = message_from_bytes(envelope.content, policy=policy.default)
                receiver.messages.append(message)
                receiver.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
                return "250 OK"

        def authenticate(
            server: Any, session: Any, envelope: Any, mechanism: str, auth: Any
        ) -> Any:
            given = (auth.login.decode(), auth.password.decode())
            return AuthResult(success=credentials is not None and given == credentials)

        options: dict[str, Any] = {}
        if tls_context is not None:
            options.update(tls_context=tls_context, require_starttls=True)
        if credentials is not None:
            options.update(authenticator=authenticate, auth_require_tls=tls_context is not None)
            options.update(auth_required=True)
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=port, **options)
        self.port = port

    def __enter__(self) -> MailReceiver:
        self._controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._controller.stop()

    def wait(self, count: int, timeout: float = 30.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.messages)
