"""The reader, offline: it reads local files and never contacts a service; clients that take
any event time, for tests that order uploads."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.clients import Clients
from shared.reader import Reader
from shared.settings import Settings
from tests.support.env import offline_settings
from tests.support.reading import LocalReader


@pytest.fixture(scope="session")
def reader() -> Reader:
    return Reader(offline_settings())


@pytest.fixture
def local(reader: Reader, tmp_path: Path) -> LocalReader:
    return LocalReader(reader, tmp_path)


@pytest.fixture
def tolerant(settings: Settings) -> Iterator[Clients]:
    """Clients that take any event time, to order the uploads of a test."""
    built = Clients(settings.model_copy(update={"clock_skew_seconds": 10**9}))
    yield built
    built.close()
