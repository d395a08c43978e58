"""Hand-over of stored objects to processing: in this process, or POSTed to process-file."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from shared import database
from shared.clients import Clients
from shared.dispatch import hand_over
from shared.keys import new_batch_id
from shared.settings import Settings
from tests.support.apps import put_object
from tests.support.reading import ONE_ROW


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], Any]]]]:
    """A real HTTP endpoint standing in for process-file: it records what it is sent."""
    received: list[tuple[dict[str, str], Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server hook
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers), json.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/", received
    server.shutdown()
    server.server_close()


def test_landed_objects_are_processed_in_the_background(
    clients: Clients, environment: dict[str, str]
) -> None:
    batch_id = new_batch_id()
    landed, missing = f"uploads/{batch_id}/DISPA.csv", f"uploads/{batch_id}/DISPB.csv"
    put_object(environment, landed, ONE_ROW)
    assert hand_over(clients, [landed, missing]) == 1
    clients.background.shutdown(wait=True)
    record = database.get_file(clients.pool, landed)
    assert record is not None and record.status == "COMPLETED"
    assert database.get_file(clients.pool, missing) is None


def test_with_a_process_file_url_each_object_is_sent_as_a_notification(
    settings: Settings,
    environment: dict[str, str],
    receiver: tuple[str, list[tuple[dict[str, str], Any]]],
) -> None:
    url, received = receiver
    key = f"uploads/{new_batch_id()}/DISPC.csv"
    stat = put_object(environment, key, ONE_ROW)
    remote = Clients(settings.model_copy(update={"process_file_url": url, "webhook_token": "hook"}))
    try:
        assert hand_over(remote, [key]) == 1
        remote.background.shutdown(wait=True)
    finally:
        remote.close()
    [(headers, body)] = received
    assert headers["Authorization"] == "Bearer hook"
    [record] = body["Records"]
    assert record["s3"]["bucket"]["name"] == settings.s3_bucket
    assert record["s3"]["object"]["eTag"] == (stat.etag or "").strip('"')
