"""Prometheus metrics at /metrics (served beside the function, never routed to it) and
JSON logs: one line per event, no secrets."""

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import flask
from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app
from werkzeug.middleware.dispatcher import DispatcherMiddleware

FILES_UPLOADED = Counter("csv_files_uploaded_total", "Files presigned for upload")
FILES_PROCESSED = Counter("csv_files_processed_total", "Files loaded into PostgreSQL")
FILES_FAILED = Counter("csv_files_failed_total", "Files failed for good (bad content)")
ROWS_LOADED = Counter("csv_rows_loaded_total", "Rows loaded (after de-duplication)")
ROWS_REJECTED = Counter("csv_rows_rejected_total", "Rows rejected by a validation rule")
PROCESSING_SECONDS = Histogram(
    "csv_processing_duration_seconds",
    "Time to process one file, event to commit",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
QUEUE_LENGTH = Gauge("csv_queue_length", "Files registered but not yet processed")
CHANNELS = ("webhook", "cloudevent", "email")
NOTIFICATIONS_SENT = Counter(
    "csv_notifications_sent_total",
    "Notifications delivered (2xx, or accepted by SMTP)",
    ["channel"],
)
NOTIFICATIONS_FAILED = Counter(
    "csv_notifications_failed_total",
    "Notifications given up on: dead after NOTIFY_RETRY_HOURS, or stopped by 410 Gone",
    ["channel"],
)
NOTIFICATION_RETRIES = Counter(
    "csv_notification_retries_total", "Failed notification attempts, to be retried", ["channel"]
)
for _channel in CHANNELS:  # every series exists from the start, at 0
    for _counter in (NOTIFICATIONS_SENT, NOTIFICATIONS_FAILED, NOTIFICATION_RETRIES):
        _counter.labels(_channel)
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def instrument(app: flask.Flask, queue_length: Callable[[], float] | None = None) -> None:
    """JSON logs, and /metrics served ahead of the function's own routing."""
    configure_logging()
    if queue_length is not None:
        QUEUE_LENGTH.set_function(queue_length)
    app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, {"/metrics": make_wsgi_app()}
    )


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to sys.stderr as it is at each record, not as it was when configured."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def configure_logging(level: int = logging.INFO) -> None:
    """JSON lines on stderr for the `ingest` logger (idempotent)."""
    logger = logging.getLogger("ingest")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
