"""Users, passwords, API keys and projects: sign-up, sign-in and key management."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import email_validator
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from reelgate.db.errors import UniqueViolation
from reelgate.db.queries import ledger as ledger_queries
from reelgate.db.queries import organizations as org_queries
from reelgate.db.queries import projects as project_queries
from reelgate.db.queries import sessions as session_queries
from reelgate.db.queries import users as user_queries
from reelgate.db.records import ApiKey, User
from reelgate.db.sql import Tx
from reelgate.domain.errors import Conflict, NotFound, RateLimited, Unauthorized, ValidationFailed
from reelgate.domain.ids import new_id
from reelgate.domain.ledger import EntryKind
from reelgate.services import account_unlock, email_verification, mail, sessions
from reelgate.services.context import ServiceContext
from reelgate.services.projects import DEFAULT_PROJECT_NAME, new_project

_hasher = PasswordHasher()
API_KEY_PREFIX = "rg_"
_LAST_USED_RESOLUTION = timedelta(minutes=1)  # don't write on every request
# email-validator refuses special-use domain names; removing one from its list is its documented way to allow
# it. `.local` names are hosts on a LAN (self-hosted setups use them), and the first administrator's address.
if "local" in email_validator.SPECIAL_USE_DOMAIN_NAMES:
    email_validator.SPECIAL_USE_DOMAIN_NAMES.remove("local")


@dataclass(frozen=True)
class NewApiKey:
    id: str
    name: str
    secret: str  # shown once; only its hash is stored


def _normalize_email(email: str) -> str:
    """A syntactically valid address (email-validator, no DNS lookups: reelgate sends no mail to check), lowercased
    as sign-in looks it up. Quoted local parts, display names, IP literals and control characters are refused."""
    email = email.strip()
    if len(email) > 320:
        raise ValidationFailed("email", "Enter a valid email address.")
    try:
        email_validator.validate_email(email, check_deliverability=False, globally_deliverable=False)
    except email_validator.EmailNotValidError as exc:
        raise ValidationFailed("email", f"Enter a valid email address: {exc}") from None
    return email.lower()


def normalize_email(email: str) -> str:
    """The address as accounts store it (for an invitation, compared with an account's)."""
    return _normalize_email(email)


def check_password_rules(password: str) -> None:
    if len(password) < 8:
        raise ValidationFailed("password", "Passwords need at least 8 characters.", allowed={"min_length": 8})
    if len(password) > 1024:
        raise ValidationFailed("password", "Password is too long.", allowed={"max_length": 1024})


async def hash_password(password: str) -> str:
    # argon2 is deliberately slow; keep it off the event loop.
    return await asyncio.to_thread(_hasher.hash, password)


async def _verify_password(password_hash: str, password: str) -> bool:
    try:
        return await asyncio.to_thread(_hasher.verify, password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def hash_api_key(secret: str) -> str:
    """API keys carry 256 bits of entropy, so a fast hash is safe and keeps auth cheap."""
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_user(
    ctx: ServiceContext,
    email: str,
    password: str | None,
    *,
    credits: int | None = None,
    is_admin: bool = False,
    display_name: str = "",
) -> User:
    """Creates the user, their credit account, a default project, and grants the sign-up credits. With SMTP
    configured, the default sign-up credits wait for the address to be verified (services/email_verification.py);
    an explicit `credits` (the CLI, an administrator) is granted at once."""
    email = _normalize_email(email)
    if password is not None:
        check_password_rules(password)
    password_hash = await hash_password(password) if password is not None else None
    grant = ctx.config.signup_credits if credits is None else credits
    verify = credits is None and email_verification.required(ctx)
    user = User(
        id=new_id("usr"),
        email=email,
        password_hash=password_hash,
        display_name=display_name,
        is_admin=is_admin,
        flagged=False,
        disabled=False,
        created_at=ctx.clock(),
    )

    def create(tx: Tx) -> None:
        user_queries.insert_user(tx, user)
        ledger_queries.open_account(tx, user.id)
        project_queries.insert_project(tx, new_project(ctx, user.id, DEFAULT_PROJECT_NAME))
        if verify:
            email_verification.queue_verification(ctx, tx, user.id)
        elif grant > 0:
            reference = email_verification.signup_reference(user.id)
            ledger_queries.credit_account(
                tx, user.id, grant, kind=EntryKind.GRANT, reference=reference, note="Sign-up credits"
            )

    try:
        await ctx.db.write(create)
    except UniqueViolation as exc:
        raise Conflict("An account with this email already exists.", details={"field": "email"}) from exc
    return user


async def sign_up(ctx: ServiceContext, email: str, password: str, *, display_name: str, address: str) -> None:
    """Self-service sign-up, throttled per address. Its outcome is the same whether the email was free or
    not (no answer says which addresses have accounts): the caller tells the visitor to sign in. Only the
    first few accounts per address and day get the free sign-up credits."""
    await ctx.throttle.signup_attempt(address=address)
    email = _normalize_email(email)
    check_password_rules(password)
    # None: the default sign-up credits, which wait for the address to be verified when email is set up.
    credits = None if await ctx.throttle.signup_credits_allowed(address=address) else 0
    try:
        await create_user(ctx, email, password, credits=credits, display_name=display_name)
    except Conflict:
        return


async def authenticate_password(ctx: ServiceContext, email: str, password: str, *, address: str) -> User:
    """Sign-in, throttled per account, per address and across the site (services/throttle.py). A lock on the
    account also emails its owner a link that lifts it (services/account_unlock.py)."""
    try:
        await ctx.throttle.password_attempt(account=email, address=address)
    except RateLimited as exc:
        if exc.details.get("scope") == "account" and mail.enabled(ctx):
            await account_unlock.offer(ctx, email)
            # The same words whether or not the account exists: only its owner's mailbox gets the link.
            raise RateLimited(
                f"{exc.message} The account's owner can lift this lock with the link we email them.",
                retry_after=exc.retry_after,
                details={"scope": "account"},
            ) from exc
        raise
    user = await ctx.db.read(lambda tx: user_queries.user_by_email(tx, email.strip().lower()))
    if user is None or user.password_hash is None or user.disabled:
        # Spend the same time as a real check so response timing does not reveal which emails exist.
        await _verify_password(_dummy_hash(), password)
        await ctx.throttle.password_failed(address=address)
        raise Unauthorized("Wrong email or password.")
    if not await _verify_password(user.password_hash, password):
        await ctx.throttle.password_failed(address=address)
        raise Unauthorized("Wrong email or password.")
    await ctx.throttle.password_ok(account=email)
    return user


async def confirm_password(ctx: ServiceContext, user_id: str, password: str, *, address: str) -> User:
    """The signed-in user's current password, checked under the same throttles as sign-in."""
    user = await get_user(ctx, user_id)
    await ctx.throttle.password_attempt(account=user.email, address=address)
    if user.password_hash is None or not await _verify_password(user.password_hash, password):
        await ctx.throttle.password_failed(address=address)
        raise ValidationFailed("current_password", "The current password is not correct.")
    await ctx.throttle.password_ok(account=user.email)
    return user


@functools.cache
def _dummy_hash() -> str:
    """Hashed on first use, not at import: argon2 is deliberately slow and every process imports this."""
    return _hasher.hash("reelgate-timing-equalizer")


async def change_password(
    ctx: ServiceContext,
    user_id: str,
    current: str,
    new: str,
    *,
    address: str,
    keep_session: str | None = None,
    revoke_api_keys: bool = True,
) -> int:
    """Changes the password after checking the current one (throttled like sign-in). Every other session
    ends, and the user's API keys are revoked unless they choose to keep them; returns how many keys were
    revoked."""
    check_password_rules(new)
    await confirm_password(ctx, user_id, current, address=address)
    new_hash = await hash_password(new)
    now = ctx.clock()

    def change(tx: Tx) -> int:
        user_queries.set_password_hash(tx, user_id, new_hash)
        session_queries.delete_sessions_of(tx, user_id, keep=keep_session)
        return user_queries.revoke_all_api_keys(tx, user_id, now) if revoke_api_keys else 0

    revoked = await ctx.db.write(change)
    forget_cached_user(user_id)
    return revoked


async def end_all_sessions(ctx: ServiceContext, user_id: str) -> int:
    """Signs the user out of every browser at once; how many sessions ended."""
    return await sessions.end_sessions(ctx, user_id)


async def create_api_key(
    ctx: ServiceContext, user_id: str, name: str = "", *, organization_id: str | None = None
) -> NewApiKey:
    secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        id=new_id("key"),
        user_id=user_id,
        name=name[:120],
        prefix=secret[:10],
        key_hash=hash_api_key(secret),
        created_at=ctx.clock(),
        last_used_at=None,
        revoked_at=None,
        organization_id=organization_id,
    )
    await ctx.db.write(lambda tx: user_queries.insert_api_key(tx, key))
    return NewApiKey(id=key.id, name=key.name, secret=secret)


async def list_api_keys(ctx: ServiceContext, user_id: str) -> list[ApiKey]:
    return await ctx.db.read(lambda tx: user_queries.api_keys_of(tx, user_id))


async def revoke_api_key(ctx: ServiceContext, user_id: str, key_id: str) -> None:
    if not await ctx.db.write(lambda tx: user_queries.revoke_api_key(tx, user_id, key_id, ctx.clock())):
        raise NotFound("API key not found.")
    forget_cached_user(user_id)


class _KeyCache:
    """Recently authenticated keys, so each API call need not open a database session just to find its user.

    Entries live for `ttl` seconds; revoking a key or disabling a user clears this process's copy at once,
    and other processes see it within the TTL.
    """

    def __init__(self, ttl: float = 5.0, size: int = 4096) -> None:
        self.ttl, self.size = ttl, size
        self._entries: dict[str, tuple[float, User]] = {}

    def get(self, key_hash: str) -> User | None:
        found = self._entries.get(key_hash)
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]

    def put(self, key_hash: str, user: User) -> None:
        if len(self._entries) >= self.size:
            self._entries.clear()  # crude but bounded; a refill costs one query per key
        self._entries[key_hash] = (time.monotonic() + self.ttl, user)

    def forget_user(self, user_id: str) -> None:
        for key_hash in [h for h, (_, u) in self._entries.items() if u.id == user_id]:
            del self._entries[key_hash]


_key_cache = _KeyCache()


async def authenticate_api_key(ctx: ServiceContext, secret: str) -> tuple[User, str | None]:
    """The key's user, and the organization the key acts as (None for a user's own key)."""
    if not secret.startswith(API_KEY_PREFIX):
        raise Unauthorized("Invalid API key.")
    key_hash = hash_api_key(secret)
    cached = _key_cache.get(key_hash)
    if cached is not None:
        return cached, None
    row = await ctx.db.read(lambda tx: _key_row(tx, key_hash))
    if row is None:
        raise Unauthorized("Invalid API key.")
    key, user, manages = row
    if key.revoked_at is not None or user.disabled or not manages:
        raise Unauthorized("This API key has been revoked.")
    now = ctx.clock()
    if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
        await ctx.db.write(lambda tx: user_queries.touch_api_key(tx, key.id, now))
    if key.organization_id is not None:
        # Never cached: whether its maker still manages the organization is read on every request, so a removal
        # or a demotion stops the key with the next one.
        return user, key.organization_id
    _key_cache.put(key_hash, user)
    return user, None


def _key_row(tx: Tx, key_hash: str) -> tuple[ApiKey, User, bool] | None:
    """The key, its user, and whether the key may act (an organization's key: its maker is still an owner or
    admin of the organization)."""
    row = user_queries.key_and_owner(tx, key_hash)
    if row is None:
        return None
    key, user = row
    if key.organization_id is None:
        return key, user, True
    member = org_queries.member(tx, key.organization_id, user.id)
    return key, user, member is not None and member.role in ("owner", "admin")


def forget_cached_user(user_id: str) -> None:
    """Called when a user's keys or account change, so this process stops trusting its cached copy."""
    _key_cache.forget_user(user_id)


async def get_user(ctx: ServiceContext, user_id: str) -> User:
    user = await ctx.db.read(lambda tx: user_queries.user_by_id(tx, user_id))
    if user is None:
        raise NotFound("User not found.")
    return user


async def find_user_by_email(ctx: ServiceContext, email: str) -> User:
    user = await ctx.db.read(lambda tx: user_queries.user_by_email(tx, email.strip().lower()))
    if user is None:
        raise NotFound(f"No user with email {email}.")
    return user


async def first_admin(ctx: ServiceContext) -> User | None:
    return await ctx.db.read(user_queries.first_admin)


async def count_users(ctx: ServiceContext) -> int:
    return await ctx.db.read(user_queries.count_users)


async def update_profile(ctx: ServiceContext, user_id: str, *, display_name: str) -> None:
    await ctx.db.write(lambda tx: user_queries.set_display_name(tx, user_id, display_name.strip()[:120]))
    forget_cached_user(user_id)


def utc_day_start(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)
