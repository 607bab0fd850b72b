"""Python client for stewrd: durable, bring-your-own-key AI agent runs.

>>> from stewrd import Client
>>> client = Client("http://127.0.0.1:8080", "sk-stw_…")
>>> run = client.agent("Summarize the latest AI news")
>>> client.wait(run["session_id"])["output"]

See README.md for the whole API; :class:`Client` and :class:`AsyncClient` have
the same methods.
"""

from ._client import AsyncClient, Client
from ._errors import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    GoneError,
    IdempotencyError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    ServiceUnavailableError,
    StewrdError,
    WaitTimeoutError,
)
from ._shared import approval
from ._sse import FINAL_STATUSES, Event
from ._version import __version__
from .webhooks import WebhookVerificationError, sign_webhook, verify_webhook

__all__ = [
    "Client",
    "AsyncClient",
    "Event",
    "FINAL_STATUSES",
    "approval",
    "verify_webhook",
    "sign_webhook",
    "WebhookVerificationError",
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
    "__version__",
]
