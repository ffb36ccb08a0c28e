"""Outgoing email: the outbox, per-account opt-outs, and the single-use tokens emails carry."""

from __future__ import annotations

from datetime import datetime

from reelgate.db.records import EmailOptOut, EmailToken, OutboxEmail
from reelgate.db.sql import Tx, columns, insert_query, query, update_query, values_of

_INSERT_EMAIL_ONCE = insert_query(OutboxEmail, if_absent=True)
_SAVE_EMAIL = update_query(OutboxEmail)
_EMAIL_BY_ID = query(f"SELECT {columns(OutboxEmail)} FROM email_outbox WHERE id = :id", row=OutboxEmail)
_EMAIL_BY_EVENT = query(
    f"SELECT {columns(OutboxEmail)} FROM email_outbox WHERE kind = :kind AND event_key = :event_key", row=OutboxEmail
)
_EMAILS_OF_USER = query(
    f"SELECT {columns(OutboxEmail)} FROM email_outbox WHERE user_id = :user_id ORDER BY created_at DESC, id DESC "
    "LIMIT :limit",
    row=OutboxEmail,
)
_DUE = query(
    "SELECT id FROM email_outbox WHERE status = 'pending' AND next_attempt_at <= :now "
    "ORDER BY next_attempt_at LIMIT :limit"
)
# The claim is a compare-and-set on next_attempt_at, so two workers never send the same email at once.
_CLAIM = query(
    "UPDATE email_outbox SET next_attempt_at = :until WHERE id = :id AND status = 'pending' AND next_attempt_at <= :now"
)

_OPT_OUTS = query("SELECT kind FROM email_opt_outs WHERE user_id = :user_id ORDER BY kind")
_OPT_OUT = insert_query(EmailOptOut, if_absent=True)
_OPT_IN = query("DELETE FROM email_opt_outs WHERE user_id = :user_id AND kind = :kind")

_INSERT_TOKEN = insert_query(EmailToken)
_TOKEN_BY_ID = query(f"SELECT {columns(EmailToken)} FROM email_tokens WHERE id = :id", row=EmailToken)
_TOKEN_BY_HASH = query(
    f"SELECT {columns(EmailToken)} FROM email_tokens WHERE token_hash = :token_hash AND purpose = :purpose",
    row=EmailToken,
)
_SET_TOKEN_HASH = query("UPDATE email_tokens SET token_hash = :token_hash WHERE id = :id AND used_at IS NULL")
# Used once: the compare-and-set on used_at lets exactly one redemption through.
_USE_TOKEN = query("UPDATE email_tokens SET used_at = :now WHERE id = :id AND used_at IS NULL AND expires_at > :now")
_USE_ALL_TOKENS = query(
    "UPDATE email_tokens SET used_at = :now WHERE user_id = :user_id AND purpose = :purpose AND used_at IS NULL"
)
_UNUSED_TOKEN = query(
    "SELECT 1 FROM email_tokens WHERE user_id = :user_id AND purpose = :purpose AND used_at IS NULL LIMIT 1"
)
_RECENT_TOKEN = query(
    "SELECT count(*) FROM email_tokens WHERE user_id = :user_id AND purpose = :purpose AND created_at > :since"
)


# ---------------------------------------------------------------- the outbox


def queue_email(tx: Tx, email: OutboxEmail) -> bool:
    """False when this event's email of this kind is queued already (the unique (kind, event_key))."""
    return tx.run(_INSERT_EMAIL_ONCE, values_of(email)) == 1


def save_email(tx: Tx, email: OutboxEmail) -> None:
    tx.run(_SAVE_EMAIL, values_of(email))


def email_by_id(tx: Tx, email_id: str) -> OutboxEmail | None:
    email: OutboxEmail | None = tx.one(_EMAIL_BY_ID, {"id": email_id})
    return email


def email_by_event(tx: Tx, kind: str, event_key: str) -> OutboxEmail | None:
    email: OutboxEmail | None = tx.one(_EMAIL_BY_EVENT, {"kind": kind, "event_key": event_key})
    return email


def emails_of_user(tx: Tx, user_id: str, limit: int = 50) -> list[OutboxEmail]:
    return tx.all(_EMAILS_OF_USER, {"user_id": user_id, "limit": limit})


def due_emails(tx: Tx, now: datetime, limit: int) -> list[str]:
    return [str(row[0]) for row in tx.all(_DUE, {"now": now, "limit": limit})]


def claim_email(tx: Tx, email_id: str, *, now: datetime, until: datetime) -> bool:
    return tx.run(_CLAIM, {"id": email_id, "now": now, "until": until}) == 1


# ---------------------------------------------------------------- preferences


def opted_out_kinds(tx: Tx, user_id: str) -> set[str]:
    return {str(row[0]) for row in tx.all(_OPT_OUTS, {"user_id": user_id})}


def opt_out(tx: Tx, user_id: str, kind: str, now: datetime) -> None:
    tx.run(_OPT_OUT, values_of(EmailOptOut(user_id=user_id, kind=kind, created_at=now)))


def opt_in(tx: Tx, user_id: str, kind: str) -> None:
    tx.run(_OPT_IN, {"user_id": user_id, "kind": kind})


# ---------------------------------------------------------------- tokens


def insert_token(tx: Tx, token: EmailToken) -> None:
    tx.run(_INSERT_TOKEN, values_of(token))


def token_by_id(tx: Tx, token_id: str) -> EmailToken | None:
    token: EmailToken | None = tx.one(_TOKEN_BY_ID, {"id": token_id})
    return token


def token_by_hash(tx: Tx, token_hash: str, purpose: str) -> EmailToken | None:
    token: EmailToken | None = tx.one(_TOKEN_BY_HASH, {"token_hash": token_hash, "purpose": purpose})
    return token


def set_token_hash(tx: Tx, token_id: str, token_hash: str) -> bool:
    """False when the token was used meanwhile (nothing to send then)."""
    return tx.run(_SET_TOKEN_HASH, {"id": token_id, "token_hash": token_hash}) == 1


def use_token(tx: Tx, token_id: str, now: datetime) -> bool:
    """True for the one redemption that finds it unused and unexpired."""
    return tx.run(_USE_TOKEN, {"id": token_id, "now": now}) == 1


def use_all_tokens(tx: Tx, user_id: str, purpose: str, now: datetime) -> None:
    tx.run(_USE_ALL_TOKENS, {"user_id": user_id, "purpose": purpose, "now": now})


def tokens_made_since(tx: Tx, user_id: str, purpose: str, since: datetime) -> int:
    return int(tx.scalar(_RECENT_TOKEN, {"user_id": user_id, "purpose": purpose, "since": since}) or 0)


def has_unused_token(tx: Tx, user_id: str, purpose: str) -> bool:
    """Expired ones included: an address whose confirmation link lapsed is still unconfirmed."""
    return tx.scalar(_UNUSED_TOKEN, {"user_id": user_id, "purpose": purpose}) is not None
