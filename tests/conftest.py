"""Service fixtures: real PostgreSQL and Redis, moto's S3 server over HTTP.

Addresses come from TEST_DATABASE_URL / TEST_REDIS_URL (defaults: the local servers); every
test session gets its own database, key prefix and bucket, so runs never see each other's data.
A missing service fails the run loudly: nothing here is skipped.
"""

import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from minio import Minio
from moto.server import ThreadedMotoServer

from shared import storage
from shared.clients import Clients, get_clients
from shared.database import migrate
from shared.settings import Settings

CONTRACT_VARIABLES = (
    "DATABASE_URL",
    "DATABASE_SCHEMA",
    "REDIS_URL",
    "REDIS_KEY_PREFIX",
    "S3_ENDPOINT",
    "S3_PUBLIC_ENDPOINT",
    "S3_ACCESS_KEY",
    "S3_SECRET_KEY",
    "S3_REGION",
    "S3_BUCKET",
    "API_TOKENS",
    "AUTH_DISABLED",
    "WEBHOOK_TOKEN",
    "CORS_ORIGINS",
    "MAX_FILES_PER_BATCH",
    "MAX_FILE_BYTES",
    "ALLOWED_EXTENSIONS",
    "PROCESS_FILE_URL",
    "MAX_REQUEST_BYTES",
)
EVENTS = Path(__file__).parent / "events"
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples" / "real"
API_TOKEN = "test-token-" + secrets.token_hex(8)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    admin = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"ingest_test_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL is required for the tests ({admin}): {error}")
    url = psycopg.conninfo.make_conninfo(admin, dbname=name)
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn, "public")
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=5).ping()
    except redis.exceptions.ConnectionError as error:
        pytest.fail(f"Redis is required for the tests ({url}): {error}")
    yield url


@pytest.fixture(scope="session")
def redis_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"test:{secrets.token_hex(6)}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="session")
def environment(
    database_url: str, redis_url: str, redis_prefix: str, s3_endpoint: str
) -> dict[str, str]:
    """The contract's variables for one private test world."""
    bucket = f"ingest-test-{secrets.token_hex(4)}"
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": redis_prefix,
        "S3_ENDPOINT": s3_endpoint,
        "S3_ACCESS_KEY": "testing",
        "S3_SECRET_KEY": "testing",
        "S3_BUCKET": bucket,
        "API_TOKENS": API_TOKEN,
        "CORS_ORIGINS": "http://admin.example",
    }
    store = Minio(
        s3_endpoint.removeprefix("http://"),
        access_key="testing",
        secret_key="testing",
        secure=False,
        region="us-east-1",
    )
    storage.ensure_bucket(store, bucket)
    return env


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The developer's shell never leaks into a test, nor one test's clients into the next."""
    for name in CONTRACT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    get_clients.cache_clear()
    yield
    get_clients.cache_clear()


@pytest.fixture
def settings(environment: dict[str, str]) -> Settings:
    return Settings(**{k.lower(): v for k, v in environment.items()})


@pytest.fixture
def clients(settings: Settings) -> Iterator[Clients]:
    built = Clients(settings)
    yield built
    built.close()


@pytest.fixture
def function_env(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment as a deployed function sees it (for create_app tests)."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return environment
