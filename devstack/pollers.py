"""Closed-loop and paced HTTP GET load over keep-alive connections (asyncio, HTTP/1.1), for
measuring an endpoint's throughput and latency from the scheduled send time."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Any


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


@dataclass
class PollSample:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    not_modified: int = 0


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """One HTTP/1.1 response off a keep-alive connection: its status and headers (names
    lower-cased)."""
    line = await reader.readline()
    if not line:
        raise ConnectionError("closed")
    code = int(line.split()[1])
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while size := int((await reader.readline()).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readline()
    else:
        await reader.readexactly(int(headers.get("content-length", "0")))
    return code, headers


async def _poller(
    host: str,
    port: int,
    request: str,
    first: float,
    deadline: float,
    interval: float,
    revalidate: bool,
    sample: PollSample,
) -> None:
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    etag = ""
    due = first
    while (now := time.perf_counter()) < deadline:
        if interval:
            if due > now:
                await asyncio.sleep(due - now)
            started, due = due, due + interval  # latency from the scheduled time
        else:
            started = now
        try:
            if conn is None:
                conn = await asyncio.open_connection(host, port)
            ending = f"If-None-Match: {etag}\r\n\r\n" if etag else "\r\n"
            conn[1].write((request + ending).encode())
            code, headers = await asyncio.wait_for(_read_response(conn[0]), 60)
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError, TimeoutError):
            sample.errors += 1
            _close(conn)
            conn = None
            await asyncio.sleep(0.01)
            continue
        sample.latencies.append(time.perf_counter() - started)
        sample.errors += code not in (200, 304)
        sample.not_modified += code == 304
        if revalidate and code == 200:
            etag = headers.get("etag", "")
        if headers.get("connection", "").lower() == "close":
            _close(conn)
            conn = None
    _close(conn)


def _close(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
    if conn is not None:
        conn[1].close()


async def _poll(
    url: str, path: str, token: str, pollers: int, seconds: float, rate: float, revalidate: bool
) -> tuple[PollSample, float]:
    host, port = url.removeprefix("http://").split(":")
    # the headers' end is added per request: after If-None-Match, when the poller has an ETag
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
    interval = pollers / rate if rate else 0.0
    sample = PollSample()
    start = time.perf_counter()
    await asyncio.gather(
        *(
            _poller(
                host,
                int(port),
                request,
                start + (i * interval / pollers if interval else 0),
                start + seconds,
                interval,
                revalidate,
                sample,
            )
            for i in range(pollers)
        )
    )
    return sample, time.perf_counter() - start


def poll(
    url: str,
    path: str,
    token: str,
    pollers: int,
    seconds: float,
    rate: float,
    revalidate: bool = False,
) -> dict[str, Any]:
    """`pollers` connections GET url+path for `seconds`: each as fast as answered (rate 0,
    closed loop) or together paced to `rate` requests/s. With `revalidate` each poller sends
    the ETag of its last full answer as If-None-Match, as the client module does."""
    sample, elapsed = asyncio.run(_poll(url, path, token, pollers, seconds, rate, revalidate))
    ms = [s * 1000 for s in sample.latencies]
    return {
        "pollers": pollers,
        "seconds": round(elapsed, 3),
        "offered_req_per_s": rate or None,
        "requests": len(ms),
        "errors": sample.errors,
        "not_modified": sample.not_modified,
        "req_per_s": round(len(ms) / elapsed, 1),
        "p50_ms": round(percentile(ms, 50), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms, default=0), 2),
    }
