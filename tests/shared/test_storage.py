from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from shared import storage
from shared.settings import Settings

KEYS = [
    "uploads/b_1/0000_AAPL.csv",
    "uploads/b_1/0001_it's a (test)~!*.csv",
    "uploads/b_1/0002_Zürich+Öl & co=1.txt",
    "uploads/b_1/0003_a%20b.csv",
]


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:9000", "https://files.example.com"])
def test_put_urls_are_exactly_what_minio_signs(endpoint: str) -> None:
    settings = Settings(
        database_url="x",
        redis_url="x",
        s3_endpoint="http://minio:9000",
        s3_public_endpoint=endpoint,
        s3_access_key="AKIA/EXAMPLE+1",
        s3_secret_key="wJalrXUtnFEMI/K7MDENG",
        s3_region="eu-central-1",
    )
    when = datetime(2026, 11, 29, 8, 0, 1, tzinfo=UTC)
    reference = storage.client(settings, endpoint)
    expected = [
        reference.get_presigned_url(
            "PUT", "seasonality-uploads", key, expires=timedelta(hours=1), request_date=when
        )
        for key in KEYS
    ]
    ours = storage.PutSigner(settings).urls("seasonality-uploads", KEYS, timedelta(hours=1), when)
    assert ours == expected


@pytest.mark.parametrize(
    ("sizes", "pulled_by_peek"), [([], 0), ([5], 1), ([3, 3, 3], 2), ([10, 1], 1), ([1] * 6, 4)]
)
def test_a_peek_reads_no_more_than_the_head_and_keeps_the_whole_stream(
    sizes: list[int], pulled_by_peek: int
) -> None:
    chunks = [bytes([65 + n]) * size for n, size in enumerate(sizes)]
    pulled: list[bytes] = []

    def stream() -> Iterator[bytes]:
        for chunk in chunks:
            pulled.append(chunk)
            yield chunk

    head, rest = storage.peek(stream(), 4)
    assert head == b"".join(chunks)[:4] and len(pulled) == pulled_by_peek
    assert b"".join(rest) == b"".join(chunks) and pulled == chunks
