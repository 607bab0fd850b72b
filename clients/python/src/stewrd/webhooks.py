"""Verifying stewrd's webhooks (and server tool calls), per Standard Webhooks.

stewrd signs every webhook delivery and every server tool call with the
project's ``whsec_…`` secret: ``webhook-signature: v1,<base64>`` where the
base64 is HMAC-SHA256, keyed by the bytes that follow ``whsec_`` (base64
decoded), over ``"{webhook-id}.{webhook-timestamp}.{body}"``. During a secret
rotation the header may hold several space-separated signatures; one match is
enough.

Verify the raw body bytes exactly as received: parsing and re-serialising JSON
changes them and breaks the signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any, Mapping, Optional, Union

__all__ = ["WebhookVerificationError", "verify_webhook", "sign_webhook", "TOLERANCE_SECONDS"]

SECRET_PREFIX = "whsec_"
#: How far ``webhook-timestamp`` may be from now (replay protection).
TOLERANCE_SECONDS = 5 * 60


class WebhookVerificationError(Exception):
    """A webhook's headers or signature do not check out: do not trust its body."""


def _key(secret: str) -> bytes:
    encoded = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else None
    if not encoded:
        raise WebhookVerificationError("the secret is not `whsec_` followed by base64")
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the secret is not `whsec_` followed by base64") from None
    if not key:
        raise WebhookVerificationError("the secret is empty")
    return key


def _as_bytes(body: Union[bytes, bytearray, memoryview, str]) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def _digest(secret: str, msg_id: str, timestamp: int, body: bytes) -> bytes:
    content = f"{msg_id}.{int(timestamp)}.".encode("utf-8") + body
    return hmac.new(_key(secret), content, hashlib.sha256).digest()


def sign_webhook(secret: str, msg_id: str, timestamp: int, body: Union[bytes, bytearray, memoryview, str]) -> str:
    """The ``v1,<base64>`` signature stewrd sends for this message (useful to
    test a receiver)."""
    digest = _digest(secret, msg_id, timestamp, _as_bytes(body))
    return "v1," + base64.b64encode(digest).decode("ascii")


def _header(headers: Mapping[str, str], name: str) -> str:
    # Header names are case-insensitive; frameworks hand them in any case.
    value: Optional[str] = None
    getter = getattr(headers, "get", None)
    if getter is not None:
        value = getter(name)
    if value is None:
        for key, v in headers.items():
            if key.lower() == name:
                value = v
                break
    if not value:
        raise WebhookVerificationError(f"missing `{name}` header")
    return value


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: Union[bytes, bytearray, memoryview, str],
    *,
    tolerance: int = TOLERANCE_SECONDS,
    now: Optional[float] = None,
) -> Any:
    """Checks a delivery and returns its parsed JSON body.

    Raises :class:`WebhookVerificationError` when a header is missing, the
    timestamp is more than ``tolerance`` seconds from now (a replay), or no
    ``v1`` signature matches (compared in constant time).
    """
    msg_id = _header(headers, "webhook-id")
    raw_timestamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    try:
        timestamp = int(raw_timestamp.strip())
    except ValueError:
        raise WebhookVerificationError("`webhook-timestamp` is not a number") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError("`webhook-timestamp` is too far from now")

    raw = _as_bytes(body)
    expected = _digest(secret, msg_id, timestamp, raw)
    matched = False
    for candidate in signatures.split(" "):
        if not candidate.startswith("v1,"):
            continue
        try:
            given = base64.b64decode(candidate[3:], validate=True)
        except (binascii.Error, ValueError):
            continue
        # Keep comparing after a match: the time taken says nothing.
        matched |= hmac.compare_digest(given, expected)
    if not matched:
        raise WebhookVerificationError("no signature matches")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise WebhookVerificationError("the body is not JSON") from None
