"""Share links: a video anyone holding the link may watch, without an account.

The token is `<id>.<signature>`: a random id (128 bits) and its HMAC-SHA256 under the server's secret, so a
token is checked before the database is asked, and the database never holds a usable token. A revoked or
expired link, a link to a deleted video, and any guessed, truncated or altered token all read as not found.
The page reached through a link shows the video (and its prompt only if the owner allows it), nothing else.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from reelgate.db.queries import generations as generation_queries
from reelgate.db.queries import library as library_queries
from reelgate.db.records import Generation, ShareLink
from reelgate.db.sql import Tx
from reelgate.domain.errors import Conflict, NotFound, ValidationFailed
from reelgate.domain.jobs import GenerationStatus
from reelgate.services import signing
from reelgate.services.context import ServiceContext

MAX_EXPIRY_DAYS = 365
_PURPOSE = "share-link"


def token_of(ctx: ServiceContext, share_id: str) -> str:
    return f"{share_id}.{signing.sign(ctx, _PURPOSE, share_id)}"


def share_url(ctx: ServiceContext, share_id: str) -> str:
    return f"{ctx.config.public_url}/s/{token_of(ctx, share_id)}"


def _share_id_of(ctx: ServiceContext, token: str) -> str | None:
    share_id, dot, signature = token.partition(".")
    if not dot or not share_id or len(token) > 200:
        return None
    if not signing.verify(ctx, _PURPOSE, share_id, signature):
        return None
    return share_id


async def create_share(
    ctx: ServiceContext, user_id: str, generation_id: str, *, expires_in_days: int | None, show_prompt: bool
) -> ShareLink:
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
        raise ValidationFailed(
            "expires_in_days",
            f"A link expires after 1 to {MAX_EXPIRY_DAYS} days (or never).",
            allowed={"min": 1, "max": MAX_EXPIRY_DAYS},
        )
    now = ctx.clock()
    share = ShareLink(
        id="shr_" + secrets.token_urlsafe(16),
        user_id=user_id,
        generation_id=generation_id,
        show_prompt=show_prompt,
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
        revoked_at=None,
    )

    def create(tx: Tx) -> None:
        generation = generation_queries.generation_of_user(tx, user_id, generation_id)
        if generation is None:
            raise NotFound("Generation not found.")
        if generation.status != GenerationStatus.SUCCEEDED.value or not generation.output_key:
            raise Conflict("Only a finished video can be shared.", details={"status": generation.status})
        if generation.kind == "text":  # the share page plays a video or shows an image; it has no text view
            raise Conflict("A text generation cannot be shared; copy or download it instead.", details={"kind": "text"})
        library_queries.insert_share(tx, share)

    await ctx.db.write(create)
    return share


async def list_shares(ctx: ServiceContext, user_id: str, generation_id: str) -> list[ShareLink]:
    def shares(tx: Tx) -> list[ShareLink]:
        if generation_queries.generation_of_user(tx, user_id, generation_id) is None:
            raise NotFound("Generation not found.")
        return library_queries.shares_of(tx, user_id, generation_id)

    return await ctx.db.read(shares)


async def revoke_share(ctx: ServiceContext, user_id: str, share_id: str) -> None:
    if not await ctx.db.write(lambda tx: library_queries.revoke_share(tx, user_id, share_id, ctx.clock())):
        raise NotFound("Share link not found.")


async def open_share(ctx: ServiceContext, token: str) -> tuple[ShareLink, Generation]:
    """The link's share and video, or NotFound for anything but a valid, live link."""
    share_id = _share_id_of(ctx, token)
    found = None
    if share_id is not None:
        found = await ctx.db.read(lambda tx: library_queries.live_share(tx, share_id, ctx.clock()))
    if found is None:
        raise NotFound("This link does not exist, was revoked or has expired.")
    return found
