"""The server's HMAC signatures for the links it hands out (share links, provider input links).

One key (the server's secret key) signs every kind of link; each kind signs its messages under a purpose of its
own, so a signature made for one kind never checks as another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from reelgate.services.context import ServiceContext

# Used when no key is configured (tests that build a context by hand): links then last as long as the process.
_PROCESS_KEY = secrets.token_hex(32)


def _key(ctx: ServiceContext) -> bytes:
    return (ctx.config.link_signing_key or _PROCESS_KEY).encode()


def sign(ctx: ServiceContext, purpose: str, message: str) -> str:
    """HMAC-SHA256 of `purpose:message` under the server's key, URL-safe base64 without padding."""
    digest = hmac.new(_key(ctx), f"{purpose}:{message}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def verify(ctx: ServiceContext, purpose: str, message: str, signature: str) -> bool:
    """Compared in constant time, so the answer's timing says nothing about how much of a guess was right."""
    return hmac.compare_digest(signature.encode(), sign(ctx, purpose, message).encode())
