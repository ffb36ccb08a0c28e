"""Which ledger account pays a generation: the caller's own, or the wallet of an organization the caller belongs
to. Read in the submit's own transaction, so a member removed a moment ago can no longer pay with the wallet."""

from __future__ import annotations

from reelgate.db.sql import Tx
from reelgate.services import organizations as orgs


def paying_account(tx: Tx, user_id: str, organization_id: str | None) -> str:
    """The account id to hold from; NotFound (404) for an organization the caller does not belong to."""
    if organization_id is None or organization_id == "":
        return user_id
    return orgs.membership_in(tx, organization_id, user_id).organization.id
