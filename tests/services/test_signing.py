"""The one signing helper: signatures keep their form (share links made before still open), and a signature made
for one kind of link never checks as another."""

from __future__ import annotations

import base64
import hashlib
import hmac

from reelgate.services import sharing, signing
from reelgate.services.context import ServiceConfig, ServiceContext

KEY = "k" * 64


def context(key: str = KEY) -> ServiceContext:
    return ServiceContext(
        db=None,  # type: ignore[arg-type]
        catalog=None,  # type: ignore[arg-type]
        providers=None,  # type: ignore[arg-type]
        store=None,  # type: ignore[arg-type]
        config=ServiceConfig(link_signing_key=key),
    )


def test_share_tokens_keep_the_form_they_had() -> None:
    digest = hmac.new(KEY.encode(), b"share-link:shr_abc", hashlib.sha256).digest()
    assert sharing.token_of(context(), "shr_abc") == "shr_abc." + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def test_a_signature_checks_only_for_its_purpose_message_and_key() -> None:
    ctx = context()
    signature = signing.sign(ctx, "share-link", "gen_1:upl_1:100")
    assert signing.verify(ctx, "share-link", "gen_1:upl_1:100", signature)
    assert not signing.verify(ctx, "input-link", "gen_1:upl_1:100", signature)
    assert not signing.verify(ctx, "share-link", "gen_1:upl_1:101", signature)
    assert not signing.verify(context("other" * 13), "share-link", "gen_1:upl_1:100", signature)
    assert not signing.verify(ctx, "share-link", "gen_1:upl_1:100", signature[:-1])
