"""The running stack for end-to-end tests: moto's S3 server and the three functions as real
processes, on the session's private database, key prefix and bucket."""

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devstack.client import Client
from devstack.processes import Process, free_port, spawn_function, stop, wait_healthy
from devstack.services import start_moto, start_stack

WEBHOOK_TOKEN = "hook-token"
Stack = tuple[dict[str, str], dict[str, str]]


@pytest.fixture(scope="session")
def stack(environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """(environment, function URLs)."""
    with ExitStack() as exits:
        env = {
            **environment,
            "S3_ENDPOINT": start_moto(exits),
            "WEBHOOK_TOKEN": WEBHOOK_TOKEN,
            "EVENT_GRACE_SECONDS": "0",
        }
        urls = start_stack(exits, env, tmp_path_factory.mktemp("logs"))
        yield env, urls


@pytest.fixture(scope="session")
def client(stack: Stack) -> Client:
    """The API client of the running stack, as the admin frontend and MinIO use it."""
    return Client.of(*stack)


@dataclass(frozen=True)
class Spawned:
    url: str
    process: Process


@pytest.fixture
def spawn(stack: Stack, tmp_path: Path) -> Iterator[Callable[..., Spawned]]:
    """Start a process-file of our own with some variables changed; stopped afterwards."""
    env, _ = stack
    started: list[Process] = []

    def start(**changes: str) -> Spawned:
        port = free_port()
        process = spawn_function("process-file", port, {**env, **changes}, tmp_path)
        started.append(process)
        return Spawned(wait_healthy(process, port, "process-file") + "/", process)

    yield start
    for process in started:
        stop(process)


def upload_one(client: Client, name: str, body: bytes) -> tuple[str, dict[str, Any]]:
    """Presign and upload one file; its batch id and the notification the store sends."""
    batch, notifications = client.upload_batch([(name, body)])
    return batch["batchId"], notifications[0]
