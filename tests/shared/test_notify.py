"""Completion notifications against real receivers: signed webhooks verified with the
`standardwebhooks` package, CloudEvents parsed by the cloudevents SDK, email through aiosmtpd;
PostgreSQL, Redis and moto's S3 server as in every services test."""

import base64
import datetime as dt
import io
import json
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import jsonschema
import psycopg
import pytest
import standardwebhooks
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import REGISTRY
from pydantic import ValidationError

from devstack import ROOT
from devstack.client import upload
from devstack.data import ohlcv_csv
from devstack.processes import free_port
from devstack.receiver import Answer, MailReceiver, Receiver
from devstack.services import object_store
from shared import database, notify, presign, status
from shared.clients import Clients
from shared.errors import RequestError
from shared.models import PresignRequest
from shared.process import process_object
from shared.settings import Settings
from tests.support.apps import app
from tests.support.env import AUTH

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
OPENAPI = json.loads((ROOT / "shared" / "openapi.json").read_text())
Make = Callable[..., Clients]


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0's `nullable` as JSON Schema's type list."""
    if isinstance(node, dict):
        node = {k: _nullable(v) for k, v in node.items()}
        if node.pop("nullable", False):
            if "type" not in node:  # e.g. a nullable allOf/$ref
                return {"anyOf": [node, {"type": "null"}]}
            node["type"] = [node["type"], "null"]
        return node
    return [_nullable(v) for v in node] if isinstance(node, list) else node


def assert_valid(value: Any, schema: str) -> None:
    document = {
        "$ref": f"#/components/schemas/{schema}",
        "components": _nullable(OPENAPI)["components"],
    }
    jsonschema.Draft7Validator(document).validate(value)


@pytest.fixture
def make(settings: Settings) -> Iterator[Make]:
    """Clients with notification settings changed (each closed afterwards)."""
    built: list[Clients] = []

    def build(**changes: Any) -> Clients:
        values = {"notify_backoff_seconds": 0.05, "notify_timeout_seconds": 2.0, **changes}
        clients = Clients(Settings(**{**settings.model_dump(), **values}))
        built.append(clients)
        return clients

    yield build
    for clients in built:
        clients.close()


def new_batch(
    clients: Clients, bodies: list[bytes], notify_option: dict[str, Any] | None = None
) -> tuple[str, list[str]]:
    """Presign and upload one file per body (fresh tickers); the batch id and object keys."""
    files = [
        {"name": f"F{i}.csv", "ticker": "N" + secrets.token_hex(3).upper()}
        for i in range(len(bodies))
    ]
    body = PresignRequest.model_validate({"files": files, "notify": notify_option})
    data = presign.presign(clients, body)
    for target, content in zip(data["uploadUrls"], bodies, strict=True):
        upload(target, content)
    return data["batchId"], [t["objectKey"] for t in data["uploadUrls"]]


def finish(clients: Clients, keys: list[str]) -> None:
    for key in keys:
        process_object(clients, key)


def notifications(clients: Clients, batch_id: str) -> list[dict[str, Any]]:
    answer = json.loads(status.batch_status(clients, batch_id))
    return list(answer["notifications"])


def until_settled(clients: Clients, batch_id: str, timeout: float = 20) -> list[dict[str, Any]]:
    """Sweep (as reconcile does) until no delivery of the batch is PENDING."""
    deadline = time.monotonic() + timeout
    while True:
        notify.send_due(clients, batch_id)
        shown = notifications(clients, batch_id)
        if all(n["state"] != "PENDING" for n in shown) or time.monotonic() > deadline:
            return shown
        time.sleep(0.05)


GOOD = ohlcv_csv(None, 5)


def _metric(name: str, channel: str = "webhook") -> float:
    return REGISTRY.get_sample_value(name, {"channel": channel}) or 0.0


def test_the_signature_is_what_standardwebhooks_verifies_with_each_rotated_secret() -> None:
    body = b'{"type":"batch.completed"}'
    now = int(time.time())
    signature = " ".join(notify.sign(s, "b_X_1", now, body) for s in (SECRET, OTHER_SECRET))
    headers = {"webhook-id": "b_X_1", "webhook-timestamp": str(now), "webhook-signature": signature}

    for secret in (SECRET, OTHER_SECRET):
        assert standardwebhooks.Webhook(secret).verify(body, headers) == {"type": "batch.completed"}
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(SECRET).verify(body + b" ", headers)


def test_webhook_settings_without_a_valid_secret_are_refused(settings: Settings) -> None:
    values = settings.model_dump()
    for secret in ("", "not-a-secret", "whsec_!!"):
        with pytest.raises(ValidationError, match="NOTIFY_WEBHOOK_SECRET"):
            Settings(
                **{**values, "notify_webhook_urls": ("http://h/",), "notify_webhook_secret": secret}
            )
    with pytest.raises(ValidationError, match="SMTP_URL"):
        Settings(**{**values, "notify_email_to": ("a@b.example",)})


def test_a_final_batch_is_notified_once_however_often_its_events_come(make: Make) -> None:
    with Receiver(SECRET) as receiver:
        clients = make(notify_webhook_urls=(receiver.url,), notify_webhook_secret=SECRET)
        sent_before = _metric("csv_notifications_sent_total")
        batch_id, keys = new_batch(clients, [GOOD, GOOD])
        # WHEN the first file finishes, the batch is not final: nothing is sent
        finish(clients, keys[:1])
        assert receiver.received == []
        # the last file, then every event redelivered twice, and sweeps
        finish(clients, keys[1:] + keys + keys)
        notify.send_due(clients)

        [delivery] = receiver.wait(1)
        time.sleep(0.2)
        assert len(receiver.received) == 1
        assert delivery.error is None  # verified by standardwebhooks
        assert delivery.headers["webhook-id"] == f"{batch_id}_1"
        assert_valid(delivery.payload, "BatchNotification")
        data = delivery.payload["data"]
        assert (delivery.payload["type"], data["batchId"], data["status"]) == (
            "batch.completed",
            batch_id,
            "COMPLETED",
        )
        assert (data["total"], data["processed"], data["rowsLoaded"], data["failedFiles"]) == (
            2,
            2,
            10,
            [],
        )
        [shown] = notifications(clients, batch_id)
        assert (shown["channel"], shown["state"], shown["attempts"]) == ("webhook", "SENT", 1)
        assert_valid(shown, "NotificationStatus")
        assert _metric("csv_notifications_sent_total") == sent_before + 1


def test_a_receiver_failing_three_times_gets_one_accepted_delivery_after_four_attempts(
    make: Make,
) -> None:
    with Receiver(SECRET, answers=[500, 503, 502]) as receiver:
        clients = make(notify_webhook_urls=(receiver.url,), notify_webhook_secret=SECRET)
        batch_id, keys = new_batch(clients, [GOOD])
        finish(clients, keys)
        [first] = notifications(clients, batch_id)
        assert (first["state"], first["attempts"], first["lastError"]) == ("PENDING", 1, "HTTP 500")

        [shown] = until_settled(clients, batch_id)

        assert (shown["state"], shown["attempts"]) == ("SENT", 4)
        assert [r.answered for r in receiver.received] == [500, 503, 502, 204]
        assert {r.headers["webhook-id"] for r in receiver.received} == {f"{batch_id}_1"}
        assert len(receiver.accepted()) == 1


def test_410_stops_every_delivery_to_that_url(make: Make) -> None:
    with Receiver(SECRET, answers=[410]) as gone, Receiver(SECRET) as other:
        clients = make(notify_webhook_urls=(gone.url, other.url), notify_webhook_secret=SECRET)
        first, keys = new_batch(clients, [GOOD])
        finish(clients, keys)
        second, keys = new_batch(clients, [GOOD])
        finish(clients, keys)
        until_settled(clients, second)

        assert len(gone.received) == 1  # the second batch's delivery never went out
        assert len(other.accepted()) == 2
        for batch_id in (first, second):
            states = {
                n["target"]: (n["state"], n["attempts"]) for n in notifications(clients, batch_id)
            }
            assert states[gone.url.split("/hooks")[0] + "/…"][0] == "GONE"
        with psycopg.connect(clients.settings.database_url) as conn:
            conn.execute("DELETE FROM ingest_notify_gone WHERE target = %s", (gone.url,))


def test_a_hanging_receiver_hits_the_timeout_and_is_retried(make: Make) -> None:
    with Receiver(SECRET, answers=[Answer(504, delay=5)]) as receiver:
        clients = make(
            notify_webhook_urls=(receiver.url,),
            notify_webhook_secret=SECRET,
            notify_timeout_seconds=0.5,
        )
        batch_id, keys = new_batch(clients, [GOOD])
        started = time.monotonic()
        finish(clients, keys)
        assert time.monotonic() - started < 4  # the attempt gave up after 0.5 s
        [shown] = notifications(clients, batch_id)
        assert (shown["state"], shown["attempts"]) == ("PENDING", 1)
        assert "timed out" in shown["lastError"]

        [shown] = until_settled(clients, batch_id)

        assert (shown["state"], shown["attempts"]) == ("SENT", 2)
        assert len(receiver.accepted()) == 1


def test_429_retry_after_is_honoured(make: Make) -> None:
    with Receiver(SECRET, answers=[Answer(429, {"Retry-After": "120"})]) as receiver:
        clients = make(notify_webhook_urls=(receiver.url,), notify_webhook_secret=SECRET)
        batch_id, keys = new_batch(clients, [GOOD])
        finish(clients, keys)
        notify.send_due(clients, batch_id)

        [shown] = notifications(clients, batch_id)
        due = dt.datetime.fromisoformat(shown["nextAttemptAt"].replace("Z", "+00:00"))
        assert (shown["state"], shown["lastError"]) == ("PENDING", "HTTP 429")
        assert due - dt.datetime.now(dt.UTC) > dt.timedelta(seconds=110)
        assert len(receiver.received) == 1


def test_a_delivery_failing_past_the_retry_window_is_dead_shown_and_counted(make: Make) -> None:
    with Receiver(SECRET, answers=[500] * 10) as receiver:
        clients = make(
            notify_webhook_urls=(receiver.url,),
            notify_webhook_secret=SECRET,
            notify_retry_hours=1e-4,
        )
        failed_before = _metric("csv_notifications_failed_total")
        batch_id, keys = new_batch(clients, [GOOD])
        finish(clients, keys)

        [shown] = until_settled(clients, batch_id)

        assert shown["state"] == "DEAD"
        assert shown["lastError"].startswith("HTTP 500 (given up after")
        assert _metric("csv_notifications_failed_total") == failed_before + 1


def test_a_retry_that_turns_partial_into_completed_is_notified_again(
    make: Make, environment: dict[str, str]
) -> None:
    with Receiver(SECRET) as receiver:
        clients = make(notify_webhook_urls=(receiver.url,), notify_webhook_secret=SECRET)
        batch_id, keys = new_batch(clients, [GOOD, b""])
        finish(clients, keys)
        [partial] = receiver.wait(1)
        assert partial.payload["data"]["status"] == "PARTIAL"
        assert partial.payload["data"]["failedFiles"] == [
            {"fileName": "F1.csv", "objectKey": keys[1], "error": "The file is empty."}
        ]
        # WHEN the bad file is replaced and the batch retried
        store = object_store(environment)
        store.put_object(
            environment["S3_BUCKET"], keys[1], io.BytesIO(GOOD), len(GOOD), content_type="text/csv"
        )
        assert status.retry_failed(clients, batch_id)["retried"] == 1

        _, completed = receiver.wait(2)

        assert completed.error is None
        assert completed.payload["type"] == "batch.completed"
        assert completed.headers["webhook-id"] == f"{batch_id}_2" != partial.headers["webhook-id"]
        time.sleep(0.2)
        assert len(receiver.received) == 2
        assert [n["type"] for n in notifications(clients, batch_id)] == [
            "batch.partial",
            "batch.completed",
        ]


def test_two_workers_finishing_the_last_two_files_at_once_notify_once(make: Make) -> None:
    with Receiver(SECRET) as receiver:
        clients = make(notify_webhook_urls=(receiver.url,), notify_webhook_secret=SECRET)
        batch_id, keys = new_batch(clients, [GOOD, GOOD])
        with psycopg.connect(clients.settings.database_url) as holder:
            # GIVEN both load transactions held at the batch row, each with its file written
            holder.execute("SELECT 1 FROM ingest_batches WHERE id = %s FOR UPDATE", (batch_id,))
            workers = [threading.Thread(target=process_object, args=(clients, k)) for k in keys]
            for worker in workers:
                worker.start()
            _wait_for(lambda: _waiting_at_batch_lock(clients.settings.database_url) == 2)
            # WHEN they go on at the same moment
            holder.rollback()
        for worker in workers:
            worker.join(30)

        receiver.wait(1)
        notify.send_due(clients)
        time.sleep(0.2)
        assert len(receiver.accepted()) == 1
        assert [n["state"] for n in notifications(clients, batch_id)] == ["SENT"]


def _waiting_at_batch_lock(database_url: str) -> int:
    """Transactions waiting for a batch row's lock (read on a connection of its own: a
    transaction sees one snapshot of pg_stat_activity)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE 'SELECT final_status%%'"
        ).fetchone()
    return int(row[0]) if row else 0


def _wait_for(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_a_cloudevent_goes_to_k_sink_and_the_sdk_parses_it(make: Make) -> None:
    with Receiver(cloudevents=True) as sink:
        clients = make(k_sink=sink.url, status_public_url="https://api.example.com/api/upload")
        batch_id, keys = new_batch(clients, [b""])
        finish(clients, keys)

        [got] = sink.wait(1)

        event = got.payload
        assert got.error is None
        assert {k.lower(): v for k, v in got.headers.items()}["ce-specversion"] == "1.0"
        assert event["type"] == "org.seasonality-ingest.batch.failed"
        assert (event["id"], event["subject"]) == (f"{batch_id}_1", batch_id)
        assert event["source"] == "https://api.example.com/api/upload"
        assert_valid(event.data, "BatchSummary")
        assert (
            event.data["statusUrl"] == f"https://api.example.com/api/upload/batch/{batch_id}/status"
        )
        [shown] = notifications(clients, batch_id)
        assert (shown["channel"], shown["state"]) == ("cloudevent", "SENT")


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA): the cert and key files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_email_goes_through_smtp_with_starttls_and_auth(
    make: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = _certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts the test server
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    port = free_port()
    with MailReceiver(port, server_tls, ("ingest", "p@ss word")) as mail:
        clients = make(
            smtp_url=f"smtp+starttls://ingest:p%40ss%20word@127.0.0.1:{port}",
            notify_email_from="ingest@prices.example",
            notify_email_to=("ops@prices.example",),
        )
        batch_id, keys = new_batch(clients, [GOOD, b""])
        finish(clients, keys)

        [message] = mail.wait(1)

        assert mail.envelopes == [("ingest@prices.example", ["ops@prices.example"])]
        assert message["Subject"] == f"Batch {batch_id}: PARTIAL"
        assert message["Message-ID"] == f"<{batch_id}_1@prices.example>"
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert "1 loaded, 1 failed of 2" in text and "F1.csv: The file is empty." in text
        assert "<li>F1.csv: The file is empty.</li>" in html
        [shown] = notifications(clients, batch_id)
        assert (shown["channel"], shown["target"], shown["state"]) == (
            "email",
            "ops@prices.example",
            "SENT",
        )


def test_a_batch_notifies_its_own_allow_listed_recipients(make: Make) -> None:
    with Receiver(SECRET) as receiver:
        clients = make(notify_allowed_hosts=("127.0.0.1",), notify_webhook_secret=SECRET)
        batch_id, keys = new_batch(clients, [GOOD], {"webhook": receiver.url})
        finish(clients, keys)

        [got] = receiver.wait(1)

        assert got.error is None and got.payload["data"]["batchId"] == batch_id


@pytest.mark.parametrize(
    "option",
    [
        {"webhook": "http://metadata.internal/latest"},
        {"webhook": "http://127.0.0.1@evil.example/"},
        {"webhook": "file:///etc/passwd"},
        {"email": "someone@elsewhere.example"},
        {"email": "ops@prices.example\r\nBcc: x@y.example"},
        {"sms": "+100"},
    ],
)
def test_presign_refuses_recipients_off_the_allow_list_and_creates_nothing(
    option: dict[str, str], function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_ALLOWED_HOSTS", "127.0.0.1")
    monkeypatch.setenv("NOTIFY_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("NOTIFY_ALLOWED_RECIPIENTS", "ops@prices.example,@team.example")
    monkeypatch.setenv("SMTP_URL", "smtp://127.0.0.1:9")
    monkeypatch.setenv("NOTIFY_EMAIL_FROM", "ingest@prices.example")
    before = _batches(function_env["DATABASE_URL"])
    body = {"files": [{"name": "A.csv"}], "notify": option}

    answer = app("presign").post("/api/upload/bulk", json=body, headers=AUTH)

    assert answer.status_code == 400, answer.json
    assert _batches(function_env["DATABASE_URL"]) == before
    allowed = {
        "files": [{"name": "A.csv"}],
        "notify": {"email": ["x@team.example"], "webhook": "http://127.0.0.1:1/h"},
    }
    assert app("presign").post("/api/upload/bulk", json=allowed, headers=AUTH).status_code == 200


def _batches(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM ingest_batches").fetchone()
    return int(row[0]) if row else 0


def test_check_option_refuses_without_any_allow_list(make: Make) -> None:
    clients = make()
    with pytest.raises(RequestError):
        notify.check_option(
            clients.settings,
            PresignRequest.model_validate(
                {"files": [{"name": "a.csv"}], "notify": {"webhook": "http://127.0.0.1/"}}
            ).notify,
        )


def test_status_sends_a_delivery_it_finds_due(make: Make) -> None:
    with Receiver(SECRET, answers=[500]) as receiver:
        clients = make(notify_webhook_urls=(receiver.url,), notify_webhook_secret=SECRET)
        batch_id, keys = new_batch(clients, [GOOD])
        finish(clients, keys)
        assert notifications(clients, batch_id)[0]["state"] == "PENDING"
        time.sleep(0.2)  # past the backoff

        [shown] = notifications(clients, batch_id)  # this poll sends it

        assert (shown["state"], shown["attempts"]) == ("SENT", 2)
        assert database.batch_notifications(clients.pool, batch_id)[0].state == "SENT"
