"""The admin page in a real browser (Debian's Chromium driven by Playwright) over the real
local stack: the three functions as processes, PostgreSQL, Redis and moto's S3 server, with a
webhook relay standing in for MinIO's notifications. Tests here are marked `browser`: skipped
with the reason when Chromium is absent on a developer's machine, failing when CI is set."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from devstack.client import Client
from devstack.page import CHROMIUM, INSTALL_CHROMIUM, launch, start_with_page
from devstack.services import start_moto
from tests.support.browsing import STACK_CHANGES, Browsed, Relay
from tests.support.env import unavailable


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


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
