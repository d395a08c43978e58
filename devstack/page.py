"""The admin page on the local stack: presign serves it at /ui/, status and the object store
accept its origin (CORS_ORIGINS, the bucket's CORS rules), and a headless Chromium can drive
it (Debian's /usr/bin/chromium through Playwright, which downloads no browser of its own)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared import storage

from .processes import FUNCTIONS, free_port, start_functions
from .services import migrate, object_store, settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
INSTALL_CHROMIUM = "apt-get update && apt-get install -y chromium"


@dataclass(frozen=True)
class PageStack:
    urls: dict[str, str]  # the functions' URLs
    page: str  # the admin page

    @property
    def origin(self) -> str:
        return self.urls["presign"]


def start_with_page(
    stack: ExitStack,
    env: dict[str, str],
    log_dir: Path,
    extra: Mapping[str, Mapping[str, str]] | None = None,
) -> PageStack:
    """Migrate, create the bucket with CORS rules for the page's origin, start the three
    functions with the page's origin allowed; their URLs and the page's."""
    ports = {name: free_port() for name in FUNCTIONS}
    origin = f"http://127.0.0.1:{ports['presign']}"
    origins = [o for o in env.get("CORS_ORIGINS", "").split(",") if o.strip()]
    env["CORS_ORIGINS"] = ",".join(dict.fromkeys([*origins, origin]))
    env["STATUS_PUBLIC_URL"] = f"http://127.0.0.1:{ports['status']}"
    migrate(env)
    store = object_store(env)
    bucket = settings(env).s3_bucket
    storage.ensure_bucket(store, bucket)
    storage.set_cors(store, bucket, env["CORS_ORIGINS"].split(","))
    urls = start_functions(stack, env, log_dir, extra, ports)
    return PageStack(urls, f"{origin}/ui/")


def launch(playwright: Any) -> Any:
    """Debian's Chromium, headless, with the flags this machine's closed network needs."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


@dataclass(frozen=True)
class PageRun:
    upload_seconds: float
    processing_seconds: float
    summary: str


def upload_through_page(page_url: str, token: str, folder: Path, timeout: float = 3600) -> PageRun:
    """Choose `folder` on the admin page, upload it, wait for the summary; the time until
    every file was uploaded and from then until the batch was final."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page()
        page.goto(page_url)
        page.fill("#token", token)
        page.set_input_files("#pick-folder", str(folder))
        page.locator("#start:not([disabled])").wait_for()
        started = time.monotonic()
        page.click("#start")
        page.locator("#progress-text", has_text="Processing").wait_for(timeout=timeout * 1000)
        uploaded = time.monotonic()
        page.wait_for_selector("#summary:not([hidden])", timeout=timeout * 1000)
        finished = time.monotonic()
        text = page.inner_text("#summary")
        browser.close()
    return PageRun(uploaded - started, finished - uploaded, text)
