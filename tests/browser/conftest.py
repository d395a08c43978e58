"""The admin page in a real browser (Debian's Chromium driven by Playwright) over the real
local stack: the three functions as processes, PostgreSQL, Redis and moto's S3 server, with a
webhook relay standing in for MinIO's notifications. Tests here are marked `browser`: skipped
with the reason when Chromium is absent on a developer's machine, failing when CI is set."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from minio import Minio

from devstack.client import ANY_FAILURE, Backoff, Client, DeliveryError, notification
from devstack.page import CHROMIUM, INSTALL_CHROMIUM, PageStack, launch, start_with_page
from devstack.relay import WebhookRelay
from devstack.services import object_store, start_moto
from shared import storage
from tests.conftest import unavailable

MIB = 1 << 20
# Short-lived upload URLs, so that signing again is exercised; small multipart parts.
STACK_CHANGES = {
    "WEBHOOK_TOKEN": "hook-token",
    "EVENT_GRACE_SECONDS": "600",  # processing comes from upload events (the relay)
    "PRESIGN_EXPIRY_SECONDS": "6",
    "MULTIPART_THRESHOLD_BYTES": str(6 * MIB),
    "MULTIPART_PART_BYTES": str(5 * MIB),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


class Relay(WebhookRelay):
    """MinIO's notifications, except for keys whose event the broker gives up on: those go to
    process-file's dead-letter route, as a Knative broker's dead-letter sink delivers them."""

    def __init__(self, env: dict[str, str], client: Client) -> None:
        super().__init__(env, client)
        self.give_up: set[str] = set()

    def _deliver(self, found: storage.StoredObject) -> None:
        if not any(found.key.endswith(suffix) for suffix in self.give_up):
            return super()._deliver(found)
        body = notification(self._bucket, found.key, found.etag, found.size)
        url = self._client.urls["process-file"] + "/dead-letter"
        try:
            self._client.deliver(body, url=url, retry=ANY_FAILURE, backoff=Backoff(0.1, 1, 60))
        except DeliveryError:
            return


@dataclass(frozen=True)
class Browsed:
    env: dict[str, str]
    served: PageStack
    client: Client
    relay: Relay

    @property
    def store(self) -> Minio:
        return object_store(self.env)

    @property
    def bucket(self) -> str:
        return self.env["S3_BUCKET"]

    def rows_of(self, tickers: list[str]) -> int:
        """Rows PostgreSQL holds for these tickers."""
        with psycopg.connect(self.env["DATABASE_URL"]) as conn:
            row = conn.execute(
                "SELECT count(*) FROM seasonality_data d JOIN tickers t ON t.id = d.ticker_id"
                " WHERE t.symbol = ANY(%s)",
                (tickers,),
            ).fetchone()
        return int(row[0]) if row else 0


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        unavailable(f"Chromium is not installed at {CHROMIUM} ({INSTALL_CHROMIUM})")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        unavailable(f"Playwright for Python is not installed (scripts/install): {error}")
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def browsed(
    environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Browsed]:
    with ExitStack() as exits:
        env = {**environment, "S3_ENDPOINT": start_moto(exits), **STACK_CHANGES}
        served = start_with_page(exits, env, tmp_path_factory.mktemp("logs"))
        client = Client.of(env, served.urls)
        relay = Relay(env, client)
        relay.start()
        exits.callback(relay.stop)
        yield Browsed(env, served, client, relay)


@pytest.fixture
def page(chromium: Any, browsed: Browsed) -> Iterator[Any]:
    """A fresh browser profile (its own IndexedDB) with the admin page open."""
    context = chromium.new_context(accept_downloads=True)
    opened = context.new_page()
    opened.set_default_timeout(60_000)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.goto(browsed.served.page)
    opened.fill("#token", browsed.client.token)
    yield opened
    context.close()
    assert not errors, errors


@pytest.fixture
def prefix() -> str:
    """A ticker prefix of the test's own, so that its rows are told apart in the database."""
    return "W" + secrets.token_hex(3).upper()
