"""The address a provider calls back with a job's updates, and the proof that address carries.

The token signs the generation's id, its provider and the provider account the job was sent with (that account's
fingerprint, which the address also carries) under the server's key. A webhook is therefore checked, and the
account whose secret verifies its signature is known, before anything is read: ingest reads the generation once,
inside the transaction that records the delivery, and ignores the update there when the job has since moved to
another provider or account.

Addresses handed out before tokens were signed carry the random token stored with the generation instead; they
are still accepted, at the price of reading the generation first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from reelgate.db.records import Generation
from reelgate.services import signing
from reelgate.services.context import ServiceContext
from reelgate.services.routing import account_fingerprint

_PURPOSE = "provider-webhook"


@dataclass(frozen=True)
class Sender:
    """Whom a webhook about one generation must come from: a provider, and the account the job was sent with."""

    generation_id: str
    provider: str
    account: str | None

    def _message(self) -> str:
        # JSON, so no id, name or fingerprint can be cut differently into another triple that was signed.
        return json.dumps([self.generation_id, self.provider, self.account or ""])

    def token(self, ctx: ServiceContext) -> str:
        return signing.sign(ctx, _PURPOSE, self._message())

    def signed(self, ctx: ServiceContext, token: str) -> bool:
        return signing.verify(ctx, _PURPOSE, self._message(), token)

    def still_sends(self, generation: Generation) -> bool:
        """Whether the job is still with this provider and account (a fallback or a new account moves it)."""
        return generation.provider == self.provider and account_fingerprint(generation) == self.account


def webhook_url(ctx: ServiceContext, generation: Generation) -> str:
    """The address handed to the provider with a submit: the only proof on providers that don't sign webhooks."""
    sender = Sender(generation.id, generation.provider, account_fingerprint(generation))
    query = {"g": generation.id, "t": sender.token(ctx)}
    if sender.account is not None:
        query["a"] = sender.account
    return f"{ctx.config.public_url}/webhooks/{generation.provider}?{urlencode(query)}"


def signed_sender(ctx: ServiceContext, provider: str, query: Mapping[str, str]) -> Sender | None:
    """The sender a webhook's address names, when its token signs it; None for any other token."""
    sender = Sender(query.get("g", ""), provider, query.get("a") or None)
    return sender if sender.signed(ctx, query.get("t", "")) else None
