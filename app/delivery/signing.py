"""Standard Webhooks headers: how a receiver knows a delivery comes from us.

The signature is ``v1,`` and the base64 HMAC-SHA256 of
``{webhook-id}.{webhook-timestamp}.{body}``, keyed with the base64-decoded
part of the subscription's ``whsec_`` secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from app import __version__

SECRET_PREFIX = "whsec_"  # noqa: S105 - the marker of a secret, not one
USER_AGENT = f"ctgo-webhooks/{__version__}"


def signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one attempt."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def webhook_headers(
    secret: str, webhook_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Every header of one delivery POST."""
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, webhook_id, timestamp, body),
    }


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    # Receivers' libraries accept the secret without its padding; so do we.
    encoded += "=" * (-len(encoded) % 4)
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise ValueError(
            f"the subscription secret is not {SECRET_PREFIX} and base64"
        ) from exc
