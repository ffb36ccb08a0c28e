"""Outgoing email: queued in the outbox by the transaction of the event that causes it, sent by the worker.

`queue_*` functions run inside the event's own transaction (they take its Tx). The worker's housekeeping job
(`send_due`, run by the embedded worker or by each production worker's reconciler) claims due rows, renders each
from its templates (services/email_templates/, text and HTML), and hands it to the transport: SMTP when
REELGATE_SMTP_URL is set, else, in embedded mode, a folder of .eml files under the data dir. A failed send is
retried with exponential backoff; (kind, event_key) is unique, so an event never queues its email twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import re
import secrets
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import aiosmtplib
from itsdangerous import BadSignature, URLSafeSerializer
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from reelgate.db.queries import ledger as ledger_queries
from reelgate.db.queries import mail as mail_queries
from reelgate.db.queries import organizations as org_queries
from reelgate.db.queries import users as user_queries
from reelgate.db.records import EmailToken, Generation, OutboxEmail, Payment, User
from reelgate.db.sql import Tx
from reelgate.domain.ids import new_id
from reelgate.services.context import ServiceContext

log = logging.getLogger("reelgate.mail")

# Kinds an account may turn off (studio settings, or the unsubscribe link in each of these emails).
OPTIONAL_KINDS: dict[str, str] = {
    "generation_completed": "A video is ready",
    "generation_failed": "A generation failed and its credits were refunded",
    "low_balance": "The credit balance falls below the low-balance threshold",
    "purchase_receipt": "Receipts for credit purchases",
}
# Always sent: they answer something the account holder (or an administrator) just asked for.
# An organization invitation goes to the invited address (payload "to"), which may have no account yet; its row
# belongs to the member who invited.
ALWAYS_KINDS = ("password_reset", "verify_email", "account_unlock", "organization_invitation")
KINDS = (*OPTIONAL_KINDS, *ALWAYS_KINDS)

SUBJECTS = {
    "generation_completed": "Your video is ready: {title}",
    "generation_failed": "Your video could not be made; {refunded} credits refunded",
    "low_balance": "Your balance is low: {available} credits left",
    "purchase_receipt": "Receipt: {credits} credits",
    "password_reset": "Reset your password",
    "verify_email": "Confirm your email address",
    "account_unlock": "Sign-in to your account was locked",
    "organization_invitation": "You are invited to join {organization}",
}
# Seconds before each retry; after the last one the email is marked failed.
RETRY_DELAYS = (30, 120, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600)
TOKEN_LIFETIME = {
    "password_reset": timedelta(hours=1),
    "verify_email": timedelta(days=7),
    "account_unlock": timedelta(hours=1),
}
CLAIM_SECONDS = 300.0  # far above the SMTP timeout: only a crash leaves a claimed email unsent this long
BATCH = 16
_in_flight: set[asyncio.Task[None]] = set()
_TEMPLATES = Path(__file__).parent / "email_templates"
_env = Environment(
    loader=FileSystemLoader(_TEMPLATES),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)
# Control characters (CR and LF above all) end a header line: in a subject or a name they could add headers.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")


class MailDisabled(Exception):
    """Neither SMTP nor a mail folder is configured."""


def header_text(value: str, limit: int = 200) -> str:
    """A value fit for a header: control characters (CR/LF) replaced by a space, trimmed to `limit`."""
    cleaned = _CONTROL.sub(" ", value).strip()
    return cleaned[: limit - 1] + "…" if len(cleaned) > limit else cleaned


# ---------------------------------------------------------------- queueing (inside the event's transaction)


def queue(tx: Tx, *, user_id: str, kind: str, event_key: str, payload: dict[str, Any], now: datetime) -> bool:
    """Adds the email to the outbox; False when this event's email of this kind is queued already."""
    if kind not in KINDS:
        raise ValueError(f"unknown email kind {kind}")
    email = OutboxEmail(
        id=new_id("eml"),
        user_id=user_id,
        kind=kind,
        event_key=event_key[:120],
        payload=payload,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        last_error=None,
        created_at=now,
        sent_at=None,
    )
    return mail_queries.queue_email(tx, email)


def queue_generation_ended(tx: Tx, generation: Generation) -> None:
    """From transition(): a finished video, or a failure whose credits were refunded. A cancel the user asked
    for sends nothing."""
    now = generation.completed_at or generation.updated_at
    payload = {
        "generation_id": generation.id,
        "model": generation.model,
        "prompt": (generation.prompt or "")[:300],
        "credits_charged": generation.credits_charged,
        "credits_refunded": generation.credits_refunded,
        "error": (generation.error_message or "")[:500],
        "status": generation.status,
    }
    if generation.status == "succeeded":
        queue(
            tx,
            user_id=generation.user_id,
            kind="generation_completed",
            event_key=generation.id,
            payload=payload,
            now=now,
        )
    elif generation.status in ("failed", "expired") and generation.credits_refunded > 0:
        queue(
            tx, user_id=generation.user_id, kind="generation_failed", event_key=generation.id, payload=payload, now=now
        )


def queue_low_balance(tx: Tx, user_id: str, *, spent: int, threshold: int, reference: str, now: datetime) -> None:
    """After `spent` credits left the available balance: one email when that took it below `threshold`."""
    if threshold <= 0 or spent <= 0:
        return
    balance = ledger_queries.balance_of(tx, user_id)
    if balance is None or not (balance.available < threshold <= balance.available + spent):
        return
    payload = {"available": balance.available, "threshold": threshold}
    queue(tx, user_id=user_id, kind="low_balance", event_key=reference, payload=payload, now=now)


def queue_receipt(tx: Tx, payment: Payment, now: datetime) -> None:
    """In the Stripe event's transaction that granted the purchase."""
    payload = {
        "payment_id": payment.id,
        "package": payment.package,
        "credits": payment.credits,
        "amount": payment.amount,
        "currency": payment.currency.upper(),
    }
    queue(tx, user_id=payment.user_id, kind="purchase_receipt", event_key=payment.id, payload=payload, now=now)


def queue_token_email(tx: Tx, user_id: str, purpose: str, now: datetime, payload: dict[str, Any] | None = None) -> str:
    """A password reset or address verification: the token's row (its secret is made when the email is sent,
    and only its hash kept) and the email, in the caller's transaction. Returns the token row's id."""
    token = EmailToken(
        id=new_id("tok"),
        user_id=user_id,
        purpose=purpose,
        token_hash=None,
        expires_at=now + TOKEN_LIFETIME[purpose],
        used_at=None,
        created_at=now,
    )
    mail_queries.insert_token(tx, token)
    queue(
        tx,
        user_id=user_id,
        kind=purpose,
        event_key=token.id,
        payload={"token_id": token.id, **(payload or {})},
        now=now,
    )
    return token.id


def hash_token(secret: str) -> str:
    """Tokens carry 256 bits of entropy: a fast hash is safe, and lookups need no per-row salt."""
    return hashlib.sha256(secret.encode()).hexdigest()


# ---------------------------------------------------------------- preferences and unsubscribe links


def _signer(ctx: ServiceContext) -> URLSafeSerializer:
    if not ctx.config.mail_signing_key:
        raise MailDisabled("no signing key for unsubscribe links")
    return URLSafeSerializer(ctx.config.mail_signing_key, salt="reelgate-unsubscribe")


def unsubscribe_token(ctx: ServiceContext, user_id: str, kind: str) -> str:
    return str(_signer(ctx).dumps({"u": user_id, "k": kind}))


def read_unsubscribe_token(ctx: ServiceContext, token: str) -> tuple[str, str] | None:
    """(user_id, kind) of a valid token, else None."""
    try:
        data = _signer(ctx).loads(token)
    except (BadSignature, MailDisabled):
        return None
    if not isinstance(data, dict) or data.get("k") not in OPTIONAL_KINDS or not isinstance(data.get("u"), str):
        return None
    return data["u"], data["k"]


async def unsubscribe(ctx: ServiceContext, token: str) -> str | None:
    """One-click unsubscribe (RFC 8058): the kind turned off, or None for a token that is not ours."""
    found = read_unsubscribe_token(ctx, token)
    if found is None:
        return None
    user_id, kind = found
    await ctx.db.write(lambda tx: mail_queries.opt_out(tx, user_id, kind, ctx.clock()))
    return kind


async def preferences(ctx: ServiceContext, user_id: str) -> dict[str, bool]:
    """Each optional kind: whether the account receives it."""
    off = await ctx.db.read(lambda tx: mail_queries.opted_out_kinds(tx, user_id))
    return {kind: kind not in off for kind in OPTIONAL_KINDS}


async def set_preferences(ctx: ServiceContext, user_id: str, wanted: set[str]) -> None:
    now = ctx.clock()

    def save(tx: Tx) -> None:
        for kind in OPTIONAL_KINDS:
            if kind in wanted:
                mail_queries.opt_in(tx, user_id, kind)
            else:
                mail_queries.opt_out(tx, user_id, kind, now)

    await ctx.db.write(save)


def enabled(ctx: ServiceContext) -> bool:
    return bool(ctx.config.smtp_url or ctx.config.mail_dir)


# ---------------------------------------------------------------- rendering


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    unsubscribe_url: str | None


def _title(prompt: str) -> str:
    words = " ".join(prompt.split())
    return words[:60] + "…" if len(words) > 60 else words or "untitled"


def render(ctx: ServiceContext, email: OutboxEmail, user: User, secret: str | None) -> Rendered:
    base = ctx.config.public_url
    values: dict[str, Any] = dict(email.payload)
    values.setdefault("title", _title(str(values.get("prompt", ""))))
    values.setdefault("refunded", values.get("credits_refunded", 0))
    unsubscribe_url = None
    if email.kind in OPTIONAL_KINDS:
        unsubscribe_url = f"{base}/unsubscribe?token={quote(unsubscribe_token(ctx, user.id, email.kind))}"
    links = {
        "gallery_url": f"{base}/gallery",
        "credits_url": f"{base}/credits",
        "settings_url": f"{base}/settings",
        "reset_url": f"{base}/reset-password?token={secret}" if email.kind == "password_reset" else "",
        "verify_url": f"{base}/verify-email?token={secret}" if email.kind == "verify_email" else "",
        "unlock_url": f"{base}/unlock-account?token={secret}" if email.kind == "account_unlock" else "",
        "invitation_url": (
            f"{base}/organizations/join?token={secret}" if email.kind == "organization_invitation" else ""
        ),
        "reset_request_url": f"{base}/forgot-password",
    }
    context = {
        **values,
        **links,
        "name": user.display_name or user.email,
        "site": urlsplit(base).hostname or "reelgate",
        "unsubscribe_url": unsubscribe_url,
        "kind_label": OPTIONAL_KINDS.get(email.kind, ""),
    }
    subject = header_text(
        SUBJECTS[email.kind].format(
            **{k: context.get(k, "") for k in ("title", "refunded", "available", "credits", "organization")}
        )
    )
    text = _env.get_template(f"{email.kind}.txt").render(context)
    html = _env.get_template(f"{email.kind}.html").render(context)
    return Rendered(subject=subject, text=text, html=html, unsubscribe_url=unsubscribe_url)


def build_message(ctx: ServiceContext, email: OutboxEmail, user: User, rendered: Rendered) -> EmailMessage:
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = header_text(ctx.config.mail_from) or f"reelgate <noreply@{_domain(ctx)}>"
    to = email.payload.get("to")
    # An invitation goes to the invited address, not to the account that queued it.
    message["To"] = str(to) if to else formataddr((header_text(user.display_name, 80), user.email))
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(ctx.clock())
    # The same on every retry, so a receiving server (or a person) can tell a resend of the same email.
    message["Message-ID"] = f"<{email.id}@{_domain(ctx)}>"
    message["X-Reelgate-Kind"] = email.kind
    if rendered.unsubscribe_url:
        message["List-Unsubscribe"] = f"<{rendered.unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


def _domain(ctx: ServiceContext) -> str:
    return urlsplit(ctx.config.public_url).hostname or "localhost"


# ---------------------------------------------------------------- transports


class SendFailed(Exception):
    pass


def _connection(smtp_url: str, timeout: float) -> dict[str, Any]:
    """smtp://user:pass@host:587 uses STARTTLS (required, unless the host is loopback, where it is used if
    offered), smtps://user:pass@host:465 implicit TLS. User and password are percent-decoded."""
    url = urlsplit(smtp_url)
    if url.scheme not in ("smtp", "smtps"):
        raise ValueError("REELGATE_SMTP_URL must start with smtp:// or smtps://")
    implicit = url.scheme == "smtps"
    host = url.hostname or "localhost"
    loopback = host in ("localhost", "127.0.0.1", "::1")
    return {
        "hostname": host,
        "port": url.port or (465 if implicit else 587),
        "username": unquote(url.username) if url.username else None,
        "password": unquote(url.password) if url.password else None,
        "use_tls": implicit,
        # A remote server must take STARTTLS (credentials never go in clear); loopback relays may not offer it.
        "start_tls": None if loopback else (False if implicit else True),
        "tls_context": ssl.create_default_context(),
        "timeout": timeout,
    }


async def _send_smtp(ctx: ServiceContext, message: EmailMessage) -> None:
    try:
        await aiosmtplib.send(message, **_connection(ctx.config.smtp_url or "", ctx.config.smtp_timeout))
    except (aiosmtplib.SMTPException, OSError, TimeoutError, ValueError) as exc:
        raise SendFailed(f"{type(exc).__name__}: {exc}"[:500]) from exc


async def probe_smtp(smtp_url: str, timeout: float) -> str:
    """Connects, says EHLO, starts TLS and logs in as sending would, then quits (`reelgate doctor`)."""
    options = _connection(smtp_url, timeout)
    client = aiosmtplib.SMTP(**options)
    await client.connect()  # TLS and the login happen here, as for a real send
    try:
        login = f", logged in as {options['username']}" if options["username"] else ""
        return f"{options['hostname']}:{options['port']}{login}"
    finally:
        await client.quit()


def _write_eml(folder: Path, email: OutboxEmail, message: EmailMessage) -> None:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = f"{email.created_at:%Y%m%dT%H%M%S}-{email.id}.eml"
    staging = folder / f".{name}.tmp"
    staging.write_bytes(message.as_bytes())
    os.replace(staging, folder / name)


async def deliver(ctx: ServiceContext, email: OutboxEmail, message: EmailMessage) -> None:
    if ctx.config.smtp_url:
        await _send_smtp(ctx, message)
    elif ctx.config.mail_dir:
        await asyncio.to_thread(_write_eml, Path(ctx.config.mail_dir), email, message)
    else:
        raise MailDisabled


# ---------------------------------------------------------------- the worker's job


def retry_delay(attempts: int) -> float:
    base = RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]
    return float(base) * random.uniform(0.9, 1.1)


def _attempt_budget(ctx: ServiceContext) -> float:
    """The most one send may take, whatever the server's pace (aiosmtplib's timeout is per command)."""
    return ctx.config.smtp_timeout * 4


async def _claim_one(ctx: ServiceContext, email_id: str) -> bool:
    """Pushes next_attempt_at past the attempt's whole budget with a compare-and-set, just before sending, so
    no other worker picks the email while this one may still be sending it."""
    now = ctx.clock()
    until = now + timedelta(seconds=max(CLAIM_SECONDS, 2 * _attempt_budget(ctx)))
    return await ctx.db.write(lambda tx: mail_queries.claim_email(tx, email_id, now=now, until=until))


def _load(tx: Tx, email_id: str) -> tuple[OutboxEmail, User, set[str]] | None:
    email = mail_queries.email_by_id(tx, email_id)
    if email is None or email.status != "pending":
        return None
    user = user_queries.user_by_id(tx, email.user_id)
    if user is None:
        return None
    return email, user, mail_queries.opted_out_kinds(tx, user.id)


async def _mint(ctx: ServiceContext, email: OutboxEmail) -> str | None:
    """A fresh secret for the email's token; its hash replaces the last one (a retry's link is the one that
    works). None when the token was used or has expired meanwhile: the email has nothing left to say."""
    token_id = str(email.payload.get("token_id", ""))
    secret = secrets.token_urlsafe(32)
    if email.kind == "organization_invitation":
        return await _mint_invitation(ctx, str(email.payload.get("invitation_id", "")), secret)

    def store(tx: Tx) -> bool:
        token = mail_queries.token_by_id(tx, token_id)
        if token is None or token.used_at is not None or token.expires_at <= ctx.clock():
            return False
        return mail_queries.set_token_hash(tx, token_id, hash_token(secret))

    return secret if await ctx.db.write(store) else None


async def _mint_invitation(ctx: ServiceContext, invitation_id: str, secret: str) -> str | None:
    """The same for an organization invitation, whose token is its own row."""

    def store(tx: Tx) -> bool:
        invitation = org_queries.invitation_by_id(tx, invitation_id)
        if invitation is None or invitation.used_at is not None or invitation.expires_at <= ctx.clock():
            return False
        return org_queries.set_invitation_hash(tx, invitation_id, hash_token(secret))

    return secret if await ctx.db.write(store) else None


async def _finish(ctx: ServiceContext, email_id: str, *, status: str | None, error: str | None) -> None:
    """status "sent"/"skipped"/"failed" ends the email; None schedules the next try (or fails it at the last)."""
    now = ctx.clock()

    def record(tx: Tx) -> None:
        email = mail_queries.email_by_id(tx, email_id)
        if email is None or email.status != "pending":
            return
        email.last_error = error
        if status is not None:
            email.status, email.next_attempt_at = status, None
            if status == "sent":
                email.attempts += 1
                email.sent_at = now
        else:
            email.attempts += 1
            if email.attempts > len(RETRY_DELAYS):
                email.status, email.next_attempt_at = "failed", None
            else:
                email.next_attempt_at = now + timedelta(seconds=retry_delay(email.attempts))
        mail_queries.save_email(tx, email)

    await ctx.db.write(record)


async def send_one(ctx: ServiceContext, email_id: str) -> None:
    loaded = await ctx.db.read(lambda tx: _load(tx, email_id), snapshot=True)
    if loaded is None:
        return
    email, user, opted_out = loaded
    if not enabled(ctx):
        await _finish(ctx, email_id, status="skipped", error="no SMTP server or mail folder is configured")
        return
    if email.kind in opted_out or user.disabled:
        await _finish(ctx, email_id, status="skipped", error="the account does not receive this kind of email")
        return
    secret = None
    if email.kind in ALWAYS_KINDS:
        secret = await _mint(ctx, email)
        if secret is None:
            await _finish(ctx, email_id, status="skipped", error="the link was used or expired before it was sent")
            return
    message = build_message(ctx, email, user, render(ctx, email, user, secret))
    try:
        async with asyncio.timeout(_attempt_budget(ctx)):
            await deliver(ctx, email, message)
    except TimeoutError:
        await _finish(ctx, email_id, status=None, error=f"no answer within {_attempt_budget(ctx):g} s")
        return
    except SendFailed as exc:
        log.warning("email %s not sent (attempt %d): %s", email.id, email.attempts + 1, exc)
        await _finish(ctx, email_id, status=None, error=str(exc))
        return
    await _finish(ctx, email_id, status="sent", error=None)


async def run_due(ctx: ServiceContext, *, limit: int = BATCH) -> int:
    """Claims and sends due emails one at a time, waiting for them; returns how many were attempted."""
    due = await ctx.db.read(lambda tx: mail_queries.due_emails(tx, ctx.clock(), limit))
    attempted = 0
    for email_id in due:  # one connection at a time: a relay's rate limits are per connection too
        try:
            if not await _claim_one(ctx, email_id):
                continue  # another worker has it
            attempted += 1
            await send_one(ctx, email_id)
        except Exception:  # one broken email must not stop the rest; its claim lapses and it is retried
            log.exception("email %s failed", email_id)
    return attempted


async def _run_logged(ctx: ServiceContext) -> None:
    try:
        await run_due(ctx)
    except Exception:  # e.g. a database blip; the next tick tries again
        log.exception("email batch failed")


async def send_due(ctx: ServiceContext) -> int:
    """The worker's periodic job: starts a batch in the background and returns at once, so a slow or stalled
    SMTP server never holds up the generation pipeline. One batch at a time per process."""
    if _in_flight:
        return 0
    task = asyncio.create_task(_run_logged(ctx), name="email-outbox")
    _in_flight.add(task)
    task.add_done_callback(_in_flight.discard)
    return 1


# ---------------------------------------------------------------- the mail folder (embedded mode without SMTP)


@dataclass(frozen=True)
class FolderEmail:
    name: str
    subject: str
    to: str
    date: str
    kind: str
    text: str
    html: str


_EML_NAME = re.compile(r"^[0-9T]{15}-eml_[0-9A-Za-z]{26}\.eml$")


def _parse(path: Path) -> FolderEmail:
    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    return FolderEmail(
        name=path.name,
        subject=str(message.get("Subject", "")),
        to=str(message.get("To", "")),
        date=str(message.get("Date", "")),
        kind=str(message.get("X-Reelgate-Kind", "")),
        text=text_part.get_content() if text_part is not None else "",
        html=html_part.get_content() if html_part is not None else "",
    )


def _folder_list(folder: Path, limit: int) -> list[FolderEmail]:
    if not folder.is_dir():
        return []
    names = sorted((p.name for p in folder.iterdir() if _EML_NAME.match(p.name)), reverse=True)[:limit]
    return [_parse(folder / name) for name in names]


async def folder_emails(ctx: ServiceContext, limit: int = 200) -> list[FolderEmail]:
    """The newest emails written to the mail folder (embedded mode with no SMTP server)."""
    if not ctx.config.mail_dir:
        return []
    return await asyncio.to_thread(_folder_list, Path(ctx.config.mail_dir), limit)


async def folder_email(ctx: ServiceContext, name: str) -> FolderEmail | None:
    if not ctx.config.mail_dir or not _EML_NAME.match(name):
        return None
    path = Path(ctx.config.mail_dir) / name
    if not path.is_file():
        return None
    return await asyncio.to_thread(_parse, path)


async def outbox_of_user(ctx: ServiceContext, user_id: str, limit: int = 50) -> list[OutboxEmail]:
    return await ctx.db.read(lambda tx: mail_queries.emails_of_user(tx, user_id, limit))
