"""The one exception type of the library, and its subclasses by HTTP status.

Every error answer of the API has the body
``{"error": {"type", "code", "message", "param"}}``; :class:`StewrdError` carries
those fields plus the HTTP status, so callers can branch on ``code`` (stable)
rather than on message text. Subclasses exist only so that ``except`` clauses can
be narrower; catching :class:`StewrdError` always catches everything the client
raises for a failed call.
"""

from __future__ import annotations

import json
from typing import Dict, Mapping, Optional, Type

__all__ = [
    "StewrdError",
    "BadRequestError",
    "AuthenticationError",
    "NotFoundError",
    "ConflictError",
    "GoneError",
    "PayloadTooLargeError",
    "IdempotencyError",
    "RateLimitError",
    "ServiceUnavailableError",
    "APIConnectionError",
    "WaitTimeoutError",
]


class StewrdError(Exception):
    """A call to stewrd failed.

    Attributes:
        status: the HTTP status, or ``None`` when no answer came (connection
            error, or a client-side timeout such as :meth:`Client.wait`'s).
        type: the error's ``type`` (``invalid_request_error``, ``conflict_error``, …).
        code: the stable machine-readable ``code`` (``missing_field``,
            ``session_busy``, …).
        param: the field or parameter at fault, if the server named one.
        message: the human-readable ``message``.
        headers: the answer's headers (e.g. ``Retry-After``, ``x-request-id``).
    """

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        type: Optional[str] = None,
        code: Optional[str] = None,
        param: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.code = code
        self.param = param
        self.headers: Dict[str, str] = dict(headers or {})

    @property
    def request_id(self) -> Optional[str]:
        """The server's ``x-request-id`` for this answer: quote it in bug reports."""
        return self.headers.get("x-request-id")

    def __str__(self) -> str:
        parts = [self.message]
        details = ", ".join(
            f"{name}={value}"
            for name, value in (
                ("status", self.status),
                ("code", self.code),
                ("param", self.param),
            )
            if value is not None
        )
        if details:
            parts.append(f"({details})")
        return " ".join(parts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, type={self.type!r}, "
            f"code={self.code!r}, param={self.param!r}, message={self.message!r})"
        )


class BadRequestError(StewrdError):
    """400: an invalid body or parameter (``param`` names it)."""


class AuthenticationError(StewrdError):
    """401: a missing, bad or revoked API key or admin token."""


class NotFoundError(StewrdError):
    """404: no such resource (also another project's)."""


class ConflictError(StewrdError):
    """409: e.g. a new message while a run is in flight, or nothing to approve."""


class GoneError(StewrdError):
    """410: e.g. events resumed past their retention."""


class PayloadTooLargeError(StewrdError):
    """413: body or file too large, or the project's file quota is used up."""


class IdempotencyError(StewrdError):
    """422: an ``Idempotency-Key`` reused with another body."""


class RateLimitError(StewrdError):
    """429: rate limited or a budget is used up; see :attr:`retry_after`."""

    @property
    def retry_after(self) -> Optional[float]:
        """Seconds the server asked to wait (``Retry-After``), if it said."""
        from ._retry import parse_retry_after

        return parse_retry_after(self.headers)


class ServiceUnavailableError(StewrdError):
    """503: the server is not ready (database or broker unreachable)."""


class APIConnectionError(StewrdError):
    """No answer: the connection failed or was cut (``status`` is ``None``)."""


class WaitTimeoutError(StewrdError, TimeoutError):
    """:meth:`Client.wait` (or ``run_tools``) ran out of time before the session
    was final; the session keeps running on the server."""


_BY_STATUS: Dict[int, Type[StewrdError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    410: GoneError,
    413: PayloadTooLargeError,
    422: IdempotencyError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def error_from_response(status: int, body: bytes, headers: Mapping[str, str]) -> StewrdError:
    """Builds the exception for an error answer, tolerating bodies that are not
    the API's error shape (a proxy's HTML page, an empty 502)."""
    cls = _BY_STATUS.get(status, StewrdError)
    detail: Mapping[str, object] = {}
    try:
        parsed = json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, ValueError):
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        detail = parsed["error"]

    def text(key: str) -> Optional[str]:
        value = detail.get(key)
        return value if isinstance(value, str) else None

    message = text("message")
    if message is None:
        snippet = body[:200].decode("utf-8", "replace").strip()
        message = f"HTTP {status}" + (f": {snippet}" if snippet else "")
    return cls(
        message,
        status=status,
        type=text("type"),
        code=text("code"),
        param=text("param"),
        headers={k.lower(): v for k, v in headers.items()},
    )
