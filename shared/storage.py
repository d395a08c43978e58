"""The object store, through the plain S3 API (MinIO, or any S3-compatible store)."""

import base64
import hashlib
import hmac
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote, urlsplit
from xml.sax.saxutils import escape

import urllib3
from minio import Minio
from minio.datatypes import ListPartsResult, Part, PostPolicy
from minio.error import S3Error

from .errors import TransientError
from .settings import Settings

HEAD_BYTES = 65536
BUSY_CODES = (
    "InternalError",
    "SlowDown",
    "ServiceUnavailable",
    "RequestTimeout",
    "XMinioServerNotInitialized",
)
T = TypeVar("T")


@dataclass(frozen=True)
class StoredObject:
    key: str
    etag: str
    size: int
    last_modified: datetime


def client(settings: Settings, endpoint: str) -> Minio:
    """A client for one endpoint; `region=` lets it presign without a network call."""
    url = urlsplit(endpoint)
    return Minio(
        url.netloc,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        secure=url.scheme == "https",
        region=settings.s3_region,
        http_client=urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5, read=60),
            retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=(502, 503, 504)),
            maxsize=16,
        ),
    )


class PutSigner:
    """Presigned PUT URLs (SigV4, query-signed, host header only), as minio-py makes them but
    with the day's signing key derived once: a 1,000-file batch is signed in milliseconds."""

    def __init__(self, settings: Settings) -> None:
        endpoint = urlsplit(settings.presign_endpoint)
        self._base = f"{endpoint.scheme}://{endpoint.netloc}"
        self._host = endpoint.netloc
        self._access_key = settings.s3_access_key
        self._secret_key = settings.s3_secret_key
        self._region = settings.s3_region

    def urls(
        self, bucket: str, keys: list[str], expires: timedelta, now: datetime | None = None
    ) -> list[str]:
        moment = (now or datetime.now(UTC)).astimezone(UTC)
        day, stamp = moment.strftime("%Y%m%d"), moment.strftime("%Y%m%dT%H%M%SZ")
        scope = f"{day}/{self._region}/s3/aws4_request"
        signing_key = f"AWS4{self._secret_key}".encode()
        for part in (day, self._region, "s3", "aws4_request"):
            signing_key = hmac.new(signing_key, part.encode(), hashlib.sha256).digest()
        query = (
            "X-Amz-Algorithm=AWS4-HMAC-SHA256"
            f"&X-Amz-Credential={quote(f'{self._access_key}/{scope}', safe='')}"
            f"&X-Amz-Date={stamp}&X-Amz-Expires={int(expires.total_seconds())}"
            "&X-Amz-SignedHeaders=host"
        )
        signed = []
        for key in keys:
            path = f"/{bucket}/{quote(key, safe='/~')}"
            request = f"PUT\n{path}\n{query}\nhost:{self._host}\n\nhost\nUNSIGNED-PAYLOAD"
            to_sign = (
                f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n"
                f"{hashlib.sha256(request.encode()).hexdigest()}"
            )
            signature = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
            signed.append(f"{self._base}{path}?{query}&X-Amz-Signature={signature}")
        return signed


def presigned_post(
    signer: Minio, bucket: str, key: str, expires_at: datetime, max_bytes: int, content_type: str
) -> dict[str, str]:
    """Form fields for a browser POST upload whose policy bounds the size (for stores that
    enforce POST policies; a presigned PUT cannot bound anything)."""
    policy = PostPolicy(bucket, expires_at)
    policy.add_equals_condition("key", key)
    policy.add_equals_condition("Content-Type", content_type)
    policy.add_content_length_range_condition(1, max_bytes)
    return {**signer.presigned_post_policy(policy), "key": key, "Content-Type": content_type}


def bucket_url(endpoint: str, bucket: str) -> str:
    return f"{endpoint}/{bucket}"


def presigned_get(
    signer: Minio, bucket: str, key: str, expires: timedelta, signed_at: datetime | None = None
) -> str:
    """A GET URL valid for `expires` from `signed_at` (now by default): signing with the same
    moment gives the same URL, so an answer that holds it stays byte-identical."""
    return signer.presigned_get_object(bucket, key, expires=expires, request_date=signed_at)


def stat(store: Minio, bucket: str, key: str) -> StoredObject | None:
    """The object's current version, or None when there is no such object."""
    try:
        found = _guard(lambda: store.stat_object(bucket, key))
    except S3Error as error:
        if error.code in ("NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound"):
            return None
        raise
    assert found.last_modified is not None
    return StoredObject(
        key=key,
        etag=(found.etag or "").strip('"'),
        size=found.size or 0,
        last_modified=found.last_modified,
    )


def peek(chunks: Iterator[bytes], length: int = HEAD_BYTES) -> tuple[bytes, Iterator[bytes]]:
    """The first `length` bytes of a stream (all of it when shorter), enough to decide
    encoding, delimiter and header, and the whole stream still to be read: one GET per file."""
    taken: list[bytes] = []
    size = 0
    for chunk in chunks:
        taken.append(chunk)
        size += len(chunk)
        if size >= length:
            break
    read = b"".join(taken)
    return read[:length], itertools.chain([read], chunks)


def upload_file(store: Minio, bucket: str, key: str, path: Path, content_type: str) -> None:
    _guard(lambda: store.fput_object(bucket, key, str(path), content_type=content_type))


def ensure_bucket(store: Minio, bucket: str) -> None:
    if not _guard(lambda: store.bucket_exists(bucket)):
        _guard(lambda: store.make_bucket(bucket))


def list_objects(store: Minio, bucket: str, prefix: str) -> list[StoredObject]:
    return _guard(
        lambda: [
            StoredObject(
                key=o.object_name or "",
                etag=(o.etag or "").strip('"'),
                size=o.size or 0,
                last_modified=o.last_modified or datetime.min,
            )
            for o in store.list_objects(bucket, prefix=prefix, recursive=True)
        ]
    )


def _guard(call: Callable[[], T]) -> T:
    try:
        return call()
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise TransientError(f"object store unavailable: {type(error).__name__}") from error
    except S3Error as error:
        if error.code in BUSY_CODES:
            raise TransientError(f"object store busy: {error.code}") from error
        raise


def stream(store: Minio, bucket: str, key: str, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
    """The object's bytes, chunk by chunk (never the whole object in memory); a failure while
    reading is a TransientError, like every other call here."""
    response = _guard(lambda: store.get_object(bucket, key))
    try:
        while True:
            try:
                chunk = response.read(chunk_bytes)
            except (urllib3.exceptions.HTTPError, OSError) as error:
                raise TransientError(f"object store unavailable: {type(error).__name__}") from error
            if not chunk:
                return
            yield chunk
    finally:
        response.close()
        response.release_conn()


# ------------------------------------------------------------------------- multipart uploads
# minio-py keeps its multipart calls private (its own put_object uses them); they are the plain
# S3 API (CreateMultipartUpload, UploadPart, ListParts, CompleteMultipartUpload, Abort).


@dataclass(frozen=True)
class StoredPart:
    number: int
    etag: str
    size: int


def create_multipart(store: Minio, bucket: str, key: str, content_type: str) -> str:
    """A new multipart upload of `key`; its upload id."""
    return _guard(
        lambda: store._create_multipart_upload(bucket, key, {"Content-Type": content_type})
    )


def presigned_part(
    signer: Minio, bucket: str, key: str, upload_id: str, number: int, expires: timedelta
) -> str:
    """A presigned UploadPart URL: the browser PUTs one part's bytes to it."""
    return signer.get_presigned_url(
        "PUT",
        bucket,
        key,
        expires=expires,
        extra_query_params={"partNumber": str(number), "uploadId": upload_id},
    )


def list_parts(store: Minio, bucket: str, key: str, upload_id: str) -> list[StoredPart] | None:
    """The parts the store holds for an upload; None when there is no such upload."""
    found: list[StoredPart] = []
    marker: str | None = None
    while True:
        page = _parts_page(store, bucket, key, upload_id, marker)
        if page is None:
            return None
        found += [StoredPart(p.part_number, p.etag.strip('"'), p.size or 0) for p in page.parts]
        if not page.is_truncated or not page.next_part_number_marker:
            return found
        marker = str(page.next_part_number_marker)


def _parts_page(
    store: Minio, bucket: str, key: str, upload_id: str, marker: str | None
) -> ListPartsResult | None:
    try:
        return _guard(lambda: store._list_parts(bucket, key, upload_id, part_number_marker=marker))
    except S3Error as error:
        if error.code == "NoSuchUpload":
            return None
        raise


def complete_multipart(
    store: Minio, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]
) -> str:
    """Join the parts (number, etag) into the object; its etag (`…-N`)."""
    listed = [Part(number, etag) for number, etag in sorted(parts)]
    result = _guard(lambda: store._complete_multipart_upload(bucket, key, upload_id, listed))
    return (result.etag or "").strip('"')


def abort_multipart(store: Minio, bucket: str, key: str, upload_id: str) -> None:
    try:
        _guard(lambda: store._abort_multipart_upload(bucket, key, upload_id))
    except S3Error as error:
        if error.code != "NoSuchUpload":
            raise


def set_cors(store: Minio, bucket: str, origins: list[str]) -> None:
    """Let browsers on `origins` upload to presigned URLs (PUT, POST forms, multipart parts)
    and read the ETag of what they sent (PutBucketCors)."""
    allowed = "".join(f"<AllowedOrigin>{escape(origin)}</AllowedOrigin>" for origin in origins)
    methods = "".join(f"<AllowedMethod>{m}</AllowedMethod>" for m in ("GET", "HEAD", "PUT", "POST"))
    body = (
        "<CORSConfiguration><CORSRule>"
        f"{allowed}{methods}<AllowedHeader>*</AllowedHeader><ExposeHeader>ETag</ExposeHeader>"
        "<MaxAgeSeconds>600</MaxAgeSeconds></CORSRule></CORSConfiguration>"
    ).encode()
    digest = base64.b64encode(hashlib.md5(body).digest()).decode()
    _guard(
        lambda: store._execute(
            "PUT", bucket, body=body, headers={"Content-MD5": digest}, query_params={"cors": ""}
        )
    )
