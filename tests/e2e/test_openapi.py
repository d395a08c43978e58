"""The OpenAPI document is served, checked in, and true: schemathesis against the live
presign and status functions finds no 5xx and no response outside the schema."""

from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from devstack.client import Client
from shared.http import openapi_document
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_each_function_serves_the_checked_in_document(stack: Stack) -> None:
    _, urls = stack
    for name in ("presign", "status"):
        served = requests.get(f"{urls[name]}/function/{name}/openapi.json", timeout=10)
        assert served.status_code == 200 and served.json() == openapi_document()


def test_live_api_matches_its_schema(client: Client) -> None:
    urls, token = client.urls, client.token
    operations = [
        result.ok()
        for result in schemathesis.openapi.from_dict(openapi_document()).get_all_operations()
    ]
    assert len(operations) == 11
    for operation in operations:
        on_status = operation.path.startswith(("/batch", "/lineage"))
        base = urls["status"] if on_status else urls["presign"]
        _conforms(operation, base, token)


def _conforms(operation: Any, base: str, token: str) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def conforms(case: Any) -> None:
        case.call_and_validate(
            base_url=base, checks=CHECKS, headers={"Authorization": f"Bearer {token}"}
        )

    conforms()
