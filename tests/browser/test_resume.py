"""Uploads that meet trouble: a network cut and a reload, expired URLs, a failing part."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devstack.data import multi_ticker_csv
from shared import storage
from tests.support.browsing import STACK_CHANGES, Browsed

from .support import ROWS, batch_id, start, states, summary, wait_until, write_files

EXPIRED = (
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
    "<Message>Request has expired</Message></Error>"
)


def key_of(url: str) -> str:
    return urlsplit(url).path.split("/uploads/", 1)[1]


def expired(url: str) -> bool:
    """S3's own check of a presigned URL's lifetime (moto does not make it)."""
    query = parse_qs(urlsplit(url).query)
    signed = time.mktime(time.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")) - time.timezone
    return time.time() > signed + int(query["X-Amz-Expires"][0])


def test_after_a_network_cut_and_a_reload_only_missing_files_are_uploaded(
    page: Any, browsed: Browsed, tmp_path: Path, prefix: str
) -> None:
    # GIVEN a 30-file upload whose network is cut after 10 files went through
    tickers = write_files(tmp_path / "cut", prefix, 30)
    through: list[str] = []

    def network(route: Any) -> None:
        if route.request.method == "PUT" and len(through) < 10:
            through.append(key_of(route.request.url))
            route.continue_()
        else:
            route.abort("internetdisconnected")

    page.route("**/uploads/**", network)
    start(page, tmp_path / "cut")
    wait_until(page, "document.querySelectorAll('tr[data-state=PENDING]').length >= 10")
    page.wait_for_timeout(1500)

    # WHEN the network is back and the page is reloaded (uploads are counted from before the
    # network returns: a retry may leave the moment it does, and the reload may cut one short
    # after the store took it, so an upload tried is not always an upload finished)
    tried: list[str] = []
    sent: list[str] = []
    page.on("request", lambda r: r.method == "PUT" and tried.append(key_of(r.url)))
    page.on("requestfinished", lambda r: r.method == "PUT" and sent.append(key_of(r.url)))
    page.unroute("**/uploads/**")
    page.reload()
    page.fill("#token", browsed.client.token)
    page.wait_for_selector("#resume:not([hidden])")
    page.click("#resume-button")
    text = summary(page)

    # THEN only the 20 missing files were uploaded, none twice, and nothing loaded twice
    assert len(through) == 10 and len(set(through)) == 10
    assert not set(tried) & set(through) and len(set(tried) | set(through)) == 30
    assert sorted(sent) == sorted(set(sent)) and set(sent) <= set(tried)
    assert "Batch COMPLETED" in text and "30 completed, 0 failed of 30 files" in text
    assert browsed.rows_of(tickers) == 30 * ROWS
    status = browsed.client.status(batch_id(page))
    assert {f["rowsLoaded"] for f in status["files"]} == {ROWS}
    assert set(states(page).values()) == {"COMPLETED"}


def test_an_expired_upload_url_is_signed_again(
    page: Any, browsed: Browsed, tmp_path: Path, prefix: str
) -> None:
    # GIVEN uploads held until their URLs (PRESIGN_EXPIRY_SECONDS=6) expired
    tickers = write_files(tmp_path / "slow", prefix, 3)
    held: list[Any] = []
    urls: Counter[str] = Counter()

    def store(route: Any) -> None:
        urls[key_of(route.request.url)] += 1
        if urls[key_of(route.request.url)] == 1:
            held.append(route)
        elif expired(route.request.url):
            route.fulfill(status=403, body=EXPIRED, headers={"Content-Type": "application/xml"})
        else:
            route.continue_()

    page.route("**/uploads/**", store)
    start(page, tmp_path / "slow")
    deadline = time.monotonic() + 30
    while len(held) < 3 and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert len(held) == 3, f"{len(held)} of 3 uploads began within 30 s: {states(page)}"
    page.wait_for_timeout(int(STACK_CHANGES["PRESIGN_EXPIRY_SECONDS"]) * 1000 + 1500)

    # WHEN the store refuses them as expired
    for route in held:
        assert expired(route.request.url)
        route.fulfill(status=403, body=EXPIRED, headers={"Content-Type": "application/xml"})

    # THEN each file got a fresh URL and was uploaded with it
    assert "Batch COMPLETED" in summary(page)
    assert dict(urls) == {key: 2 for key in urls} and len(urls) == 3
    assert browsed.rows_of(tickers) == 3 * ROWS


def test_a_multipart_file_with_a_failing_part_completes(
    page: Any, browsed: Browsed, tmp_path: Path, prefix: str
) -> None:
    # GIVEN a file over MULTIPART_THRESHOLD_BYTES (6 MiB), in 5 MiB parts
    body = multi_ticker_csv(prefix, 70, 2000)
    assert len(body) > int(STACK_CHANGES["MULTIPART_THRESHOLD_BYTES"])
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "big.csv").write_bytes(body)
    parts: Counter[int] = Counter()

    def store(route: Any) -> None:
        number = int(parse_qs(urlsplit(route.request.url).query).get("partNumber", ["0"])[0])
        parts[number] += 1
        if number == 2 and parts[2] == 1:
            route.abort("connectionreset")  # the connection drops during part 2, once
        else:
            route.continue_()

    page.route("**/uploads/**", store)

    # WHEN it is uploaded
    start(page, tmp_path / "big")
    text = summary(page)

    # THEN part 2 alone was sent again, and the joined object loaded once
    assert parts == Counter({1: 1, 2: 2})
    assert "Batch COMPLETED" in text
    status = browsed.client.status(batch_id(page))
    (entry,) = status["files"]
    assert entry["rowsLoaded"] == 70 * 2000
    assert browsed.rows_of([f"{prefix}{n:02d}" for n in range(70)]) == 70 * 2000
    (stored,) = storage.list_objects(browsed.store, browsed.bucket, entry["objectKey"])
    assert stored.etag.endswith("-2")  # announced as CompleteMultipartUpload
