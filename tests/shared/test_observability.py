"""JSON log lines and the /metrics endpoint served ahead of a function's routes."""

import json
import logging

import flask
import pytest

from shared.observability import FILES_UPLOADED, JsonFormatter, configure_logging, instrument


def test_a_log_line_is_one_json_object_with_its_extras() -> None:
    record = logging.makeLogRecord(
        {"name": "ingest", "levelname": "INFO", "msg": "event %s", "args": ("completed",)}
    )
    record.batchId = "b_1"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "event completed" and line["batchId"] == "b_1"
    assert line["level"] == "INFO" and line["time"].endswith("Z")


def test_configuring_twice_logs_each_line_once(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()
    configure_logging()
    logging.getLogger("ingest").info("once", extra={"objectKey": "k"})
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["message"], line["objectKey"]) for line in lines] == [("once", "k")]


def test_metrics_are_served_before_the_function_sees_the_request() -> None:
    app = flask.Flask("under-test")
    seen: list[str] = []

    @app.route("/<path:path>")
    def everything(path: str) -> str:
        seen.append(path)
        return "function"

    instrument(app, queue_length=lambda: 3.0)
    FILES_UPLOADED.inc(0)
    client = app.test_client()
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and "csv_queue_length 3.0" in metrics.text
    assert client.get("/other").text == "function" and seen == ["other"]
