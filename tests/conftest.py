"""Service fixtures: real PostgreSQL and Redis, moto's S3 server over HTTP.

Addresses come from TEST_DATABASE_URL / TEST_REDIS_URL (defaults: the local servers); every
test session gets its own database, key prefix and bucket, so runs never see each other's data.
Every test that uses one of these services is marked `services`. A service that is absent skips
those tests with the reason on a developer's machine, and fails them when `CI` is set.
"""

import os
import secrets
from collections.abc import Iterator

import psycopg
import pytest
import redis
from minio import Minio

from devstack.processes import free_port
from shared import storage
from shared.clients import Clients, get_clients
from shared.database import migrate
from shared.settings import Settings
from tests.support.env import API_TOKEN, CONTRACT_VARIABLES, unavailable

SERVICE_FIXTURES = frozenset({"database_url", "redis_url", "s3_endpoint"})
_SETTINGS_NAMES = frozenset(name.lower() for name in CONTRACT_VARIABLES)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    admin = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"ingest_test_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        unavailable(f"PostgreSQL is not reachable at {admin} (TEST_DATABASE_URL): {error}")
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
        unavailable(f"Redis is not reachable at {url} (TEST_REDIS_URL): {error}")
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
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as error:
        unavailable(f"moto's S3 server is not installed (the `local` extra): {error}")
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
        # the suite opens far more batches of unpresigned objects than a deployment allows
        "MAX_UNPRESIGNED_BATCHES_PER_HOUR": "1000000",
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
    """The developer's shell never leaks into a test (no variable Settings reads, in any case),
    nor one test's clients into the next."""
    for name in list(os.environ):
        if name.lower() in _SETTINGS_NAMES:
            monkeypatch.delenv(name)
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
