"""The running stack for end-to-end tests: moto's S3 server and the three functions as real
processes, on the session's private database, key prefix and bucket."""

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from devstack.client import Client
from devstack.processes import Process, free_port, spawn_function, stop, wait_healthy
from devstack.services import start_moto, start_stack
from tests.support.stack import WEBHOOK_TOKEN, Spawned, Stack


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
