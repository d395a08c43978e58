"""Small builders the tests share: apps under test, uploads, notifications in every form
(the data and the notification forms come from devstack)."""

from typing import Any

from flask.testing import FlaskClient
from functions_framework import create_app

from devstack import ROOT
from devstack.client import binary_cloudevent, structured_cloudevent, upload
from devstack.client import minio_webhook as raw_webhook
from devstack.client import notification as webhook
from devstack.data import multi_ticker_csv, ohlcv_csv
from devstack.processes import FUNCTIONS

__all__ = [
    "FUNCTIONS",
    "ROOT",
    "app",
    "binary_cloudevent",
    "multi_ticker_csv",
    "ohlcv_csv",
    "put",
    "raw_webhook",
    "structured_cloudevent",
    "webhook",
]


def app(name: str) -> FlaskClient:
    source, target = FUNCTIONS[name]
    return create_app(target, str(ROOT / source), "http").test_client()


def put(target: dict[str, Any], body: bytes) -> None:
    upload(target, body)
