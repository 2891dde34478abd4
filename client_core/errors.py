"""What ``client_core`` raises: one base class, one subclass per kind of failure.

Callers usually need to know one thing: did the server answer? ``ServerUnreachable``
means it did not (refused, timed out, dropped); ``RequestRejected`` means it answered
and refused; ``MalformedAnswer`` means it answered something that is not this API.
Every message is one line meant for a user, as httpx's own errors are.
"""

from __future__ import annotations


class VideoSimError(Exception):
    """Base of every error ``client_core`` raises on purpose; ``str()`` is one line."""

    http_status: int | None = None  # the server's HTTP status when it answered
    retry_after_s: float | None = None  # its Retry-After (capped), when it gave one

    @property
    def unreachable(self) -> bool:
        """True when no answer came (kept for code written against ``ClientError``)."""
        return isinstance(self, ServerUnreachable)


class ServerUnreachable(VideoSimError):
    """No answer: connection refused, timed out or dropped, after the allowed retries."""


class RequestRejected(VideoSimError):
    """The server answered and refused (a 4xx, or a 429/5xx until the deadline)."""

    def __init__(
        self, message: str, *, http_status: int | None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.retry_after_s = retry_after_s


class MalformedAnswer(VideoSimError):
    """The server answered, but not in this API's shape (not JSON, unknown result...)."""

    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


# Deprecated: the single error class of earlier versions. Catch VideoSimError instead.
ClientError = VideoSimError
