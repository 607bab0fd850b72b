"""Webhook verification (Standard Webhooks), against the specification's known
answer, tampering, stale timestamps, and a real delivery from the server."""

from __future__ import annotations

import time
from typing import Any

import pytest

import stewrd
from stewrd import WebhookVerificationError, sign_webhook, verify_webhook

# The Standard Webhooks specification's published example (also in stewrd's tests).
SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
MSG_ID = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"
TIMESTAMP = 1649367553
BODY = b'{"email":"test@example.com","username":"test_user"}'
SIGNATURE = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="


def headers(signature: str = SIGNATURE, msg_id: str = MSG_ID, timestamp: int = TIMESTAMP) -> dict:
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def test_known_answer() -> None:
    assert sign_webhook(SECRET, MSG_ID, TIMESTAMP, BODY) == SIGNATURE
    body = verify_webhook(SECRET, headers(), BODY, now=TIMESTAMP)
    assert body == {"email": "test@example.com", "username": "test_user"}
    # Header names in any case, body as text, several signatures (rotation).
    mixed = {"Webhook-Id": MSG_ID, "WEBHOOK-TIMESTAMP": str(TIMESTAMP), "Webhook-Signature": f"v1,AAAA {SIGNATURE}"}
    assert verify_webhook(SECRET, mixed, BODY.decode(), now=TIMESTAMP + 299) == body


@pytest.mark.parametrize(
    "hdrs, body, now",
    [
        (headers(), b'{"email":"evil@example.com","username":"test_user"}', TIMESTAMP),  # tampered body
        (headers(msg_id="msg_other"), BODY, TIMESTAMP),  # another id
        (headers(), BODY, TIMESTAMP + 301),  # too old
        (headers(), BODY, TIMESTAMP - 301),  # from the future
        (headers(signature="v1,"), BODY, TIMESTAMP),
        (headers(signature=SIGNATURE[:-8]), BODY, TIMESTAMP),  # cut
        (headers(signature="v2," + SIGNATURE[3:]), BODY, TIMESTAMP),  # other scheme
        ({"webhook-id": MSG_ID, "webhook-signature": SIGNATURE}, BODY, TIMESTAMP),  # no timestamp
        (headers(timestamp=0) | {"webhook-timestamp": "soon"}, BODY, TIMESTAMP),
    ],
)
def test_rejected(hdrs: dict, body: bytes, now: int) -> None:
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, hdrs, body, now=now)


def test_wrong_secret() -> None:
    with pytest.raises(WebhookVerificationError):
        verify_webhook("whsec_" + "A" * 43 + "=", headers(), BODY, now=TIMESTAMP)
    with pytest.raises(WebhookVerificationError):
        verify_webhook("not-a-secret", headers(), BODY, now=TIMESTAMP)


def test_a_real_delivery(client: stewrd.Client, receiver_factory: Any) -> None:
    hook = receiver_factory()
    secret = client.project.new_webhook_secret()["secret"]
    assert secret.startswith("whsec_")
    project = client.project.set_webhook(hook.url + "/hooks/stewrd")
    assert project["webhook"] == {"url": hook.url + "/hooks/stewrd", "has_secret": True}

    run = client.agent("notify me")
    client.wait(run["session_id"], timeout=60)
    assert hook.event.wait(30), "no webhook delivery arrived"
    delivery = hook.received[0]
    event = verify_webhook(secret, delivery.headers, delivery.body)
    assert event["type"] == "session.succeeded"
    assert event["data"]["id"] == run["session_id"]
    assert event["data"]["output"] == "Echo: notify me"

    with pytest.raises(WebhookVerificationError):
        verify_webhook(secret, delivery.headers, delivery.body.replace(b"notify", b"ignore"))
    stale = dict(delivery.headers)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(secret, stale, delivery.body, now=time.time() + 600)

    # The attempt is listed, and can be sent again with the same webhook-id.
    deadline = time.time() + 10
    while not client.sessions.deliveries(run["session_id"])["data"] and time.time() < deadline:
        time.sleep(0.2)
    attempts = client.sessions.deliveries(run["session_id"])["data"]
    assert attempts[0]["status_code"] == 200 and attempts[0]["type"] == "session.succeeded"
    hook.event.clear()
    retried = client.sessions.retry_delivery(run["session_id"])
    assert retried["event_id"] == attempts[0]["event_id"]
    assert hook.event.wait(30), "the retried delivery did not arrive"
    again = hook.received[-1]
    assert again.headers["webhook-id"] == delivery.headers["webhook-id"]
    assert verify_webhook(secret, again.headers, again.body)["data"]["id"] == run["session_id"]
