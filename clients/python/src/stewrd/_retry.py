"""When a failed call may be sent again, and after how long.

Shared by the sync and async transports so both follow one policy:

* 429 and 503 mean the server did not act on the request, so any method may
  be retried; the server's ``Retry-After`` is honoured, and a wait longer than
  ``max_retry_delay`` (a budget exhausted until tomorrow, say) is not slept
  through: the error is raised at once instead.
* A connection error or a timeout before an answer leaves the outcome unknown,
  so only calls that are safe to repeat are retried: reads (GET), and
  ``POST /v1/agent``, which always carries an ``Idempotency-Key`` (the server
  answers a repeat with the first answer instead of a second session).
"""

from __future__ import annotations

import email.utils
import random
import time
from typing import Mapping, Optional

import httpx

#: Statuses that say "not done, try later".
RETRY_STATUSES = frozenset({429, 503})

#: Transport failures that may have happened before the server acted.
TRANSPORT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)

#: The one POST that is safe to repeat (thanks to its Idempotency-Key).
SUBMIT_PATH = "/v1/agent"

DEFAULT_MAX_RETRIES = 2
#: Longest wait the client sleeps through on its own.
DEFAULT_MAX_RETRY_DELAY = 60.0
_BACKOFF_BASE = 0.5
_BACKOFF_CAP = 8.0


def repeatable_after_transport_error(method: str, path: str) -> bool:
    """Whether a request whose outcome is unknown may be sent again."""
    method = method.upper()
    return method in ("GET", "HEAD") or (method == "POST" and path == SUBMIT_PATH)


def parse_retry_after(headers: Mapping[str, str]) -> Optional[float]:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), if present."""
    value = None
    for name, v in headers.items():
        if name.lower() == "retry-after":
            value = v.strip()
            break
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff(attempt: int) -> float:
    """Exponential backoff with jitter for the ``attempt``-th retry (0-based)."""
    delay = min(_BACKOFF_CAP, _BACKOFF_BASE * 2.0**attempt)
    return delay * (0.5 + random.random() / 2)


def delay_for_status(attempt: int, headers: Mapping[str, str], max_retry_delay: float) -> Optional[float]:
    """Seconds to wait before retrying a 429/503, or ``None`` to give up now
    (the server asked for a longer wait than the client is willing to sleep)."""
    retry_after = parse_retry_after(headers)
    if retry_after is None:
        return backoff(attempt)
    if retry_after > max_retry_delay:
        return None
    return retry_after
