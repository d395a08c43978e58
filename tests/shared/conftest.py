"""The reader, offline: it reads local files and never contacts a service."""

from pathlib import Path

import pytest

from shared.reader import Reader
from tests.support.env import offline_settings
from tests.support.reading import LocalReader


@pytest.fixture(scope="session")
def reader() -> Reader:
    return Reader(offline_settings())


@pytest.fixture
def local(reader: Reader, tmp_path: Path) -> LocalReader:
    return LocalReader(reader, tmp_path)
