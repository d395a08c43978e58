"""Errors the library raises, and what each means for the caller.

    IngestError
    ├── RequestError          the caller sent something wrong; nothing was created
    │   ├── AuthError         missing or wrong token
    │   ├── NotFoundError     no such batch (or route)
    │   ├── ConflictError     the request does not fit the batch's state
    │   ├── TooLargeError     the request body is over its limit
    │   └── SlowRequestError  the request body did not arrive in time
    ├── BadNotificationError  a process-file body that is no notification at all
    ├── FileRejectedError     the file itself is unusable: recorded as FAILED, not retried
    └── TransientError        a service is unreachable: the sender retries later
        └── BusyError         another worker holds the file right now

The errors carry no HTTP status: shared/http.py maps each class to one, in one table.
"""


class IngestError(Exception):
    """Base class of every error this library raises on purpose."""


class RequestError(IngestError):
    """`code` is the stable machine-readable name, `message` the sentence for a person."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class AuthError(RequestError):
    def __init__(self) -> None:
        super().__init__("UNAUTHORIZED", "A valid bearer token is required.")


class NotFoundError(RequestError):
    pass


class ConflictError(RequestError):
    pass


class TooLargeError(RequestError):
    pass


class SlowRequestError(RequestError):
    pass


class BadNotificationError(IngestError):
    """The body is not an object notification in any accepted form."""


class FileRejectedError(IngestError):
    """The whole file is unusable; the message is shown to the admin as the file's error."""


class TransientError(IngestError):
    """A dependency is unreachable; the event must be delivered again later."""


class BusyError(TransientError):
    """Another worker is processing the file right now; the event must come back later."""
