"""Errors the library raises, and what each means for the caller.

IngestError
├── RequestError          the caller sent something wrong: 4xx, nothing created
│   ├── AuthError         missing or wrong token: 401
│   └── NotFoundError     unknown batch: 404
├── BadNotificationError  a process-file body that is no notification at all: 400
├── FileRejectedError     the file itself is unusable: recorded as FAILED, not retried
└── TransientError        a service is unreachable: 5xx, so the sender retries
    └── BusyError         another worker holds the file's lease: 5xx, retry later
"""


class IngestError(Exception):
    """Base class of every error this library raises on purpose."""


class RequestError(IngestError):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class AuthError(RequestError):
    def __init__(self) -> None:
        super().__init__("UNAUTHORIZED", "A valid bearer token is required.", 401)


class NotFoundError(RequestError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message, 404)


class BadNotificationError(IngestError):
    """The body is not an object notification in any accepted form."""


class FileRejectedError(IngestError):
    """The whole file is unusable; the message is shown to the admin as the file's error."""


class TransientError(IngestError):
    """A dependency is unreachable; the event must be delivered again later."""


class BusyError(TransientError):
    """Another worker is processing the file right now; the event must come back later."""
