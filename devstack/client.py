"""One client of the functions' HTTP API, as the admin frontend and the object store use it:
presign, upload exactly as the presign answer says (PUT or POST form), deliver the
object-created notification in any of its three forms until it is accepted, bulk/process,
status and retry."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import requests
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent

from shared.events import minio_notification

from .services import settings

Form = Literal["minio", "binary", "structured"]
Encoded = tuple[dict[str, str], bytes]
FINAL = ("COMPLETED", "PARTIAL", "FAILED")
UPLOAD_CONTENT_TYPE = "text/csv"
CLOUDEVENT_ATTRIBUTES = {"type": "dev.knative.minio.object.created", "source": "minio:devstack"}
# What a broker sends again: throttling and server-side failures (MinIO retries every non-2xx).
RETRIED = frozenset({429, *range(500, 600)})
ANY_FAILURE = frozenset(range(300, 600))
Timeout = float | tuple[float, float]


def notification(
    bucket: str, key: str, etag: str, size: int, event_time: datetime | None = None
) -> dict[str, Any]:
    """MinIO's webhook body for one stored object."""
    return minio_notification(bucket, key, etag, size, event_time or datetime.now(UTC))


def minio_webhook(body: Mapping[str, Any]) -> Encoded:
    """The notification as MinIO's webhook POSTs it."""
    return {"Content-Type": "application/json"}, json.dumps(body).encode()


def binary_cloudevent(body: Mapping[str, Any]) -> Encoded:
    """The notification as the data of a binary-mode CloudEvent (Knative's broker)."""
    headers, data = to_binary(CloudEvent(dict(CLOUDEVENT_ATTRIBUTES), dict(body)))
    return dict(headers), data


def structured_cloudevent(body: Mapping[str, Any]) -> Encoded:
    """The notification inside a structured-mode CloudEvent."""
    headers, data = to_structured(CloudEvent(dict(CLOUDEVENT_ATTRIBUTES), dict(body)))
    return dict(headers), data


FORMS: dict[Form, Callable[[Mapping[str, Any]], Encoded]] = {
    "minio": minio_webhook,
    "binary": binary_cloudevent,
    "structured": structured_cloudevent,
}


class ApiError(RuntimeError):
    def __init__(self, response: requests.Response) -> None:
        request = f"{response.request.method} {response.url}"
        super().__init__(f"{request}: {response.status_code} {response.text[:500]}")
        self.status = response.status_code


class DeliveryError(RuntimeError):
    pass


@dataclass(frozen=True)
class Backoff:
    """Pauses between delivery attempts, doubling from `first` up to `cap`, for `deadline` s."""

    first: float = 0.05
    cap: float = 2.0
    deadline: float = 120.0

    def pause(self, attempt: int) -> float:
        return float(min(self.cap, self.first * 2 ** min(attempt, 30)))


@dataclass(frozen=True)
class Delivery:
    status: int
    attempts: int
    sent_at: float  # time.perf_counter() when the answered attempt was sent

    @property
    def retries(self) -> int:
        return self.attempts - 1


def upload(
    target: Mapping[str, Any],
    body: bytes,
    session: requests.Session | None = None,
    timeout: Timeout = 600,
) -> str:
    """Upload a file exactly as its presign target says (PUT with its headers, or a POST form
    with its fields); the object's ETag as the store answered it."""
    send = session or requests.Session()
    if target["method"] == "POST":
        answer = send.post(
            target["uploadUrl"],
            data=target["fields"],
            files={"file": (target.get("fileName", "file.csv"), body, UPLOAD_CONTENT_TYPE)},
            timeout=timeout,
        )
    else:
        answer = send.request(
            target["method"],
            target["uploadUrl"],
            data=body,
            headers=target["headers"],
            timeout=timeout,
        )
    if not answer.ok:
        raise ApiError(answer)
    return answer.headers.get("ETag", "").strip('"')


@dataclass
class Client:
    """The API of one running stack: `urls` of presign, process-file and status."""

    urls: Mapping[str, str]
    token: str
    webhook_token: str = ""
    bucket: str = ""
    _local: threading.local = field(default_factory=threading.local, repr=False)

    @classmethod
    def of(cls, env: Mapping[str, str], urls: Mapping[str, str]) -> Client:
        """A client for functions started with the contract's variables `env`."""
        found = settings(env)
        token = next(iter(found.api_tokens), "")
        return cls(urls, token, found.webhook_token, found.s3_bucket)

    def session(self) -> requests.Session:
        """This thread's session (keep-alive connections are not shared across threads)."""
        found: requests.Session | None = getattr(self._local, "session", None)
        if found is None:
            found = self._local.session = requests.Session()
        return found

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _data(self, answer: requests.Response, *expected: int) -> dict[str, Any]:
        if answer.status_code not in (expected or (200,)):
            raise ApiError(answer)
        return dict(answer.json()["data"])

    # ------------------------------------------------------------------------------ presign

    def presign(
        self,
        files: Sequence[str | tuple[str, int] | Mapping[str, Any]],
        batch_id: str | None = None,
    ) -> dict[str, Any]:
        """POST /bulk for these file names, (name, size) pairs or whole file specs; the
        answer's data."""
        specs = [
            {"name": f}
            if isinstance(f, str)
            else dict(f)
            if isinstance(f, Mapping)
            else {"name": f[0], "size": f[1], "type": "text/csv"}
            for f in files
        ]
        request: dict[str, Any] = {"files": specs}
        if batch_id is not None:
            request["batchId"] = batch_id
        answer = self.session().post(
            f"{self.urls['presign']}/bulk", json=request, headers=self.auth, timeout=120
        )
        return self._data(answer)

    def upload(self, target: Mapping[str, Any], body: bytes) -> str:
        return upload(target, body, self.session())

    def notification(self, target: Mapping[str, Any], etag: str, size: int) -> dict[str, Any]:
        """The webhook the store sends once the presign target's object landed."""
        return notification(self.bucket, target["objectKey"], etag, size)

    def upload_batch(
        self, files: Sequence[tuple[str, bytes]]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Presign and upload every file; the presign data and each file's notification."""
        batch = self.presign([(name, len(body)) for name, body in files])
        notifications = [
            self.notification(target, self.upload(target, body), len(body))
            for target, (_, body) in zip(batch["uploadUrls"], files, strict=True)
        ]
        return batch, notifications

    def process(self, batch_id: str, object_keys: Sequence[str]) -> dict[str, Any]:
        """POST /bulk/process: hand the batch's landed files over for processing."""
        answer = self.session().post(
            f"{self.urls['presign']}/bulk/process",
            json={"batchId": batch_id, "objectKeys": list(object_keys)},
            headers=self.auth,
            timeout=60,
        )
        return self._data(answer)

    # ------------------------------------------------------------------------------- status

    def status_response(self, batch_id: str) -> requests.Response:
        return self.session().get(
            f"{self.urls['status']}/batch/{batch_id}/status", headers=self.auth, timeout=60
        )

    def status(self, batch_id: str) -> dict[str, Any]:
        return self._data(self.status_response(batch_id))

    def retry(self, batch_id: str) -> dict[str, Any]:
        """POST /batch/<id>/retry: reprocess the batch's failed files."""
        answer = self.session().post(
            f"{self.urls['status']}/batch/{batch_id}/retry", headers=self.auth, timeout=60
        )
        return self._data(answer, 202)

    def wait(
        self,
        batch_id: str,
        until: Collection[str] = FINAL,
        timeout: float = 600.0,
        pause: float = 0.05,
        seen: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll the status until the batch's status is one of `until`; that state."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.status(batch_id)
            if seen is not None:
                seen(state)
            if state["status"] in until:
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"batch {batch_id} still {state['status']} after {timeout} s")
            time.sleep(pause)

    # --------------------------------------------------------------------------- notifications

    def send(
        self,
        body: Mapping[str, Any],
        form: Form = "minio",
        url: str | None = None,
        timeout: Timeout = (5, 900),
    ) -> requests.Response:
        """One delivery attempt of the notification to process-file (or `url`)."""
        headers, data = FORMS[form](body)
        if self.webhook_token:
            headers["Authorization"] = f"Bearer {self.webhook_token}"
        return self.session().post(
            url or self.urls["process-file"], data=data, headers=headers, timeout=timeout
        )

    def deliver(
        self,
        body: Mapping[str, Any],
        form: Form = "minio",
        url: str | None = None,
        retry: Collection[int] = RETRIED,
        backoff: Backoff = Backoff(),
        timeout: Timeout = (5, 900),
    ) -> Delivery:
        """Deliver as a broker does: again after a connection failure or a status in `retry`,
        until an answer outside it (raised for when `backoff.deadline` passes)."""
        deadline = time.monotonic() + backoff.deadline
        attempt = 0
        while True:
            attempt += 1
            sent = time.perf_counter()
            try:
                answer = self.send(body, form, url, timeout)
                if answer.status_code not in retry:
                    return Delivery(answer.status_code, attempt, sent)
                last = f"answered {answer.status_code}: {answer.text[:300]}"
            except requests.ConnectionError as error:
                last = f"unreachable: {error}"
            if time.monotonic() > deadline:
                raise DeliveryError(f"notification not accepted after {attempt} attempts, {last}")
            time.sleep(backoff.pause(attempt - 1))
