"""The running stack for end-to-end tests: moto's S3 server and the three functions as real
processes, on the session's private database, key prefix and bucket."""

import sys
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from tests.conftest import free_port
from tests.helpers import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import localstack  # noqa: E402

WEBHOOK_TOKEN = "hook-token"


@pytest.fixture(scope="session")
def stack(environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory,
          ) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """(environment, function URLs)."""
    with ExitStack() as exits:
        env = {**environment, "S3_ENDPOINT": localstack.start_moto(exits, free_port()),
               "WEBHOOK_TOKEN": WEBHOOK_TOKEN, "EVENT_GRACE_SECONDS": "0"}
        urls = localstack.start_stack(exits, env, tmp_path_factory.mktemp("logs"))
        yield env, urls
