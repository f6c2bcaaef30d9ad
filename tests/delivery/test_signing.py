"""Standard Webhooks headers and signatures."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app import __version__
from app.delivery.signing import signature, webhook_headers
from tests.delivery.conftest import new_secret

BODY = '[{"id":"lead-1","bio":"café ☕ 日本"}]'.encode()


def test_signature_matches_the_standardwebhooks_library() -> None:
    secret = new_secret()
    headers = webhook_headers(secret, "msg_abc", 1_700_000_000, BODY)

    expected = Webhook(secret).sign(
        "msg_abc", datetime.fromtimestamp(1_700_000_000, UTC), BODY
    )

    assert headers["webhook-signature"] == expected


def test_current_headers_verify_and_return_the_body() -> None:
    secret = new_secret()
    headers = webhook_headers(secret, "msg_abc", int(time.time()), BODY)

    assert Webhook(secret).verify(BODY, headers) == [
        {"id": "lead-1", "bio": "café ☕ 日本"}
    ]


def test_a_changed_body_does_not_verify() -> None:
    secret = new_secret()
    headers = webhook_headers(secret, "msg_abc", int(time.time()), BODY)

    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"lead-1", b"lead-2"), headers)


def test_headers_name_the_service_and_the_webhook() -> None:
    headers = webhook_headers(new_secret(), "msg_abc", 1, BODY)

    assert headers["user-agent"] == f"ctgo-webhooks/{__version__}"
    assert headers["content-type"] == "application/json"
    assert headers["webhook-id"] == "msg_abc"
    assert headers["webhook-timestamp"] == "1"


def test_an_unpadded_secret_signs_like_its_padded_form() -> None:
    secret = new_secret()
    assert secret.endswith("=")

    unpadded = secret.rstrip("=")

    assert signature(unpadded, "m", 1, BODY) == signature(secret, "m", 1, BODY)


def test_a_secret_that_is_not_base64_is_refused() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        signature("whsec_not*base64!", "m", 1, BODY)
