"""Completion notifications: what a batch's final state says, to whom, signed and sent.

The transaction that makes a batch final (a file's last write, database._settle) writes one
outbox row per delivery through `outbox`; after commit whichever process is at hand sends what
is due with `send_due`: process-file after the file that finished the batch, status when a poll
finds a delivery due, reconcile as the sweep. A sender holds the row it sends (FOR UPDATE SKIP
LOCKED), so no two send it at once; a receiver sees a delivery again only when it did not answer
2xx, always with the same id. Failed attempts back off exponentially with jitter until
NOTIFY_RETRY_HOURS after the transition, then the delivery is DEAD; 410 Gone stops its target.

Channels: a webhook signed per Standard Webhooks, a CloudEvent to K_SINK, an email over SMTP.
"""

import base64
import hashlib
import hmac
import http.client
import json
import logging
import random
import re
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, parsedate_to_datetime
from html import escape
from typing import Any
from urllib.parse import unquote, urlsplit

from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from . import batch_view, database, observability
from .clients import Clients
from .errors import RequestError, TransientError
from .models import AttemptResult, BatchOutcome, Composed, Delivery, NewDelivery, NotifyOption
from .settings import Settings

log = logging.getLogger("ingest")
CLOUDEVENT_TYPE_PREFIX = "org.seasonality-ingest"
MAX_BACKOFF = timedelta(hours=6)
RESPONSE_BYTES = 65536
USER_AGENT = "seasonality-ingest-notify/1"
_ADDRESS = re.compile(r"^[^@\s,;<>\"()\[\]\\]+@[A-Za-z0-9.-]+$")


def outbox(settings: Settings) -> Callable[[BatchOutcome], Composed]:
    """What database.load_file / fail_file write when their file makes the batch final."""
    return lambda outcome: compose(settings, outcome)


def compose(settings: Settings, outcome: BatchOutcome) -> Composed:
    """The transition's payload and its deliveries: the configured targets and the batch's
    own (still on the allow-list), each once."""
    event_type = f"batch.{outcome.status.lower()}"
    payload = {
        "type": event_type,
        "timestamp": _iso(outcome.finished_at),
        "data": summary(settings, outcome),
    }
    own = outcome.notify
    hooks = [
        *settings.notify_webhook_urls,
        *(u for u in own.get("webhook", []) if _allowed(settings, u)),
    ]
    mails = [*settings.notify_email_to, *(a for a in own.get("email", []) if _listed(settings, a))]
    deliveries = [NewDelivery("webhook", url) for url in dict.fromkeys(hooks)]
    if settings.k_sink:
        deliveries.append(NewDelivery("cloudevent", settings.k_sink))
    deliveries += [NewDelivery("email", a) for a in dict.fromkeys(m.lower() for m in mails)]
    return Composed(f"{outcome.batch_id}_{outcome.seq}", event_type, payload, deliveries)


def summary(settings: Settings, outcome: BatchOutcome) -> dict[str, Any]:
    """The batch in the status shapes, with its failed files (the first ones, not all)."""
    started = outcome.started_at or outcome.created_at
    base = settings.status_public_url.rstrip("/")
    return {
        "batchId": outcome.batch_id,
        "status": outcome.status,
        "total": outcome.total,
        "processed": outcome.processed,
        "failed": outcome.failed,
        "rowsLoaded": outcome.rows_loaded,
        "rowsRejected": outcome.rows_rejected,
        "createdAt": _iso(outcome.created_at),
        "finishedAt": _iso(outcome.finished_at),
        "durationSeconds": round((outcome.finished_at - outcome.created_at).total_seconds(), 3),
        "processingSeconds": round(max(0.0, (outcome.finished_at - started).total_seconds()), 3),
        "statusUrl": f"{base}/batch/{outcome.batch_id}/status" if base else None,
        "failedFiles": [
            {"fileName": name, "objectKey": key, "error": error}
            for name, key, error in outcome.failed_files
        ],
        "failedFilesOmitted": outcome.failed - len(outcome.failed_files),
        "warnings": dict(outcome.warnings),
        **({"revert": outcome.reverted} if outcome.reverted is not None else {}),
    }


def check_option(settings: Settings, option: NotifyOption | None) -> dict[str, list[str]] | None:
    """A batch's own recipients from presign, when every one is on the allow-list; anything
    else is refused (RequestError), so no caller makes the service call or mail whom it likes."""
    if option is None or not (option.webhook or option.email):
        return None
    for url in option.webhook:
        if not _allowed(settings, url):
            raise RequestError(
                "NOTIFY_NOT_ALLOWED", f"Webhook {url[:100]!r} is not on NOTIFY_ALLOWED_HOSTS."
            )
    for address in option.email:
        if not _listed(settings, address):
            raise RequestError(
                "NOTIFY_NOT_ALLOWED",
                f"Address {address[:100]!r} is not on NOTIFY_ALLOWED_RECIPIENTS.",
            )
    return {"webhook": list(option.webhook), "email": [a.lower() for a in option.email]}


def _allowed(settings: Settings, url: str) -> bool:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or parts.username or parts.password:
        return False
    if not parts.hostname or any(c.isspace() or ord(c) < 32 for c in url):
        return False
    host = parts.hostname.lower()
    allowed = {h.lower() for h in settings.notify_allowed_hosts}
    return host in allowed or (port is not None and f"{host}:{port}" in allowed)


def _listed(settings: Settings, address: str) -> bool:
    if not _ADDRESS.match(address):
        return False
    allowed = {a.lower() for a in settings.notify_allowed_recipients}
    address = address.lower()
    return address in allowed or "@" + address.rsplit("@", 1)[1] in allowed


def channels(settings: Settings) -> list[str]:
    """The channels this process can send: a webhook needs the signing secret, email SMTP."""
    found = ["cloudevent"]
    if settings.notify_webhook_secret:
        found.append("webhook")
    if settings.smtp_url and settings.notify_email_from:
        found.append("email")
    return found


def send_due(clients: Clients, batch_id: str | None = None, limit: int = 100) -> dict[str, int]:
    """Send the due deliveries (of one batch, when given), each at most once in this call;
    never raises. Returns how many ended in each state."""
    ended: dict[str, int] = {}
    touched: set[str] = set()
    try:
        for _ in range(limit):
            taken = database.deliver_due(
                clients.pool,
                channels(clients.settings),
                batch_id,
                lambda delivery: attempt(clients.settings, delivery),
            )
            if taken is None:
                break
            delivery, result, batches = taken
            _count(delivery.channel, result)
            ended[result.state] = ended.get(result.state, 0) + 1
            touched |= batches
    except TransientError as error:  # the rows stay due: the next sender takes them
        log.warning("notifications not sent: %s", error)
    for batch in sorted(touched):
        project(clients, batch)
    return ended


def _count(channel: str, result: AttemptResult) -> None:
    if result.state == "SENT":
        observability.NOTIFICATIONS_SENT.labels(channel).inc()
    elif result.state in ("DEAD", "GONE"):
        observability.NOTIFICATIONS_FAILED.labels(channel).inc()
        log.warning("notification given up", extra={"channel": channel, "state": result.state})
    else:
        observability.NOTIFICATION_RETRIES.labels(channel).inc()


def project(clients: Clients, batch_id: str) -> None:
    """Show the batch's deliveries in its Redis view (status reads them from there)."""
    try:
        rows = database.batch_notifications(clients.pool, batch_id)
        if rows:
            batch_view.put_notifications(
                clients.redis,
                clients.settings.redis_key_prefix,
                batch_id,
                [entry(row) for row in rows],
                max(row.revision for row in rows),
            )
            clients.forget_status(batch_id)
    except TransientError as error:
        log.warning("notifications of %s not shown: %s", batch_id, error)


def entry(delivery: Delivery) -> dict[str, Any]:
    """A delivery as status shows it (a URL's path and query left out: they may hold secrets)."""
    target = delivery.target
    if delivery.channel != "email":
        parts = urlsplit(target)
        target = f"{parts.scheme}://{parts.netloc}/…" if parts.path.strip("/") else target
    return {
        "id": delivery.event_id,
        "type": delivery.event_type,
        "channel": delivery.channel,
        "target": target,
        "state": delivery.state,
        "attempts": delivery.attempts,
        "lastError": delivery.last_error,
        "nextAttemptAt": _iso(delivery.next_attempt_at) if delivery.state == "PENDING" else None,
        "sentAt": _iso(delivery.sent_at) if delivery.sent_at else None,
    }


@dataclass(frozen=True)
class _Answer:
    status: int
    retry_after: float | None = None


def attempt(settings: Settings, delivery: Delivery) -> AttemptResult:
    """Send once, and decide what happens next."""
    try:
        if delivery.channel == "email":
            _send_email(settings, delivery)
            return AttemptResult("SENT")
        if delivery.channel == "webhook":
            answer = _post(delivery.target, *webhook_request(settings, delivery), settings)
        else:
            headers, body = cloudevent_request(settings, delivery)
            answer = _post(delivery.target, headers, body, settings)
    except (OSError, http.client.HTTPException, smtplib.SMTPException) as error:
        return _retry(settings, delivery, f"{type(error).__name__}: {error}"[:300], None)
    if 200 <= answer.status < 300:
        return AttemptResult("SENT")
    if answer.status == 410:
        return AttemptResult("GONE", f"HTTP 410 Gone: {delivery.target} stopped")
    return _retry(settings, delivery, f"HTTP {answer.status}", answer.retry_after)


def _retry(
    settings: Settings, delivery: Delivery, error: str, retry_after: float | None
) -> AttemptResult:
    attempts = delivery.attempts + 1
    delay = min(
        timedelta(seconds=settings.notify_backoff_seconds * 2 ** (attempts - 1)), MAX_BACKOFF
    ) * random.uniform(0.5, 1.0)
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=retry_after))
    following = datetime.now(UTC) + delay
    if following > delivery.created_at + timedelta(hours=settings.notify_retry_hours):
        return AttemptResult("DEAD", f"{error} (given up after {attempts} attempts)")
    return AttemptResult("PENDING", error, following)


def webhook_request(settings: Settings, delivery: Delivery) -> tuple[dict[str, str], bytes]:
    """Headers and body of a Standard Webhooks delivery: signed over id.timestamp.body with
    each secret (several during a rotation)."""
    body = json.dumps(delivery.payload, separators=(",", ":")).encode()
    timestamp = int(time.time())
    signatures = " ".join(
        sign(secret, delivery.event_id, timestamp, body)
        for secret in settings.notify_webhook_secret.split()
    )
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": delivery.event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures,
    }, body


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def cloudevent_request(settings: Settings, delivery: Delivery) -> tuple[dict[str, str], bytes]:
    """A binary-mode CloudEvent: a Knative Trigger can route on its type."""
    event = CloudEvent(
        {
            "type": f"{CLOUDEVENT_TYPE_PREFIX}.{delivery.event_type}",
            "source": settings.status_public_url.rstrip("/") or "/status",
            "id": delivery.event_id,
            "subject": delivery.batch_id,
            "time": delivery.payload["timestamp"],
            "datacontenttype": "application/json",
        },
        delivery.payload["data"],
    )
    headers, body = to_binary(event)
    return {**headers, "User-Agent": USER_AGENT}, body if isinstance(body, bytes) else b""


def _post(url: str, headers: dict[str, str], body: bytes, settings: Settings) -> _Answer:
    """One POST, the whole exchange within NOTIFY_TIMEOUT_SECONDS; redirects not followed."""
    parts = urlsplit(url)
    timeout = settings.notify_timeout_seconds
    deadline = time.monotonic() + timeout
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context()
        connection = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=timeout, context=context
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("POST", path, body, headers)
        if connection.sock is not None:
            connection.sock.settimeout(max(0.01, deadline - time.monotonic()))
        response = connection.getresponse()
        response.read(RESPONSE_BYTES)
        return _Answer(response.status, _seconds(response.getheader("Retry-After")))
    finally:
        connection.close()


def _seconds(retry_after: str | None) -> float | None:
    """Retry-After as seconds from now (delta-seconds or an HTTP date)."""
    if not retry_after:
        return None
    if retry_after.strip().isdigit():
        return float(retry_after)
    try:
        return max(0.0, (parsedate_to_datetime(retry_after) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _send_email(settings: Settings, delivery: Delivery) -> None:
    message = email_message(settings, delivery)
    url = urlsplit(settings.smtp_url)
    timeout = settings.notify_timeout_seconds
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if url.scheme == "smtps":
        smtp = smtplib.SMTP_SSL(
            url.hostname or "", url.port or 465, timeout=timeout, context=context
        )
    else:
        default = 587 if url.scheme == "smtp+starttls" else 25
        smtp = smtplib.SMTP(url.hostname or "", url.port or default, timeout=timeout)
    with smtp:
        if url.scheme == "smtp+starttls":
            smtp.starttls(context=context)
        if url.username:
            smtp.login(unquote(url.username), unquote(url.password or ""))
        smtp.send_message(message)


def email_message(settings: Settings, delivery: Delivery) -> EmailMessage:
    """A short summary in plain text and HTML: counts, failed files with their errors, link."""
    data = delivery.payload["data"]
    lines = [
        f"Batch {data['batchId']} is {data['status']}.",
        f"Files: {data['processed']} loaded, {data['failed']} failed of {data['total']}.",
        f"Rows: {data['rowsLoaded']} loaded, {data['rowsRejected']} rejected.",
        f"Finished at {data['finishedAt']} ({data['durationSeconds']} s after it was created).",
    ]
    failures = [f"{f['fileName']}: {f['error']}" for f in data["failedFiles"]]
    if data["failedFilesOmitted"]:
        failures.append(f"… and {data['failedFilesOmitted']} more failed files")
    link = data["statusUrl"]
    message = EmailMessage()
    message["Subject"] = f"Batch {data['batchId']}: {data['status']}"
    message["From"] = settings.notify_email_from
    message["To"] = delivery.target
    message["Date"] = formatdate(usegmt=True)
    domain = settings.notify_email_from.rsplit("@", 1)[-1].strip(">") or "localhost"
    message["Message-ID"] = f"<{delivery.event_id}@{domain}>"
    text = "\n".join(
        lines + ([""] + failures if failures else []) + ([f"\n{link}"] if link else [])
    )
    message.set_content(text + "\n")
    html = "".join(f"<p>{escape(line)}</p>" for line in lines)
    if failures:
        html += "<ul>" + "".join(f"<li>{escape(item)}</li>" for item in failures) + "</ul>"
    if link:
        html += f'<p><a href="{escape(link)}">Status of the batch</a></p>'
    message.add_alternative(f"<html><body>{html}</body></html>", subtype="html")
    return message


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
